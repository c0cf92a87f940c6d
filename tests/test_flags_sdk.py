"""The real SDKs against phlite's flags: posthog-python and posthog-node evaluate the same flags
locally (definitions from /flags/definitions, polled with the ETag round trip) and remotely
(/flags), and every value and payload agrees, for person flags, group flags, multivariate flags
with payloads and cohort flags."""

import json
import random
import subprocess
from pathlib import Path

import pytest
from posthog import Posthog

from support import http

JS = Path(__file__).resolve().parent / "js"
FLAGS = "/api/projects/@project/feature_flags/"
KEYS = ["person-flag", "group-flag", "multivariate", "cohort-flag"]


def setup_flags(project):
    """The four kinds of flag of the issue's "done when", created through the API."""
    def create(path, body):
        r = project.api("POST", path, body)
        assert r.status == 201, r.body
        return r.json()

    cohort = create("/api/projects/@project/cohorts/", {"name": "Pro or French", "filters": {"properties": {
        "type": "OR", "values": [
            {"type": "AND", "values": [{"key": "plan", "value": "pro", "type": "person"}]},
            {"type": "AND", "values": [
                {"key": "country", "value": "FR", "type": "person"},
                {"key": "email", "value": "spam", "operator": "icontains", "type": "person", "negation": True}]},
        ]}}})
    create(FLAGS, {"key": "person-flag", "filters": {
        "groups": [{"properties": [{"key": "email", "value": "@example.com", "operator": "icontains",
                                    "type": "person"}], "rollout_percentage": 60}],
        "payloads": {"true": '{"banner": "hello"}'}}})
    create(FLAGS, {"key": "group-flag", "filters": {
        "aggregation_group_type_index": 0,
        "groups": [{"properties": [{"key": "seats", "value": 10, "operator": "gt", "type": "group",
                                    "group_type_index": 0}], "rollout_percentage": 70}],
        "payloads": {"true": "42"}}})
    create(FLAGS, {"key": "multivariate", "filters": {
        "groups": [
            {"properties": [{"key": "country", "value": ["US", "DE"], "operator": "exact", "type": "person"}],
             "rollout_percentage": 100},
            {"properties": [], "rollout_percentage": 40},
        ],
        "multivariate": {"variants": [{"key": "control", "rollout_percentage": 34},
                                      {"key": "test", "rollout_percentage": 33},
                                      {"key": "other", "rollout_percentage": 33}]},
        "payloads": {"control": '{"v": 0}', "test": '{"v": [1, 2]}', "other": '"plain"'}}})
    create(FLAGS, {"key": "cohort-flag", "filters": {
        "groups": [{"properties": [{"key": "id", "value": cohort["id"], "type": "cohort"}],
                    "rollout_percentage": 100}],
        "payloads": {"true": '{"cohort": true}'}}})
    # The group type must exist for both sides to map "company" to index 0.
    r = http("POST", project.url + "/batch/", {"api_key": project.token, "batch": [
        {"event": "$groupidentify", "distinct_id": "setup", "properties": {
            "$group_type": "company", "$group_key": "setup-co", "$group_set": {"seats": 1}}}]})
    assert r.status == 200
    project.flush()


def cases(n=40, seed=11):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        props = {
            "email": rng.choice(["a@example.com", "b@other.org", "spam@example.com", "x@Example.COM"]),
            "plan": rng.choice(["free", "pro"]),
            "country": rng.choice(["US", "DE", "FR", "GB"]),
        }
        case = {"distinct_id": f"sdk-user-{seed}-{i}", "person_properties": props}
        if rng.random() < 0.8:
            # Keys no stored group has, so the server adds nothing the SDK does not see either.
            case["groups"] = {"company": f"co-{seed}-{i % 7}"}
            case["group_properties"] = {"company": {"seats": rng.choice([5, 11, 50, "12"])}}
        else:
            case["groups"], case["group_properties"] = {}, {}
        out.append(case)
    return out


