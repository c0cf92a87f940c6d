"""The differential test of tests/test_flags_differential.py with phlite behind real HTTP: the same
seeded projects and persons, stored in a running phlite, each person evaluated by one POST to
/flags/?v=2. Every flag of every case must equal the in-process evaluator's answer, and agree with
posthog-python's local evaluator wherever that is conclusive.

Flags and cohorts are written through the store, not the API: the generator deliberately makes
definitions the API refuses (invalid regexes, variants summing below 100, unknown overrides) to
check that evaluation copes with them, and the API's own checks are tested in test_flag_api.py.
"""

from http.client import HTTPConnection
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from test_flags_differential import (
    GROUP_TYPES,
    PERSONS_PER_PROJECT,
    PROJECTS,
    SEED,
    excluded,
    phlite_evaluate,
    random_case,
    random_project,
    sdk_evaluate,
)

from support import http

# The first HTTP_PROJECTS of the in-process test's projects (the generator is sequential, so they
# are the very same projects and persons), sent by a few concurrent clients.
HTTP_PROJECTS = 120
WORKERS = 4


def _remap_cohort_refs(node, ids):
    """A copy of a filter tree with generated cohort ids (1, 2, 3) replaced by stored ones."""
    if isinstance(node, list):
        return [_remap_cohort_refs(n, ids) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _remap_cohort_refs(v, ids) for k, v in node.items()}
    if node.get("type") == "cohort":
        out["value"] = ids[str(node["value"])]
    return out


def store_project(srv, flags, cohorts):
    """Create a project holding these generated flags and cohorts; returns its token."""
    store = srv.store
    project = store.create_project("differential")
    pid = project["id"]
    ids = {}
    for gen_id in sorted(cohorts, key=int):  # cohort 3 may reference 1 and 2: create in order
        definition = _remap_cohort_refs(cohorts[gen_id], ids)
        row = store.create_cohort(pid, lambda d=definition: ({"name": gen_id, "filters": {"properties": d},
                                                               "is_static": False}, None), None)
        ids[gen_id] = row["id"]
    for flag in flags:
        fields = {
            "key": flag["key"],
            "name": "",
            "active": flag["active"],
            "filters": _remap_cohort_refs(flag["filters"], ids),
            "ensure_experience_continuity": flag["ensure_experience_continuity"],
            "bucketing_identifier": flag.get("bucketing_identifier"),
        }
        store.create_flag(pid, fields, None)
    # Group types come from ingestion, in order of first appearance: company = 0, project = 1.
    batch = [{"event": "$groupidentify", "distinct_id": "setup", "properties": {
        "$group_type": GROUP_TYPES[str(i)], "$group_key": "setup", "$group_set": {}}} for i in range(2)]
    r = http("POST", srv.url + "/batch/", {"api_key": project["api_token"], "batch": batch})
    assert r.status == 200, r.body
    return project["api_token"], pid


class Client(threading.local):
    """One keep-alive connection per worker thread."""

    def __init__(self, url):
        parts = urlsplit(url)
        self.conn = HTTPConnection(parts.hostname, parts.port, timeout=30)

    def flags(self, body):
        self.conn.request("POST", "/flags/?v=2", json.dumps(body), {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        raw = resp.read()
        assert resp.status == 200, raw
        return json.loads(raw)


def http_evaluate(client, token, case):
    """({flag key: (value, payload)}, errorsWhileComputingFlags) from phlite's /flags."""
    body = {"token": token, "distinct_id": case["distinct_id"], "person_properties": case["person_properties"],
            "groups": case["groups"], "group_properties": case["group_properties"]}
    if case.get("device_id"):
        body["$device_id"] = case["device_id"]
    answer = client.flags(body)
    out = {}
    for key, detail in answer["flags"].items():
        value = detail["variant"] if detail["enabled"] and detail["variant"] is not None else detail["enabled"]
        out[key] = (value, detail["metadata"]["payload"])
    return out, answer["errorsWhileComputingFlags"]


def test_flags_over_http_agree_with_the_evaluator_and_posthog_python(server):
    rng = random.Random(SEED)  # the in-process test's sequence: the same projects, the same persons
    projects = []
    for _ in range(PROJECTS):
        flags, cohorts = random_project(rng)
        cases = [random_case(rng, flags) for _ in range(PERSONS_PER_PROJECT)]
        projects.append((flags, cohorts, cases))
    projects = projects[:HTTP_PROJECTS]
    tokens = [store_project(server, flags, cohorts)[0] for flags, cohorts, _ in projects]
    server.flush()  # the group types are in

    client = Client(server.url)
    jobs = [(p, c) for p, (_, _, cases) in enumerate(projects) for c in range(len(cases))]

    def ask(job):
        return http_evaluate(client, tokens[job[0]], projects[job[0]][2][job[1]])

    with ThreadPoolExecutor(WORKERS) as pool:
        answers = list(pool.map(ask, jobs))
        # Asked again: the same answers, the cacheable ones from the answer cache (phlite/flags/answers.py).
        hits = server.app.flags.answers.hits
        again = list(pool.map(ask, jobs))
    assert again == answers
    # Not every answer is cacheable (errors, relative dates), but most are.
    assert server.app.flags.answers.hits - hits >= len(jobs) // 2

    total = conclusive = 0
    differs_from_evaluator, differs_from_sdk = [], []
    for job, (ours, _had_errors) in zip(jobs, answers):
        flags, cohorts, cases = projects[job[0]]
        case = cases[job[1]]
        by_key = {f["key"]: f for f in flags}
        in_process = {k: v for k, v in phlite_evaluate(flags, cohorts, case).items()}
        for flag in flags:
            total += 1
            mine = ours.get(flag["key"], (False, None))
            if mine != in_process.get(flag["key"], (False, None)):
                differs_from_evaluator.append((flag, case, mine, in_process.get(flag["key"])))
            theirs = sdk_evaluate(flag, by_key, cohorts, case)
            if theirs is None or excluded(flag, by_key, cohorts, case):
                continue
            conclusive += 1
            if mine != theirs:
                differs_from_sdk.append((flag, case, mine, theirs))
    assert not differs_from_evaluator, f"{len(differs_from_evaluator)} differ, first: {differs_from_evaluator[0]}"
    assert not differs_from_sdk, f"{len(differs_from_sdk)} differ, first: {differs_from_sdk[0]}"
    assert len(jobs) == HTTP_PROJECTS * PERSONS_PER_PROJECT
    assert total == len(jobs) * 6
    assert conclusive >= 4_000, (conclusive, total)
    print(f"\n/flags requests: {len(jobs)}, flag cases: {total}, conclusive for posthog-python: {conclusive}")
