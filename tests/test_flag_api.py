"""The private flag API: feature flag CRUD (PostHog-shaped), validation errors naming the field,
the activity log of every change, and cohorts (dynamic with negation, static from distinct ids)."""

import pytest

from support import assert_error, http

FLAGS = "/api/projects/@project/feature_flags/"
COHORTS = "/api/projects/@project/cohorts/"


def person_filter(key="email", value="@example.com", operator="icontains"):
    return {"key": key, "value": value, "operator": operator, "type": "person"}


def create(project, **body):
    body.setdefault("key", "flag")
    r = project.api("POST", FLAGS, body)
    assert r.status == 201, r.body
    return r.json()


def test_create_get_and_defaults(project):
    flag = create(project, key="beta", filters={"groups": [{"properties": [], "rollout_percentage": 50}]})
    assert flag["key"] == "beta"
    assert flag["team_id"] == project.id
    assert flag["active"] is True and flag["deleted"] is False
    assert flag["version"] == 1
    assert flag["name"] == ""
    assert flag["ensure_experience_continuity"] is False
    assert flag["evaluation_runtime"] == "all"
    assert flag["created_at"].endswith("Z")
    assert flag["created_by"]["personal_api_key_id"] > 0
    got = project.api("GET", f"{FLAGS}{flag['id']}/")
    assert flag.pop("warnings") == []  # writes answer warnings; reads do not
    assert got.status == 200 and got.json() == flag
    # @current is the key's project.
    assert project.api("GET", f"/api/projects/@current/feature_flags/{flag['id']}").json()["key"] == "beta"
    minimal = create(project, key="bare")
    assert minimal["filters"] == {"groups": []}


def test_list_is_paginated_and_excludes_deleted(project):
    ids = [create(project, key=f"f{i}")["id"] for i in range(3)]
    project.api("PATCH", f"{FLAGS}{ids[1]}/", {"deleted": True})
    page = project.api("GET", FLAGS + "?limit=1").json()
    assert page["count"] == 2
    assert [f["key"] for f in page["results"]] == ["f0"]
    assert page["previous"] is None
    nxt = http("GET", page["next"], headers={"Authorization": f"Bearer {project.key}"}).json()
    assert [f["key"] for f in nxt["results"]] == ["f2"]
    assert nxt["next"] is None and nxt["previous"]
    assert [f["key"] for f in project.api("GET", FLAGS + "?search=F2").json()["results"]] == ["f2"]


def test_patch_bumps_version_only_on_change(project):
    flag = create(project, key="v")
    r = project.api("PATCH", f"{FLAGS}{flag['id']}/", {"name": "Version test", "active": False})
    assert r.status == 200
    assert r.json()["version"] == 2 and r.json()["active"] is False and r.json()["name"] == "Version test"
    same = project.api("PATCH", f"{FLAGS}{flag['id']}/", {"name": "Version test"}).json()
    assert same["version"] == 2
    # PUT takes the whole object (key required); read-only fields are ignored.
    r = project.api("PUT", f"{FLAGS}{flag['id']}/", {**same, "active": True, "id": 999})
    assert r.status == 200 and r.json()["version"] == 3 and r.json()["id"] == flag["id"]
    assert project.api("PUT", f"{FLAGS}{flag['id']}/", {"active": True}).json()["attr"] == "key"
    # A stale version is a conflict, not a silent overwrite.
    r = project.api("PATCH", f"{FLAGS}{flag['id']}/", {"version": 1, "active": False})
    assert r.status == 409 and r.json()["attr"] == "version"


def test_delete_is_a_patch_and_frees_the_key(project):
    flag = create(project, key="gone")
    r = project.api("DELETE", f"{FLAGS}{flag['id']}/")
    assert r.status == 405 and r.json()["code"] == "method_not_allowed"
    assert "PATCH" in r.headers["Allow"]
    r = project.api("PATCH", f"{FLAGS}{flag['id']}/", {"deleted": True})
    assert r.status == 200 and r.json()["deleted"] is True
    again = create(project, key="gone")
    assert again["id"] != flag["id"]
    # Restoring the old one would duplicate the live key.
    r = project.api("PATCH", f"{FLAGS}{flag['id']}/", {"deleted": False})
    assert r.status == 400 and r.json()["attr"] == "key"


def test_not_found_and_auth(project, server):
    assert project.api("GET", f"{FLAGS}999999/").status == 404
    assert project.api("PATCH", f"{FLAGS}999999/", {"active": False}).status == 404
    r = http("GET", project.url + f"/api/projects/{project.id}/feature_flags/")
    assert r.status == 401 and r.json()["code"] == "not_authenticated"
    r = http("GET", project.url + f"/api/projects/{project.id}/feature_flags/",
             headers={"Authorization": "Bearer phx_nope"})
    assert r.status == 401
    from conftest import Project

    other = Project(server)
    r = http("GET", project.url + f"/api/projects/{other.id}/feature_flags/",
             headers={"Authorization": f"Bearer {project.key}"})
    assert r.status == 403