def python_results(client, case, local):
    kw = {"groups": case["groups"], "person_properties": case["person_properties"],
          "group_properties": case["group_properties"], "only_evaluate_locally": local}
    flags = {k: client.get_feature_flag(k, case["distinct_id"], send_feature_flag_events=False, **kw) for k in KEYS}
    payloads = {k: client.get_feature_flag_payload(k, case["distinct_id"], **kw) for k in KEYS}
    every = client.get_all_flags_and_payloads(case["distinct_id"], **kw)
    return {"flags": flags, "payloads": payloads, "all": every["featureFlags"],
            "all_payloads": every["featureFlagPayloads"]}


def test_posthog_python_local_and_remote_agree(project):
    setup_flags(project)
    remote = Posthog(project.token, host=project.url, feature_flags_request_timeout_seconds=10)
    local = Posthog(project.token, host=project.url, personal_api_key=project.key, poll_interval=600,
                    feature_flags_request_timeout_seconds=10)
    seen = []
    fetch = local._request_flag_definitions

    def spy(key, etag):
        response, fingerprint = fetch(key, etag)
        seen.append((etag, response.not_modified))
        return response, fingerprint

    local._request_flag_definitions = spy
    try:
        local.load_feature_flags()
        local.load_feature_flags()
        # The second load sent the ETag of the first and got 304 Not Modified.
        assert seen[-1][0] is not None and seen[-1][1] is True
        assert {f["key"] for f in local.feature_flags} == set(KEYS)
        kinds = {"true": 0, "false": 0, "variant": 0}
        for case in cases():
            want = python_results(remote, case, local=False)
            got = python_results(local, case, local=True)
            assert got == want, case
            for value in want["flags"].values():
                assert value is not None
                kinds["variant" if isinstance(value, str) else str(value).lower()] += 1
        # The cases exercise every kind of answer.
        assert all(kinds.values()), kinds

        # An edit is picked up on the next poll (a 200 with a new ETag), and both sides follow it.
        flag_id = next(f["id"] for f in local.feature_flags if f["key"] == "person-flag")
        project.api("PATCH", f"{FLAGS}{flag_id}/", {"filters": {"groups": [{"properties": [],
                                                                             "rollout_percentage": 100}]}})
        local.load_feature_flags()
        assert seen[-1][1] is False
        case = cases(1, seed=99)[0]
        assert python_results(local, case, True)["flags"]["person-flag"] is True
        assert python_results(remote, case, False)["flags"]["person-flag"] is True
    finally:
        local.shutdown()
        remote.shutdown()


@pytest.mark.slow
def test_posthog_node_local_and_remote_agree(project):
    setup_flags(project)
    spec = {"flags": KEYS, "cases": cases(16, seed=23)}
    out = subprocess.run(["node", str(JS / "node_flags.mjs"), project.url, project.token, project.key],
                         input=json.dumps(spec), capture_output=True, text=True, timeout=120, cwd=str(JS))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["remote"]) == len(spec["cases"])
    for case, remote, local in zip(spec["cases"], result["remote"], result["local"]):
        assert local == remote, case
        assert None not in remote["flags"].values(), (case, remote)
        assert remote["all_flags"] == remote["all"] == remote["flags"]
    # The first definitions request gets 200 and an ETag; reloads send it back and get 304.
    first, *later = result["definitions"]
    assert first == {"if_none_match": None, "status": 200}
    assert later and all(r["if_none_match"].startswith('W/"') and r["status"] == 304 for r in later)

    # And node agrees with posthog-python on the same cases.
    remote_py = Posthog(project.token, host=project.url, feature_flags_request_timeout_seconds=10)
    try:
        for case, node in zip(spec["cases"], result["remote"]):
            assert python_results(remote_py, case, local=False)["flags"] == node["flags"], case
    finally:
        remote_py.shutdown()
