"""Long dependency chains and deep nesting, over real HTTP: a chain of 1,500 dependent flags and
one of 600 cohorts evaluate and serve their definitions; filters or payloads nested past the
limit are refused when they are written (400 naming the field), never a 500 later."""

import json

import pytest

from conftest import http

FLAGS = "/api/projects/@project/feature_flags/"
COHORTS = "/api/projects/@project/cohorts/"


def create(project, path, body):
    r = project.api("POST", path, body)
    assert r.status == 201, r.body
    return r.json()


def flags(project, distinct_id="user-1", **body):
    r = http("POST", project.url + "/flags/?v=2", {"token": project.token, "distinct_id": distinct_id, **body})
    assert r.status == 200, r.body
    return r.json()


def depends_on(flag_id, value=True):
    return {"groups": [{"properties": [
        {"type": "flag", "key": str(flag_id), "value": value, "operator": "flag_evaluates_to"}],
        "rollout_percentage": 100}]}


def test_a_chain_of_1500_dependent_flags_evaluates_and_serves_its_definitions(server, project):
    # The first 1,499 go straight into the store (creating them one by one over HTTP re-checks the
    # whole chain each time: minutes); the last one, the reads and the answers are real HTTP.
    store = server.store
    previous = store.create_flag(project.id, {"key": "f0", "filters": {"groups": [{"properties": [
        {"key": "plan", "value": "pro", "type": "person"}], "rollout_percentage": 100}]}}, None)
    for i in range(1, 1499):
        previous = store.create_flag(project.id, {"key": f"f{i}", "filters": depends_on(previous["id"])}, None)
    create(project, FLAGS, {"key": "f1499", "filters": depends_on(previous["id"])})
    create(project, FLAGS, {"key": "plain", "filters": {"groups": [{"rollout_percentage": 100}]}})
    assert project.api("GET", FLAGS).json()["count"] == 1501

    on = flags(project, person_properties={"plan": "pro"})
    assert on["errorsWhileComputingFlags"] is False
    assert all(on["featureFlags"][f"f{i}"] is True for i in range(1500)) and on["featureFlags"]["plain"] is True
    off = flags(project, person_properties={"plan": "free"})
    assert all(off["featureFlags"][f"f{i}"] is False for i in range(1500)) and off["featureFlags"]["plain"] is True

    r = http("GET", project.url + f"/flags/definitions?token={project.token}",
             headers={"Authorization": f"Bearer {project.key}"})
    assert r.status == 200, r.body[:300]
    by_key = {f["key"]: f for f in r.json()["flags"]}
    last = by_key["f1499"]["filters"]["groups"][0]["properties"][0]
    assert last["key"] == "f1498"
    assert last["dependency_chain"] == [f"f{i}" for i in range(1499)]
    assert by_key["f1"]["filters"]["groups"][0]["properties"][0]["dependency_chain"] == ["f0"]


def test_a_chain_of_600_cohorts_matches_and_leaves_the_other_flags_alone(project):
    cohort = create(project, COHORTS, {"filters": {"properties": {"type": "AND", "values": [
        {"key": "plan", "value": "pro", "type": "person"}]}}})
    for _ in range(599):
        cohort = create(project, COHORTS, {"filters": {"properties": {"type": "OR", "values": [
            {"type": "cohort", "key": "id", "value": cohort["id"]}]}}})
    create(project, FLAGS, {"key": "deep", "filters": {"groups": [{"properties": [
        {"type": "cohort", "key": "id", "value": cohort["id"]}], "rollout_percentage": 100}]}})
    create(project, FLAGS, {"key": "plain", "filters": {"groups": [{"rollout_percentage": 100}]}})

    on = flags(project, person_properties={"plan": "pro"})
    assert on["errorsWhileComputingFlags"] is False
    assert on["featureFlags"] == {"deep": True, "plain": True}
    assert flags(project, person_properties={"plan": "free"})["featureFlags"] == {"deep": False, "plain": True}

    r = http("GET", project.url + f"/flags/definitions?token={project.token}",
             headers={"Authorization": f"Bearer {project.key}"})
    assert r.status == 200
    assert len(r.json()["cohorts"]) == 600


def nested(depth, leaf):
    for _ in range(depth):
        leaf = {"type": "AND", "values": [leaf]}
    return leaf


def assert_refused(r, words):
    assert r.status == 400, (r.status, r.body[:300])
    body = r.json()
    assert body["type"] == "validation_error" and body["attr"] == "filters"
    assert words in body["detail"], body["detail"]


def test_absurdly_deep_cohort_filters_are_refused_at_create_time(project):
    deep = nested(200, {"key": "plan", "value": "pro", "type": "person"})
    assert_refused(project.api("POST", COHORTS, {"filters": {"properties": deep}}), "properties")
    # The same group nested a few levels is fine.
    create(project, COHORTS, {"filters": {"properties": nested(5, {"key": "plan", "value": "pro", "type": "person"})}})


@pytest.mark.parametrize("depth", [300, 5000])
def test_absurdly_deep_flag_payloads_are_refused_at_create_time(project, depth):
    payload = "[" * depth + "]" * depth
    r = project.api("POST", FLAGS, {"key": f"deep-{depth}", "filters": {
        "groups": [{"rollout_percentage": 100}], "payloads": {"true": payload}}})
    assert_refused(r, "payloads.true")
    ok = create(project, FLAGS, {"key": f"ok-{depth}", "filters": {
        "groups": [{"rollout_percentage": 100}], "payloads": {"true": json.dumps([[[{"a": [1]}]]])}}})
    assert flags(project)["featureFlagPayloads"][ok["key"]] == '[[[{"a": [1]}]]]'


def test_absurdly_deep_flag_filters_are_refused_at_create_time(project):
    value = "x"
    for _ in range(300):
        value = [value]
    r = project.api("POST", FLAGS, {"key": "deep", "filters": {"groups": [{"properties": [
        {"key": "plan", "value": value, "type": "person"}], "rollout_percentage": 100}]}})
    assert_refused(r, "groups[0].properties[0].value")
    assert project.api("GET", FLAGS).json()["count"] == 0
    assert flags(project)["flags"] == {}
