"""Flag definitions exported from a real PostHog behave here as they do there (issue 14, "Flags"):
filters.early_exit, the holdout hash of an empty id, person_metadata filters, and the other
shapes PostHog stores. Each rule is checked against the evaluator directly, against
posthog-python's local evaluator where it has an opinion, and over /flags where the store is
involved (docs/flags-protocol.md "Flags: evaluation order")."""

import hashlib
from datetime import datetime, timezone

import pytest
from posthog.feature_flags import _holdout_hash, match_feature_flag_properties

from support import ev, http, person, send
from phlite.flags import Context, compile_flags, evaluate, holdout_hash

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=timezone.utc)
FLAGS = "/api/projects/@project/feature_flags/"


def row(key, groups, **filters):
    return {"id": abs(hash(key)) % 10_000 + 1, "key": key, "name": "", "active": True, "deleted": False,
            "version": 1, "ensure_experience_continuity": False, "filters": {"groups": groups, **filters}}


def one(flag, distinct_id="user-1", props=None, **ctx):
    compiled = compile_flags([flag])
    return evaluate(compiled, Context(distinct_id, props or {}, now=NOW, **ctx))[flag["key"]]


def sdk(flag, distinct_id="user-1", props=None):
    return match_feature_flag_properties(flag, distinct_id, props or {}, bucketing_value=distinct_id)


def _excluded_by_zero_rollout():
    return {"properties": [{"key": "plan", "value": "pro", "operator": "exact", "type": "person"}],
            "rollout_percentage": 0}


# --- filters.early_exit -----------------------------------------------------------------------------


def test_early_exit_stops_at_a_condition_that_matched_but_rolled_the_person_out():
    groups = [_excluded_by_zero_rollout(), {"properties": [], "rollout_percentage": 100}]
    flag = row("ee", groups, early_exit=True)
    result = one(flag, props={"plan": "pro"})
    assert (result.enabled, result.reason_code, result.condition_index) == (False, "out_of_rollout_bound", 0)
    assert sdk(flag, props={"plan": "pro"}) is False
    # Without early_exit the second condition still admits the person.
    plain = row("ee", groups)
    assert one(plain, props={"plan": "pro"}).enabled is True
    assert sdk(plain, props={"plan": "pro"}) is True


def test_early_exit_goes_on_when_the_properties_do_not_match():
    flag = row("ee", [_excluded_by_zero_rollout(), {"properties": [], "rollout_percentage": 100}], early_exit=True)
    result = one(flag, props={"plan": "free"})
    assert (result.enabled, result.condition_index) == (True, 1)
    assert sdk(flag, props={"plan": "free"}) is True


def test_early_exit_must_be_true_itself():
    flag = row("ee", [_excluded_by_zero_rollout(), {"properties": []}], early_exit="yes")
    assert one(flag, props={"plan": "pro"}).enabled is True


# --- holdout of an empty distinct id ----------------------------------------------------------------


def test_holdout_hash_of_an_empty_id_is_the_hash_of_holdout_dash():
    expected = (int(hashlib.sha1(b"holdout-").hexdigest()[:15], 16)) / 0xFFFFFFFFFFFFFFF
    assert holdout_hash("") == pytest.approx(expected, abs=1e-15)
    assert holdout_hash("") == pytest.approx(_holdout_hash(""), abs=1e-15)
    assert holdout_hash("") > 0.5  # so a small holdout does not take the empty id


def test_empty_distinct_id_is_not_in_every_holdout():
    flag = row("h", [{"properties": []}], holdout={"id": 7, "exclusion_percentage": 10})
    result = one(flag, distinct_id="")
    assert (result.enabled, result.variant, result.reason_code) == (True, None, "condition_match")
    assert one(row("h", [{"properties": []}], holdout={"id": 7, "exclusion_percentage": 100}), "").variant == "holdout-7"


# --- person_metadata ---------------------------------------------------------------------------------

CREATED_BEFORE_2021 = {"key": "created_at", "type": "person_metadata", "operator": "is_date_before",
                       "value": "2021-01-01"}


def test_person_metadata_reads_the_creation_time_not_a_property():
    flag = row("new-users", [{"properties": [CREATED_BEFORE_2021]}])
    old = datetime(2020, 5, 1, tzinfo=timezone.utc)
    assert one(flag, person_created_at=old).enabled is True
    # A property of the same name is not the person's creation time.
    assert one(flag, props={"created_at": "2030-01-01"}, person_created_at=old).enabled is True
    assert one(flag, props={"created_at": "2019-01-01"},
               person_created_at=datetime(2022, 1, 1, tzinfo=timezone.utc)).enabled is False


def test_person_metadata_without_a_stored_person_is_a_missing_value():
    flag = row("m", [{"properties": [CREATED_BEFORE_2021]}])
    assert one(flag, props={"created_at": "2019-01-01"}).reason_code == "no_condition_match"
    is_set = row("m", [{"properties": [{"key": "created_at", "type": "person_metadata", "operator": "is_set"}]}])
    assert one(is_set).enabled is False
    assert one(is_set, person_created_at=NOW).enabled is True


def test_person_metadata_in_a_cohort():
    cohort = {"properties": {"type": "AND", "values": [CREATED_BEFORE_2021]}, "is_static": False}
    flag = row("c", [{"properties": [{"key": "id", "type": "cohort", "value": 5}]}])
    compiled = compile_flags([flag], {5: cohort})
    ctx = Context("u", {}, now=NOW, person_created_at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    assert evaluate(compiled, ctx)["c"].enabled is True
    assert evaluate(compiled, Context("u", {}, now=NOW))["c"].enabled is False


def test_person_metadata_over_flags_reads_the_stored_person(project):
    send(project, ev("$pageview", "early-bird", timestamp="2020-03-01T10:00:00Z", created_at="2030-01-01"))
    assert person(project, "early-bird")["created_at"].startswith("2020-03-01")
    r = project.api("POST", FLAGS, {"key": "veterans", "filters": {"groups": [{"properties": [CREATED_BEFORE_2021]}]}})
    assert r.status == 201, r.body

    def value(distinct_id):
        r = http("POST", project.url + "/flags/?v=2", {"token": project.token, "distinct_id": distinct_id})
        assert r.status == 200, r.body
        return r.json()["flags"]["veterans"]["enabled"]

    assert value("early-bird") is True
    assert value("nobody-stored") is False
