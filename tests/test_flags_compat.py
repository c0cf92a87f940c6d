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


# --- PostHog's legacy format and the newcomer's guess ------------------------------------------------


def _rollout_split(flag_key, percentage, ids):
    """(ids inside, ids outside) of a rollout, by the server's hash."""
    from phlite.flags import hash_value
    inside = [i for i in ids if hash_value(flag_key, i) <= percentage / 100]
    return inside, [i for i in ids if i not in inside]


def flags_for(project, distinct_id, **body):
    r = http("POST", project.url + "/flags/?v=2", {"token": project.token, "distinct_id": distinct_id, **body})
    assert r.status == 200, r.body
    return r.json()["flags"]


def test_legacy_row_is_read_as_one_condition_with_the_top_level_rollout():
    legacy = {"id": 3, "key": "old", "name": "", "active": True, "deleted": False, "version": 1,
              "ensure_experience_continuity": False, "rollout_percentage": 50,
              "filters": {"properties": [{"key": "plan", "value": "pro", "type": "person"}]}}
    inside, outside = _rollout_split("old", 50, [f"u{i}" for i in range(40)])
    compiled = compile_flags([legacy])
    for distinct_id, expected in [(inside[0], True), (outside[0], False)]:
        result = evaluate(compiled, Context(distinct_id, {"plan": "pro"}, now=NOW))["old"]
        assert (result.enabled, result.condition_index) == (expected, 0)
    assert evaluate(compiled, Context(inside[0], {"plan": "free"}, now=NOW))["old"].enabled is False
    # No rollout at all: everyone whose properties match, as PostHog reads it.
    everyone = {**legacy, "rollout_percentage": None}
    assert evaluate(compile_flags([everyone]), Context(outside[0], {"plan": "pro"}, now=NOW))["old"].enabled


def test_newcomer_body_with_a_top_level_rollout_is_a_fifty_percent_flag(project):
    r = project.api("POST", FLAGS, {"key": "half", "rollout_percentage": 50})
    assert r.status == 201, r.body
    flag = r.json()
    assert flag["filters"] == {"groups": [{"properties": [], "rollout_percentage": 50}]}
    assert flag["warnings"] and "legacy format" in flag["warnings"][0]
    inside, outside = _rollout_split("half", 50, [f"n{i}" for i in range(40)])
    assert flags_for(project, inside[0])["half"]["enabled"] is True
    assert flags_for(project, outside[0])["half"]["enabled"] is False
    # The local-evaluation definitions carry the same condition, and an SDK agrees.
    r = project.api("GET", "/api/projects/@project/feature_flags/local_evaluation")
    served = next(f for f in r.json()["flags"] if f["key"] == "half")
    assert served["filters"]["groups"] == [{"properties": [], "rollout_percentage": 50}]
    assert sdk(served, inside[0]) is True and sdk(served, outside[0]) is False


def test_legacy_filters_with_properties_over_the_api(project):
    r = project.api("POST", FLAGS, {"key": "legacy-props", "rollout_percentage": 100, "filters": {
        "properties": [{"key": "email", "value": "@acme.com", "operator": "icontains", "type": "person"}]}})
    assert r.status == 201, r.body
    assert r.json()["filters"]["groups"][0]["rollout_percentage"] == 100
    assert flags_for(project, "a", person_properties={"email": "x@acme.com"})["legacy-props"]["enabled"] is True
    assert flags_for(project, "a", person_properties={"email": "x@other.com"})["legacy-props"]["enabled"] is False