VARIANTS = {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}
INVALID = [
    ("bad key", {"key": "has space"}, "key"),
    ("missing key", {"key": None}, "key"),
    ("unknown operator", {"filters": {"groups": [{"properties": [person_filter(operator="resembles")]}]}},
     "filters"),
    ("variants not 100", {"filters": {"multivariate": {"variants": [{"key": "a", "rollout_percentage": 60},
                                                                    {"key": "b", "rollout_percentage": 30}]},
                                      "groups": []}}, "filters"),
    ("payload not JSON text", {"filters": {"groups": [], "payloads": {"true": "{not json"}}}, "filters"),
    ("payload not a string", {"filters": {"groups": [], "payloads": {"true": {"a": 1}}}}, "filters"),
    ("rollout out of range", {"filters": {"groups": [{"properties": [], "rollout_percentage": 101}]}}, "filters"),
    ("unknown cohort", {"filters": {"groups": [{"properties": [{"type": "cohort", "key": "id", "value": 99999}]}]}},
     "filters"),
    ("filters not an object", {"filters": []}, "filters"),
    ("active not a boolean", {"active": "yes"}, "active"),
    ("bad runtime", {"evaluation_runtime": "edge"}, "evaluation_runtime"),
]


@pytest.mark.parametrize("name,body,attr", INVALID, ids=[c[0] for c in INVALID])
def test_validation_errors_name_the_field(project, name, body, attr):
    r = project.api("POST", FLAGS, {"key": "ok-key", **body})
    err = assert_error(r, 400, type="validation_error", attr=attr)
    assert err["detail"]


def test_validation_detail_points_into_filters(project):
    r = project.api("POST", FLAGS, {"key": "x", "filters": {
        "groups": [{"properties": []}, {"properties": [person_filter(), person_filter(operator="resembles")]}]}})
    assert "groups[1].properties[1].operator" in r.json()["detail"]
    assert "resembles" in r.json()["detail"]


def test_duplicate_key(project):
    create(project, key="dup")
    r = project.api("POST", FLAGS, {"key": "dup"})
    assert r.status == 400
    assert r.json()["attr"] == "key" and r.json()["code"] == "unique"
    other = create(project, key="other")
    r = project.api("PATCH", f"{FLAGS}{other['id']}/", {"key": "dup"})
    assert r.status == 400 and r.json()["attr"] == "key"


def test_flag_dependencies_and_cycles(project):
    base = create(project, key="base")
    dep = {"type": "flag", "key": str(base["id"]), "value": True, "operator": "flag_evaluates_to"}
    child = create(project, key="child", filters={"groups": [{"properties": [dep]}]})
    # base depending on child closes a cycle.
    back = {"type": "flag", "key": str(child["id"]), "value": True, "operator": "flag_evaluates_to"}
    r = project.api("PATCH", f"{FLAGS}{base['id']}/", {"filters": {"groups": [{"properties": [back]}]}})
    assert r.status == 400 and r.json()["code"] == "circular_dependency"
    r = project.api("PATCH", f"{FLAGS}{base['id']}/", {"filters": {"groups": [{"properties": [
        {**back, "key": str(base["id"])}]}]}})
    assert r.status == 400
    # A flag others depend on cannot be deleted while they are active.
    r = project.api("PATCH", f"{FLAGS}{base['id']}/", {"deleted": True})
    assert r.status == 400 and "child" in r.json()["detail"] and r.json()["attr"] == "deleted"
    project.api("PATCH", f"{FLAGS}{child['id']}/", {"active": False})
    assert project.api("PATCH", f"{FLAGS}{base['id']}/", {"deleted": True}).status == 200


def test_every_change_is_in_the_activity_log(project):
    flag = create(project, key="audited", name="first")
    fid = flag["id"]
    project.api("PATCH", f"{FLAGS}{fid}/", {"name": "second", "filters": {"groups": [{"rollout_percentage": 10}]}})
    project.api("PATCH", f"{FLAGS}{fid}/", {"name": "second"})  # no change, no entry
    project.api("PATCH", f"{FLAGS}{fid}/", {"deleted": True})
    r = project.api("GET", f"{FLAGS}{fid}/activity/")
    assert r.status == 200
    log = r.json()
    assert log["count"] == 3
    assert [e["activity"] for e in log["results"]] == ["deleted", "updated", "created"]
    created, updated = log["results"][2], log["results"][1]
    assert created["before"] is None and created["after"]["name"] == "first"
    assert updated["before"]["name"] == "first" and updated["after"]["name"] == "second"
    assert updated["before"]["version"] == 1 and updated["after"]["version"] == 2
    assert {c["field"] for c in updated["detail"]["changes"]} == {"name", "filters"}
    assert updated["user"]["personal_api_key_id"] == flag["created_by"]["personal_api_key_id"]
    assert updated["created_at"].endswith("Z") and updated["item_id"] == str(fid)
    assert updated["detail"]["name"] == "audited"
    # The project-wide log has the same entries.
    everything = project.api("GET", f"{FLAGS}activity/").json()
    assert everything["count"] == 3
    assert project.api("GET", f"{FLAGS}999999/activity/").status == 404