def test_top_level_rollout_beside_groups_is_ignored_with_a_warning(project):
    r = project.api("POST", FLAGS, {"key": "both", "rollout_percentage": 5,
                                    "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}})
    assert r.status == 201, r.body
    assert r.json()["filters"]["groups"][0]["rollout_percentage"] == 100
    assert any(w.startswith("rollout_percentage: ignored") for w in r.json()["warnings"])
    r = project.api("POST", FLAGS, {"key": "bad-rollout", "rollout_percentage": "half"})
    assert r.status == 400 and r.json()["attr"] == "rollout_percentage"


def test_a_flag_without_conditions_says_it_is_off(project):
    r = project.api("POST", FLAGS, {"key": "nothing"})
    assert r.status == 201
    assert "off for everyone" in r.json()["warnings"][0]
    assert '"rollout_percentage": 50' in r.json()["warnings"][0]  # the expected shape


# --- definitions PostHog stores are accepted, with warnings --------------------------------------------

PERSON = {"type": "person"}
ACCEPTED = [
    ("non-numeric gt", {"key": "age", "value": "old", "operator": "gt", **PERSON}, {"age": 50}, False),
    ("invalid regex", {"key": "email", "value": "(", "operator": "regex", **PERSON}, {"email": "("}, False),
    ("invalid regex, negated", {"key": "email", "value": "(", "operator": "not_regex", **PERSON}, {"email": "a"},
     False),
    ("four-part semver", {"key": "v", "value": "1.2.3.4", "operator": "semver_gt", **PERSON}, {"v": "9.0.0"}, False),
    ("numeric date value", {"key": "d", "value": 1700000000, "operator": "is_date_before", **PERSON},
     {"d": "2000-01-01"}, False),
    ("dependency, wrong operator", {"key": "base", "value": True, "operator": "exact", "type": "flag"}, {}, False),
    ("dependency, object value", {"key": "base", "value": {"x": 1}, "operator": "flag_evaluates_to",
                                  "type": "flag"}, {}, False),
]


@pytest.mark.parametrize("name,filt,props,expected", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_with_a_warning_and_evaluated_as_the_server_does(project, name, filt, props, expected):
    if filt["type"] == "flag":
        base = project.api("POST", FLAGS, {"key": "base", "filters": {"groups": [{"properties": []}]}})
        filt = {**filt, "key": str(base.json()["id"])}
    key = "f-" + name.replace(" ", "-").replace(",", "")
    r = project.api("POST", FLAGS, {"key": key, "filters": {"groups": [{"properties": [filt]}]}})
    assert r.status == 201, r.body
    assert r.json()["warnings"], "a filter that never matches is named"
    assert flags_for(project, "p", person_properties=props)[key]["enabled"] is expected
    assert one(row(key, [{"properties": [filt]}]), props=props).enabled is expected


def test_variant_override_naming_no_variant_falls_back_to_the_hashed_variant(project):
    variants = {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}
    r = project.api("POST", FLAGS, {"key": "mv", "filters": {
        "multivariate": variants, "groups": [{"properties": [], "variant": "gone"}]}})
    assert r.status == 201, r.body
    assert "gone" in r.json()["warnings"][0]
    flag = row("mv", [{"properties": [], "variant": "gone"}], multivariate=variants)
    for distinct_id in ("u1", "u2", "u3", "u4"):
        expected = sdk(flag, distinct_id)
        assert flags_for(project, distinct_id)["mv"]["variant"] == expected
        assert expected in ("a", "b")


def test_dependency_on_a_missing_flag_is_false_missing_dependency(project):
    dep = {"key": "424242", "value": True, "operator": "flag_evaluates_to", "type": "flag"}
    r = project.api("POST", FLAGS, {"key": "orphan", "filters": {"groups": [{"properties": [dep]}]}})
    assert r.status == 201, r.body
    assert "missing_dependency" in r.json()["warnings"][0]
    r = http("POST", project.url + "/flags/?v=2", {"token": project.token, "distinct_id": "x"})
    detail = r.json()["flags"]["orphan"]
    assert (detail["enabled"], detail["reason"]["code"]) == (False, "missing_dependency")
    # Depending on itself stays a refused cycle.
    own = r.json()["flags"]["orphan"]["metadata"]["id"]
    r = project.api("PATCH", f"{FLAGS}{own}/", {"filters": {"groups": [{"properties": [{**dep, "key": str(own)}]}]}})
    assert r.status == 400 and r.json()["code"] == "circular_dependency"


def test_legacy_holdout_groups_are_accepted(project):
    holdout = [{"properties": [], "rollout_percentage": 100, "variant": "holdout"}]
    r = project.api("POST", FLAGS, {"key": "lh", "filters": {"groups": [{"properties": []}],
                                                             "holdout_groups": holdout}})
    assert r.status == 201, r.body
    assert flags_for(project, "someone")["lh"]["variant"] == "holdout"


def test_bucketing_identifier_empty_means_distinct_id(project):
    r = project.api("POST", FLAGS, {"key": "bk", "bucketing_identifier": "",
                                    "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}})
    assert r.status == 201, r.body
    assert r.json()["bucketing_identifier"] is None
    assert flags_for(project, "someone")["bk"]["enabled"] is True


def test_cohorts_with_empty_groups_and_filters_without_operator(project):
    cohorts = "/api/projects/@project/cohorts/"
    empty = project.api("POST", cohorts, {"name": "empty", "filters": {"properties": {}}})
    assert empty.status == 201, empty.body
    empty_or = project.api("POST", cohorts, {"name": "empty-or", "filters": {"properties": {"type": "OR", "values": [
        {"type": "AND", "values": []}]}}})
    assert empty_or.status == 201, empty_or.body
    no_operator = project.api("POST", cohorts, {"name": "no-op", "filters": {"properties": {"type": "AND", "values": [
        {"key": "plan", "value": "pro", "type": "person"}]}}})
    assert no_operator.status == 201, no_operator.body
    for name, cohort in [("c-empty", empty), ("c-empty-or", empty_or), ("c-no-op", no_operator)]:
        r = project.api("POST", FLAGS, {"key": name, "filters": {"groups": [{"properties": [
            {"key": "id", "type": "cohort", "value": cohort.json()["id"]}]}]}})
        assert r.status == 201, r.body
    got = flags_for(project, "p", person_properties={"plan": "pro"})
    assert [got[k]["enabled"] for k in ("c-empty", "c-empty-or", "c-no-op")] == [True, True, True]
    assert flags_for(project, "p", person_properties={"plan": "free"})["c-no-op"]["enabled"] is False


# --- the project timezone ------------------------------------------------------------------------------


def test_project_timezone_is_validated_and_read_by_naive_dates(project):
    r = project.api("PATCH", "/api/projects/@project/", {"timezone": "Mars/Olympus"})
    assert r.status == 400 and r.json()["attr"] == "timezone"
    assert project.api("GET", "/api/projects/@project/").json()["timezone"] == "UTC"
    # 2024-06-01 00:00 in Tokyo is 2024-05-31 15:00 UTC: a person seen at 16:00 UTC on May 31 is
    # after it in Tokyo, but before it in UTC.
    r = project.api("POST", FLAGS, {"key": "june", "filters": {"groups": [{"properties": [
        {"key": "seen", "value": "2024-06-01", "operator": "is_date_after", "type": "person"}]}]}})
    assert r.status == 201, r.body
    seen = {"seen": "2024-05-31T16:00:00Z"}
    assert flags_for(project, "tz", person_properties=seen)["june"]["enabled"] is False
    r = project.api("PATCH", "/api/projects/@project/", {"timezone": "Asia/Tokyo"})
    assert r.status == 200 and r.json()["timezone"] == "Asia/Tokyo"
    assert flags_for(project, "tz", person_properties=seen)["june"]["enabled"] is True