def test_activity_records_which_key(project, server):
    flag = create(project, key="who")
    second = server.store.create_personal_key("second", [project.id])
    http("PATCH", project.url + f"/api/projects/{project.id}/feature_flags/{flag['id']}/", {"active": False},
         headers={"Authorization": f"Bearer {second['personal_api_key']}"})
    entries = project.api("GET", f"{FLAGS}{flag['id']}/activity/").json()["results"]
    assert entries[0]["user"] == {"personal_api_key_id": second["id"]}
    assert entries[1]["user"] != entries[0]["user"]


# --- cohorts ----------------------------------------------------------------------------------------


def dynamic(values, kind="OR"):
    return {"properties": {"type": kind, "values": [{"type": "AND", "values": values}]}}


def test_dynamic_cohort_crud(project):
    body = {"name": "Pros", "filters": dynamic([
        {"key": "plan", "value": "pro", "operator": "exact", "type": "person"},
        {"key": "email", "value": "@spam.com", "operator": "icontains", "type": "person", "negation": True},
    ])}
    r = project.api("POST", COHORTS, body)
    assert r.status == 201, r.body
    cohort = r.json()
    assert cohort["is_static"] is False and cohort["count"] is None and cohort["version"] == 1
    assert cohort["filters"] == body["filters"]
    assert project.api("GET", f"{COHORTS}{cohort['id']}/").json()["name"] == "Pros"
    r = project.api("PATCH", f"{COHORTS}{cohort['id']}/", {"name": "Pro users"})
    assert r.json()["name"] == "Pro users" and r.json()["version"] == 2
    listed = project.api("GET", COHORTS).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == cohort["id"]
    activity = project.api("GET", f"{COHORTS}{cohort['id']}/activity/").json()
    assert [e["activity"] for e in activity["results"]] == ["updated", "created"]


def test_static_cohort_from_distinct_ids(project):
    r = project.api("POST", COHORTS, {"name": "Beta testers", "is_static": True, "distinct_ids": ["a", "b", "a", 7]})
    assert r.status == 201, r.body
    cohort = r.json()
    assert cohort["is_static"] is True and cohort["count"] == 3
    got = project.api("GET", f"{COHORTS}{cohort['id']}/?include_members=1").json()
    assert got["distinct_ids"] == ["7", "a", "b"]
    r = project.api("PATCH", f"{COHORTS}{cohort['id']}/", {"distinct_ids": ["c"]})
    assert r.json()["count"] == 1 and r.json()["version"] == 2
    entry = project.api("GET", f"{COHORTS}{cohort['id']}/activity/").json()["results"][0]
    assert entry["activity"] == "updated"


@pytest.mark.parametrize("body,attr", [
    ({"filters": dynamic([{"key": "plan", "value": "x", "operator": "resembles", "type": "person"}])}, "filters"),
    ({"filters": {"properties": {"type": "XOR", "values": []}}}, "filters"),
    ({"filters": dynamic([{"type": "cohort", "key": "id", "value": 999999}])}, "filters"),
    ({"name": "no filters"}, "filters"),
    ({"is_static": True, "filters": dynamic([{"key": "a", "value": "b", "type": "person"}])}, "filters"),
    ({"distinct_ids": ["a"], "filters": dynamic([])}, "distinct_ids"),
    ({"is_static": True, "distinct_ids": "a"}, "distinct_ids"),
], ids=["operator", "group type", "unknown cohort", "missing filters", "static with filters", "ids on dynamic",
        "ids not a list"])
def test_cohort_validation(project, body, attr):
    r = project.api("POST", COHORTS, body)
    assert r.status == 400, r.body
    assert r.json()["attr"] == attr


def test_cohort_cycles_and_deletion_in_use(project):
    a = project.api("POST", COHORTS, {"filters": dynamic([{"key": "x", "value": "1", "type": "person"}])}).json()
    b = project.api("POST", COHORTS, {"filters": dynamic([{"type": "cohort", "key": "id", "value": a["id"]}])}).json()
    r = project.api("PATCH", f"{COHORTS}{a['id']}/", {"filters": dynamic([{"type": "cohort", "key": "id",
                                                                           "value": b["id"]}])})
    assert r.status == 400 and r.json()["code"] == "circular_dependency"
    create(project, key="uses-b", filters={"groups": [{"properties": [{"type": "cohort", "key": "id",
                                                                        "value": b["id"]}]}]})
    r = project.api("PATCH", f"{COHORTS}{b['id']}/", {"deleted": True})
    assert r.status == 400 and "uses-b" in r.json()["detail"]
    assert project.api("PATCH", f"{COHORTS}{b['id']}/", {"is_static": True}).status == 400
