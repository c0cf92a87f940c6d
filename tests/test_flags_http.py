"""/flags and /decide over real HTTP: every response shape and version (docs/flags-protocol.md "Flags endpoint: response shapes"), every
body encoding (docs/flags-protocol.md "Flags endpoint: request decoding"), token and distinct id errors (docs/flags-protocol.md "Flags endpoint: errors and other methods"), stored person and group properties,
cohorts, experience continuity, runtime filtering, a failing store; then /flags/definitions with
its ETag round trip (docs/flags-protocol.md "Local evaluation"), remote config (docs/flags-protocol.md "Remote config payload") and the Mixpanel GET answer."""

import base64
import gzip
import json
import threading
import uuid
from urllib.parse import quote, urlencode

import pytest

from support import assert_error, ev, http, send
from phlite.flags import hash_value
from phlite.store import DatabaseError

FLAGS = "/api/projects/@project/feature_flags/"
UA = {"User-Agent": "posthog-python/7.91.1"}


def make_flag(project, key, **body):
    body.setdefault("filters", {"groups": [{"properties": [], "rollout_percentage": 100}]})
    r = project.api("POST", FLAGS, {"key": key, **body})
    assert r.status == 201, r.body
    return r.json()


def post(project, body, path="/flags/?v=2", headers=None, raw=False):
    if not raw:
        body = {"token": project.token, **body}
    return http("POST", project.url + path, body, headers)


def flags(project, body=None, path="/flags/?v=2", headers=None):
    r = post(project, {"distinct_id": "user-1", **(body or {})}, path, headers)
    assert r.status == 200, r.body
    return r.json()


@pytest.fixture
def sample(project):
    """A boolean flag with a payload, a multivariate flag with payloads, and one nobody matches."""
    make_flag(project, "on", filters={"groups": [{"properties": [], "rollout_percentage": 100}],
                                      "payloads": {"true": '{"color": "blue"}'}})
    make_flag(project, "multi", filters={
        "groups": [{"properties": [], "rollout_percentage": 100, "variant": "test"}],
        "multivariate": {"variants": [{"key": "control", "rollout_percentage": 50},
                                      {"key": "test", "rollout_percentage": 50}]},
        "payloads": {"test": "[1, 2]", "control": '"c"'},
    })
    make_flag(project, "off", filters={"groups": [{"properties": [
        {"key": "email", "value": "nobody", "type": "person"}]}]})
    return project


# --- response shapes --------------------------------------------------------------------------------

CONFIG_KEYS = {"supportedCompression", "config", "toolbarParams", "isAuthenticated", "sessionRecording"}
SHAPES = [
    # (path, has config, shape)
    ("/flags/", True, "v2"),
    ("/flags/?v=1", False, "legacy"),
    ("/flags/?config=true", True, "legacy"),
    ("/flags/?v=1&config=true", True, "legacy"),
    ("/flags/?v=2", False, "v2"),
    ("/flags/?v=2&config=true", True, "v2"),
    ("/flags/?v=3", False, "v2"),
    ("/flags/?v=4", False, "v2"),
    ("/flags/?v=x", False, "legacy"),
    ("/flags", True, "v2"),
    ("/decide/", True, "decide1"),
    ("/decide/?v=1", True, "decide1"),
    ("/decide/?v=2", True, "decide2"),
    ("/decide/?v=3", True, "legacy"),
    ("/decide/?v=4", True, "v2"),
    ("/decide/?v=5&config=false", False, "v2"),
    ("/decide/?v=9x", True, "decide1"),
]


@pytest.mark.parametrize("path,config,shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_response_shape_per_endpoint_and_version(sample, path, config, shape):
    body = flags(sample, path=path)
    assert uuid.UUID(body["requestId"])
    assert isinstance(body["evaluatedAt"], int)
    assert CONFIG_KEYS <= set(body) if config else not CONFIG_KEYS & set(body)
    if config:  # the project's remote config, as /array/<token>/config answers it
        assert body["hasFeatureFlags"] is True and body["analytics"] == {"endpoint": "/i/v0/e/"}
    if shape == "decide1":
        assert sorted(body["featureFlags"]) == ["multi", "on"]
        assert "errorsWhileComputingFlags" not in body
    elif shape == "decide2":
        assert body["featureFlags"] == {"on": True, "multi": "test"}
        assert "errorsWhileComputingFlags" not in body
    elif shape == "legacy":
        assert body["featureFlags"] == {"on": True, "multi": "test", "off": False}
        assert body["featureFlagPayloads"] == {"on": '{"color": "blue"}', "multi": "[1, 2]"}
        assert body["errorsWhileComputingFlags"] is False
        assert "flags" not in body
    else:
        assert set(body["flags"]) == {"on", "multi", "off"}
        assert body["errorsWhileComputingFlags"] is False
        # Beside `flags`, for posthog-js's getRemoteConfigPayload.
        assert body["featureFlags"] == {"on": True, "multi": "test", "off": False}
        assert body["featureFlagPayloads"] == {"on": '{"color": "blue"}', "multi": "[1, 2]"}


def test_v2_flag_detail(sample):
    body = flags(sample)
    on, multi, off = body["flags"]["on"], body["flags"]["multi"], body["flags"]["off"]
    assert on == {
        "key": "on", "enabled": True, "variant": None,
        "reason": {"code": "condition_match", "condition_index": 0, "description": "Matched condition set 1"},
        "metadata": {"id": on["metadata"]["id"], "version": 1, "description": None,
                     "payload": '{"color": "blue"}', "has_experiment": False},
    }
    assert multi["variant"] == "test" and multi["metadata"]["payload"] == "[1, 2]"
    assert off["enabled"] is False and off["metadata"]["payload"] is None
    assert off["reason"] == {"code": "no_condition_match", "condition_index": 0,
                             "description": "No matching condition set"}
    assert "failed" not in off


def test_request_id_from_header_and_evaluated_at(sample, server):
    rid = str(uuid.uuid4())
    body = flags(sample, headers={"X-Request-Id": rid})
    assert body["requestId"] == rid
    assert flags(sample, headers={"X-Request-Id": "not-a-uuid"})["requestId"] != "not-a-uuid"
    import time

    assert abs(body["evaluatedAt"] - time.time() * 1000) < 60_000


# --- body encodings ---------------------------------------------------------------------------------


def encodings(token):
    body = json.dumps({"token": token, "distinct_id": "user-1"}).encode()
    b64 = base64.b64encode(body)
    gz = gzip.compress(body)
    return [
        ("json", "", body, {"Content-Type": "application/json"}),
        ("json charset", "", body, {"Content-Type": "application/json; charset=utf-8"}),
        ("text/plain", "", body, {"Content-Type": "text/plain"}),
        ("no content type", "", body, {}),
        ("gzip header", "", gz, {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        ("gzip magic, text/plain", "", gz, {"Content-Type": "text/plain"}),
        ("compression=gzip", "&compression=gzip", gz, {"Content-Type": "text/plain"}),
        ("compression=gzip-js", "&compression=gzip-js", gz, {"Content-Type": "text/plain"}),
        ("base64 body", "&compression=base64", b64, {"Content-Type": "text/plain"}),
        ("base64 body, no hint", "", b64, {"Content-Type": "application/json"}),
        ("base64 unpadded", "", b64.rstrip(b"="), {"Content-Type": "text/plain"}),
        ("form data=", "&compression=base64", b"data=" + quote(b64).encode(),
         {"Content-Type": "application/x-www-form-urlencoded"}),
        ("form without data=", "", quote(b64).encode(), {"Content-Type": "application/x-www-form-urlencoded"}),
        ("NaN and Infinity", "", body[:-1] + b', "person_properties": {"a": NaN, "b": -Infinity}}',
         {"Content-Type": "application/json"}),
    ]


def raw_post(url, body, headers):
    """POST with exactly these headers (urllib adds a form Content-Type when there is none)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", f"{parts.path}?{parts.query}", body, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("case", range(14))
def test_every_body_encoding(sample, case):
    name, query, body, headers = encodings(sample.token)[case]
    status, raw = raw_post(sample.url + "/flags/?v=2" + query, body, headers)
    assert status == 200, (name, raw)
    assert json.loads(raw)["flags"]["on"]["enabled"] is True, name


BAD_BODIES = [
    # The JSON-looking bodies carry the project's token ("TOKEN"): one that names no known key is a 401
    # before it is parsed (test_a_body_without_a_known_key_is_401_before_it_is_parsed).
    ("not JSON", b'{"token": "TOKEN", nope', {"Content-Type": "application/json"}, ""),
    ("bad gzip", b"\x1f\x8b\x08\x00garbage", {"Content-Type": "text/plain"}, ""),
    ("unsupported compression", b"{}", {"Content-Type": "application/json"}, "&compression=lz64"),
    ("gzip with form", b"data=e30=", {"Content-Type": "application/x-www-form-urlencoded"}, "&compression=gzip"),
    ("form not base64", b"data=%%%", {"Content-Type": "application/x-www-form-urlencoded"}, ""),
    ("unsupported content type", b"{}", {"Content-Type": "multipart/form-data"}, ""),
    ("array body", b'[{"token": "TOKEN"}]', {"Content-Type": "application/json"}, ""),
    ("properties not an object", b'{"token": "TOKEN", "distinct_id": "u", "person_properties": [1]}',
     {"Content-Type": "application/json"}, ""),
]


@pytest.mark.parametrize("name,body,headers,query", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_undecodable_bodies_are_400_json(project, name, body, headers, query):
    body = body.replace(b"TOKEN", project.token.encode())
    r = http("POST", project.url + "/flags/?v=2" + query, body, headers)
    err = assert_error(r, 400)
    assert err["detail"].startswith("Failed to decode request")


def test_gzip_bomb_is_refused(make_server):
    srv = make_server(max_decompressed_bytes=10_000)
    r = http("POST", srv.url + "/flags/?v=2", gzip.compress(b" " * 1_000_000), {"Content-Type": "text/plain"})
    assert r.status == 413 and r.json()["code"] == "payload_too_large"


# --- tokens, distinct ids, request fields -----------------------------------------------------------


@pytest.mark.parametrize("field", ["token", "api_key", "$token"])
def test_token_aliases(sample, field):
    r = http("POST", sample.url + "/flags/?v=2", {field: sample.token, "distinct_id": "u"})
    assert r.status == 200 and r.json()["flags"]["on"]["enabled"]


def test_token_in_query(sample):
    r = http("POST", sample.url + f"/flags/?v=2&token={sample.token}", {"distinct_id": "u"})
    assert r.status == 200 and "on" in r.json()["flags"]


def test_token_and_distinct_id_errors(project):
    r = http("POST", project.url + "/flags/?v=2", {"distinct_id": "u"})
    assert r.status == 401
    assert r.json()["type"] == "authentication_error"
    assert r.json()["detail"].startswith("No API token provided")
    r = http("POST", project.url + "/flags/?v=2", {"token": "phc_unknown", "distinct_id": "u"})
    assert r.status == 401 and r.json()["detail"].startswith("The provided API key is invalid")
    r = http("POST", project.url + "/decide/?v=4", {"token": project.token})
    assert r.status == 400 and r.json()["attr"] == "distinct_id" and r.json()["code"] == "missing_distinct_id"


def test_disable_flags_needs_no_distinct_id(sample):
    body = post(sample, {"disable_flags": True}, "/flags/?v=2&config=true").json()
    assert body["flags"] == {} and body["errorsWhileComputingFlags"] is False
    assert body["supportedCompression"] == ["gzip", "gzip-js"]


def test_numeric_and_aliased_distinct_ids(project):
    make_flag(project, "only-42", filters={"groups": [{"properties": [
        {"key": "distinct_id", "value": "42", "type": "person"}]}]})
    make_flag(project, "any", filters={"groups": [{"rollout_percentage": 100}]})
    assert post(project, {"distinct_id": 42}).json()["flags"]["any"]["enabled"]
    assert post(project, {"$distinct_id": "x"}).json()["flags"]["any"]["enabled"]


def test_flag_keys_to_evaluate_includes_dependencies(project):
    base = make_flag(project, "base")
    make_flag(project, "dependent", filters={"groups": [{"properties": [
        {"type": "flag", "key": str(base["id"]), "value": True, "operator": "flag_evaluates_to"}]}]})
    make_flag(project, "unrelated")
    body = flags(project, {"flag_keys_to_evaluate": ["dependent"]})
    assert set(body["flags"]) == {"dependent", "base"}
    assert body["flags"]["dependent"]["enabled"] is True
    assert set(flags(project, {"flag_keys": ["unrelated", "missing"]})["flags"]) == {"unrelated"}


def test_inactive_and_deleted_flags_are_absent_and_edits_apply_at_once(project):
    flag = make_flag(project, "toggle")
    assert flags(project)["flags"]["toggle"]["enabled"] is True
    project.api("PATCH", f"{FLAGS}{flag['id']}/", {"filters": {"groups": [{"rollout_percentage": 0}]}})
    body = flags(project)["flags"]["toggle"]
    assert body["enabled"] is False and body["metadata"]["version"] == 2
    assert body["reason"]["code"] == "out_of_rollout_bound"
    project.api("PATCH", f"{FLAGS}{flag['id']}/", {"active": False})
    assert flags(project)["flags"] == {}
    project.api("PATCH", f"{FLAGS}{flag['id']}/", {"active": True, "deleted": True})
    assert flags(project)["flags"] == {}


def test_get_head_and_options(sample):
    body = http("GET", sample.url + "/flags/?v=2").json()
    assert body["flags"] == {} and body["errorsWhileComputingFlags"] is False and "requestId" in body
    assert body["supportedCompression"] == ["gzip", "gzip-js"]
    legacy = http("GET", sample.url + "/flags/").json()
    assert legacy["featureFlags"] == {} and legacy["featureFlagPayloads"] == {}
    r = http("HEAD", sample.url + "/flags/")
    assert r.status == 200 and r.body == b"" and r.headers["Content-Type"] == "application/json"
    r = http("OPTIONS", sample.url + "/flags/?v=2", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert r.status == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type"
    r = http("POST", sample.url + "/flags/?v=2", {"token": sample.token, "distinct_id": "u"},
             {"Origin": "https://app.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert http("PUT", sample.url + "/flags/", b"{}").status == 405


# --- properties from the store ----------------------------------------------------------------------


def test_stored_person_properties_overlaid_by_request(project):
    make_flag(project, "pro", filters={"groups": [{"properties": [
        {"key": "plan", "value": "pro", "type": "person"}]}]})
    send(project, ev("$set", "stored-user", **{"$set": {"plan": "pro"}}))
    assert flags(project, {"distinct_id": "stored-user"})["flags"]["pro"]["enabled"] is True
    # Request person_properties win over stored ones.
    assert flags(project, {"distinct_id": "stored-user", "person_properties": {"plan": "free"}}
                 )["flags"]["pro"]["enabled"] is False
    assert flags(project, {"distinct_id": "nobody-stored"})["flags"]["pro"]["enabled"] is False
    # ?only_use_override_person_properties=true ignores what is stored.
    assert flags(project, {"distinct_id": "stored-user"}, path="/flags/?v=2&only_use_override_person_properties=true"
                 )["flags"]["pro"]["enabled"] is False
    # Through any of the person's distinct ids, after a merge.
    send(project, ev("$identify", "stored-user", **{"$anon_distinct_id": "anon-device"}))
    assert flags(project, {"distinct_id": "anon-device"})["flags"]["pro"]["enabled"] is True


def test_group_flags_with_stored_group_properties(project):
    make_flag(project, "enterprise", filters={"aggregation_group_type_index": 0, "groups": [{"properties": [
        {"key": "plan", "value": "enterprise", "type": "group", "group_type_index": 0}]}]})
    body = flags(project, {"groups": {"company": "acme"}})
    assert body["flags"]["enterprise"]["reason"]["code"] == "no_group_type"
    # The group type appears with the first $groupidentify: the next request sees it.
    send(project, ev("$groupidentify", "u", **{"$group_type": "company", "$group_key": "acme",
                                                 "$group_set": {"plan": "enterprise"}}))
    assert flags(project, {"groups": {"company": "acme"}})["flags"]["enterprise"]["enabled"] is True
    # Request group_properties win over stored ones.
    body = flags(project, {"groups": {"company": "acme"}, "group_properties": {"company": {"plan": "free"}}})
    assert body["flags"]["enterprise"]["enabled"] is False
    assert flags(project, {"groups": {"company": "other"}})["flags"]["enterprise"]["enabled"] is False
    assert flags(project)["flags"]["enterprise"]["reason"]["code"] == "no_group_type"


def test_one_query_for_the_person_and_its_groups_and_none_once_in_memory(project, server, monkeypatch):
    make_flag(project, "person", filters={"groups": [{"properties": [{"key": "a", "value": "1", "type": "person"}]}]})
    make_flag(project, "company", filters={"aggregation_group_type_index": 0, "groups": [{"properties": []}]})
    make_flag(project, "team", filters={"aggregation_group_type_index": 1, "groups": [{"properties": []}]})
    send(project, ev("$groupidentify", "u", **{"$group_type": "company", "$group_key": "c", "$group_set": {}}),
         ev("$groupidentify", "u", **{"$group_type": "team", "$group_key": "t", "$group_set": {}}))
    flags(project, {"distinct_id": "warm", "groups": {"company": "x"}})  # definitions and group types cached
    calls, statements = [], []
    for name in ("flag_subjects", "get_person_by_distinct_id", "get_group", "group_type_mapping",
                 "load_flag_definitions"):
        real = getattr(server.store, name)
        monkeypatch.setattr(server.store, name, lambda *a, _n=name, _r=real: calls.append(_n) or _r(*a))
    real_sql = server.store.db.execute_sql
    # Only the request's own statements: the writer, forwarder, deleter and roll-up threads share the store.
    background = ("phlite-writer", "phlite-forwarder", "phlite-deleter", "phlite-rollups")
    monkeypatch.setattr(server.store.db, "execute_sql",
                        lambda sql, *a, **kw: (threading.current_thread().name in background or statements.append(sql))
                        or real_sql(sql, *a, **kw))
    body = flags(project, {"groups": {"company": "c", "team": "t", "unused": "x"}, "person_properties": {"a": "1"}})
    assert all(f["enabled"] for f in body["flags"].values())
    # An unknown group type name re-reads the group types; the person and both groups are one statement.
    assert sorted(calls) == ["flag_subjects", "group_type_mapping"]
    assert len(statements) == 2 and statements[1].count("UNION ALL") == 2
    calls.clear(), statements.clear()
    flags(project, {"distinct_id": "user-2", "groups": {"company": "c", "team": "t"}})
    assert calls == ["flag_subjects"] and len(statements) == 1 and "UNION" not in statements[0]  # groups in memory
    calls.clear(), statements.clear()
    flags(project, {"distinct_id": "user-2", "groups": {"company": "c", "team": "t"}, "person_properties": {"b": 2}})
    assert calls == ["flag_subjects"] and statements == []  # a new request, everything it reads in memory
    calls.clear()
    flags(project, {"distinct_id": "user-2", "groups": {"company": "c", "team": "t"}})
    assert statements == []  # the same request again: the cached answer (phlite/flags/answers.py)


def test_cohort_flags_dynamic_and_static(project):
    dynamic = project.api("POST", "/api/projects/@project/cohorts/", {"filters": {"properties": {
        "type": "AND", "values": [{"key": "plan", "value": "pro", "type": "person"},
                                  {"key": "email", "value": "@spam", "operator": "icontains",
                                   "type": "person", "negation": True}]}}}).json()
    static = project.api("POST", "/api/projects/@project/cohorts/",
                         {"is_static": True, "distinct_ids": ["listed-id"]}).json()
    make_flag(project, "dyn", filters={"groups": [{"properties": [
        {"type": "cohort", "key": "id", "value": dynamic["id"], "operator": "in"}]}]})
    make_flag(project, "stat", filters={"groups": [{"properties": [
        {"type": "cohort", "key": "id", "value": static["id"]}]}]})
    make_flag(project, "not-stat", filters={"groups": [{"properties": [
        {"type": "cohort", "key": "id", "value": static["id"], "operator": "not_in"}]}]})
    body = flags(project, {"distinct_id": "someone", "person_properties": {"plan": "pro", "email": "a@b.c"}})
    assert body["flags"]["dyn"]["enabled"] is True
    assert body["flags"]["stat"]["enabled"] is False and body["flags"]["not-stat"]["enabled"] is True
    spam = flags(project, {"person_properties": {"plan": "pro", "email": "a@spam.com"}})
    assert spam["flags"]["dyn"]["enabled"] is False
    assert flags(project, {"distinct_id": "listed-id"})["flags"]["stat"]["enabled"] is True
    # Static membership is by distinct id: a person merged with a listed id is a member.
    send(project, ev("$identify", "new-login", **{"$anon_distinct_id": "listed-id"}))
    body = flags(project, {"distinct_id": "new-login"})
    assert body["flags"]["stat"]["enabled"] is True and body["flags"]["not-stat"]["enabled"] is False


def _ids_on_both_sides(key, pct):
    """An anonymous id inside the rollout and a user id outside it."""
    inside = next(f"anon-{i}" for i in range(1000) if hash_value(key, f"anon-{i}") <= pct / 100)
    outside = next(f"user-{i}" for i in range(1000) if hash_value(key, f"user-{i}") > pct / 100)
    return inside, outside


def test_experience_continuity(project, server):
    key = "continuity"
    make_flag(project, key, ensure_experience_continuity=True,
              filters={"groups": [{"properties": [], "rollout_percentage": 50}]})
    anon, user = _ids_on_both_sides(key, 50)
    send(project, ev("$pageview", anon))
    assert flags(project, {"distinct_id": anon})["flags"][key]["enabled"] is True
    assert flags(project, {"distinct_id": user})["flags"][key]["enabled"] is False
    send(project, ev("$identify", user, **{"$anon_distinct_id": anon}))
    # The identify-time request carries $anon_distinct_id: the anonymous id becomes the hash key.
    assert flags(project, {"distinct_id": user, "$anon_distinct_id": anon})["flags"][key]["enabled"] is True
    person_id = server.store.get_person_by_distinct_id(project.id, user)["id"]
    assert server.store.hash_key_overrides(project.id, [person_id]) == {person_id: {key: anon}}
    # Later requests without it still bucket by the stored hash key.
    assert flags(project, {"distinct_id": user})["flags"][key]["enabled"] is True


def test_experience_continuity_without_persons_uses_the_anonymous_id(project):
    key = "continuity-2"
    make_flag(project, key, ensure_experience_continuity=True,
              filters={"groups": [{"properties": [], "rollout_percentage": 50}]})
    anon, user = _ids_on_both_sides(key, 50)
    assert flags(project, {"distinct_id": user, "$anon_distinct_id": anon})["flags"][key]["enabled"] is True


def test_runtime_filtering(project):
    make_flag(project, "client-only", evaluation_runtime="client")
    make_flag(project, "server-only", evaluation_runtime="server")
    make_flag(project, "everywhere")
    server_side = flags(project, headers=UA)["flags"]
    assert set(server_side) == {"server-only", "everywhere"}
    browser = flags(project, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})["flags"]
    assert set(browser) == {"client-only", "everywhere"}
    assert set(flags(project)["flags"]) == {"everywhere"}  # urllib's agent: unknown runtime
    assert set(flags(project, {"evaluation_runtime": "client"}, headers=UA)["flags"]) == {"client-only", "everywhere"}
    assert set(flags(project, headers={"Origin": "https://x.example"})["flags"]) == {"client-only", "everywhere"}


def test_evaluation_tags_and_survey_only(project):
    make_flag(project, "tagged", evaluation_tags=["web"])
    make_flag(project, "untagged")
    make_flag(project, "survey-targeting-abc")
    assert set(flags(project, {"evaluation_contexts": ["web"]})["flags"]) == {"tagged", "untagged",
                                                                               "survey-targeting-abc"}
    assert set(flags(project, {"evaluation_contexts": ["ios"]})["flags"]) == {"untagged", "survey-targeting-abc"}
    assert set(flags(project, path="/flags/?v=2&only_evaluate_survey_feature_flags=true")["flags"]) == {
        "survey-targeting-abc"}


# --- a failing store --------------------------------------------------------------------------------


def _boom(*args, **kwargs):
    raise DatabaseError("disk I/O error")


def test_person_lookup_failure_answers_from_the_request(project, server, monkeypatch):
    make_flag(project, "pro", filters={"groups": [{"properties": [
        {"key": "plan", "value": "pro", "type": "person"}]}]})
    make_flag(project, "sticky", ensure_experience_continuity=True)
    monkeypatch.setattr(server.store, "get_person_by_distinct_id", _boom)
    body = flags(project, {"person_properties": {"plan": "pro"}, "$anon_distinct_id": "a"})
    assert body["errorsWhileComputingFlags"] is True
    assert body["flags"]["pro"]["enabled"] is True  # computed from the request alone
    sticky = body["flags"]["sticky"]
    assert sticky["failed"] is True and sticky["enabled"] is False and sticky["metadata"]["payload"] is None


def test_static_cohort_failure_fails_only_those_flags(project, server, monkeypatch):
    static = project.api("POST", "/api/projects/@project/cohorts/", {"is_static": True, "distinct_ids": ["x"]}).json()
    make_flag(project, "stat", filters={"groups": [{"properties": [{"type": "cohort", "key": "id",
                                                                     "value": static["id"]}]}]})
    make_flag(project, "plain")
    monkeypatch.setattr(server.store, "static_cohorts_of", _boom)
    body = flags(project, path="/flags/?v=1")
    assert body["errorsWhileComputingFlags"] is True
    assert body["featureFlags"] == {"stat": False, "plain": True}
    detail = flags(project)["flags"]["stat"]
    assert detail["failed"] is True and detail["reason"]["code"] == "database_error"


def test_definitions_failure_is_still_200(project, server, monkeypatch):
    make_flag(project, "any")
    monkeypatch.setattr(server.store, "load_flag_definitions", _boom)
    body = flags(project)
    assert body == {**body, "flags": {}, "errorsWhileComputingFlags": True}
    monkeypatch.setattr(server.store, "project_for_token", _boom)
    assert flags(project, path="/decide/?v=3")["errorsWhileComputingFlags"] is True


def test_a_flag_that_cannot_compile_leaves_the_others_working(project, monkeypatch):
    import phlite.flags.cache

    real = phlite.flags.cache.compile_flags

    def fussy(rows, cohorts, tz):
        if any(r["key"] == "broken" for r in rows):
            raise ValueError("cannot compile")
        return real(rows, cohorts, tz)

    monkeypatch.setattr(phlite.flags.cache, "compile_flags", fussy)
    make_flag(project, "broken")
    make_flag(project, "fine")
    body = flags(project)
    assert set(body["flags"]) == {"fine"} and body["flags"]["fine"]["enabled"] is True


def test_an_evaluator_crash_is_still_200(project, monkeypatch):
    import phlite.flags.serve

    make_flag(project, "any")
    def crash(*args, **kwargs):
        raise RuntimeError("evaluator bug")

    monkeypatch.setattr(phlite.flags.serve, "evaluate", crash)
    body = flags(project)
    assert body["flags"] == {} and body["errorsWhileComputingFlags"] is True


def test_feature_flag_called_events_are_ordinary_events(project):
    send(project, ev("$feature_flag_called", "u", **{"$feature_flag": "on", "$feature_flag_response": True}))
    assert [e["event"] for e in project.events()] == ["$feature_flag_called"]


# --- definitions for local evaluation -----------------------------------------------------------------


def definitions(project, path=None, headers=None):
    path = path or f"/flags/definitions?token={project.token}&send_cohorts"
    return http("GET", project.url + path, headers={"Authorization": f"Bearer {project.key}", **(headers or {})})


def test_definitions_content(project):
    base = make_flag(project, "base", name="Base")
    make_flag(project, "dependent", filters={"groups": [{"properties": [
        {"type": "flag", "key": str(base["id"]), "value": True, "operator": "flag_evaluates_to"}]}]})
    inactive = make_flag(project, "inactive")
    project.api("PATCH", f"{FLAGS}{inactive['id']}/", {"active": False})
    gone = make_flag(project, "gone")
    project.api("PATCH", f"{FLAGS}{gone['id']}/", {"deleted": True})
    make_flag(project, "remote", is_remote_configuration=True,
              filters={"groups": [{"rollout_percentage": 100}], "payloads": {"true": "1"}})
    inner = project.api("POST", "/api/projects/@project/cohorts/", {"filters": {"properties": {
        "type": "OR", "values": [{"type": "AND", "values": [{"key": "a", "value": "1", "type": "person"}]}]}}}).json()
    outer = project.api("POST", "/api/projects/@project/cohorts/", {"filters": {"properties": {
        "type": "AND", "values": [{"type": "cohort", "key": "id", "value": inner["id"]}]}}}).json()
    static = project.api("POST", "/api/projects/@project/cohorts/", {"is_static": True, "distinct_ids": ["s"]}).json()
    project.api("POST", "/api/projects/@project/cohorts/", {"filters": {"properties": {
        "type": "AND", "values": [{"key": "unused", "value": "1", "type": "person"}]}}})
    make_flag(project, "cohorts", filters={"groups": [{"properties": [
        {"type": "cohort", "key": "id", "value": outer["id"]},
        {"type": "cohort", "key": "id", "value": static["id"]}]}]})
    send(project, ev("$groupidentify", "u", **{"$group_type": "company", "$group_key": "c", "$group_set": {}}))
    r = definitions(project)
    assert r.status == 200
    assert r.headers["Cache-Control"] == "private, must-revalidate"
    body = r.json()
    assert set(body) == {"flags", "group_type_mapping", "cohorts"}
    by_key = {f["key"]: f for f in body["flags"]}
    assert set(by_key) == {"base", "dependent", "inactive", "cohorts"}
    assert by_key["inactive"]["active"] is False
    assert by_key["base"]["name"] == "Base" and by_key["base"]["deleted"] is False
    dep = by_key["dependent"]["filters"]["groups"][0]["properties"][0]
    assert dep["key"] == "base" and dep["dependency_chain"] == ["base"]
    assert set(by_key["base"]) >= {"id", "team_id", "key", "filters", "active", "ensure_experience_continuity",
                                   "version", "evaluation_runtime", "has_encrypted_payloads"}
    assert body["group_type_mapping"] == {"0": "company"}
    assert body["cohorts"] == {str(outer["id"]): outer["filters"]["properties"],
                               str(inner["id"]): inner["filters"]["properties"]}


@pytest.mark.parametrize("path", ["/flags/definitions?token={token}&send_cohorts",
                                  "/api/feature_flag/local_evaluation/?token={token}&send_cohorts",
                                  "/api/feature_flag/local_evaluation?token={token}",
                                  "/api/projects/{id}/feature_flags/local_evaluation",
                                  "/api/projects/@current/feature_flags/local_evaluation/?token={token}"])
def test_definitions_paths_and_etag_round_trip(project, path):
    path = path.format(token=project.token, id=project.id)
    flag = make_flag(project, "etag")
    first = definitions(project, path)
    assert first.status == 200
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = definitions(project, path, {"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["ETag"] == etag
    # Strong form and lists of tags match too.
    assert definitions(project, path, {"If-None-Match": etag[2:]}).status == 304
    assert definitions(project, path, {"If-None-Match": f'"other", {etag}'}).status == 304
    project.api("PATCH", f"{FLAGS}{flag['id']}/", {"name": "changed"})
    changed = definitions(project, path, {"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag
    assert changed.json()["flags"][0]["name"] == "changed"


def test_definitions_auth_errors(project, server):
    url = project.url + f"/flags/definitions?token={project.token}"
    r = http("GET", url)
    assert r.status == 401 and r.json()["code"] == "not_authenticated"
    r = http("GET", url, headers={"Authorization": "Bearer phx_wrong"})
    assert r.status == 401 and r.json()["code"] == "invalid_personal_api_key"
    r = http("GET", project.url + "/flags/definitions?token=phc_nope",
             headers={"Authorization": f"Bearer {project.key}"})
    assert r.status == 401 and r.json()["code"] == "invalid_api_key"
    from conftest import Project

    other = Project(server)
    r = http("GET", project.url + f"/flags/definitions?token={other.token}",
             headers={"Authorization": f"Bearer {project.key}"})
    assert r.status == 403


# --- remote config ------------------------------------------------------------------------------------


def test_remote_config(project):
    flag = make_flag(project, "settings", is_remote_configuration=True,
                     filters={"groups": [{"rollout_percentage": 100}], "payloads": {"true": '{"limit": 5}'}})
    make_flag(project, "empty-remote", is_remote_configuration=True, filters={"groups": []})
    make_flag(project, "normal", filters={"groups": [], "payloads": {"true": "1"}})
    headers = {"Authorization": f"Bearer {project.key}"}
    base = project.url + "/api/projects/@current/feature_flags"
    r = http("GET", f"{base}/settings/remote_config?token={project.token}", headers=headers)
    assert r.status == 200 and r.json() == '{"limit": 5}'
    assert http("GET", f"{base}/{flag['id']}/remote_config?token={project.token}", headers=headers).json() == \
        '{"limit": 5}'
    r = http("GET", f"{base}/empty-remote/remote_config?token={project.token}", headers=headers)
    assert r.status == 200 and r.body == b""
    assert http("GET", f"{base}/normal/remote_config?token={project.token}", headers=headers).status == 404
    assert http("GET", f"{base}/missing/remote_config?token={project.token}", headers=headers).status == 404
    assert http("GET", f"{base}/settings/remote_config?token={project.token}").status == 401
    # Remote config flags still evaluate in /flags with their payload.
    assert flags(project)["flags"]["settings"]["metadata"]["payload"] == '{"limit": 5}'


# --- Mixpanel -----------------------------------------------------------------------------------------


def test_mixpanel_browser_flags(sample):
    context = json.dumps({"distinct_id": "user-1", "device_id": "dev"})
    query = urlencode({"context": context, "token": sample.token, "mp_lib": "web", "$lib_version": "2.83.0"})
    r = http("GET", sample.url + "/flags/?" + query, headers={"Origin": "https://site.example"})
    assert r.status == 200, r.body
    assert r.headers["Access-Control-Allow-Origin"] == "https://site.example"
    assert r.json() == {"flags": {
        "on": {"variant_key": "true", "variant_value": True},
        "multi": {"variant_key": "test", "variant_value": "test"},
        "off": {"variant_key": "false", "variant_value": False},
    }}
    # Token from Basic auth, custom properties as person properties.
    context = json.dumps({"distinct_id": "u", "custom_properties": {"email": "nobody"}})
    auth = base64.b64encode(f"{sample.token}:".encode()).decode()
    r = http("GET", sample.url + "/flags?" + urlencode({"context": context}),
             headers={"Authorization": f"Basic {auth}"})
    assert r.json()["flags"]["off"]["variant_value"] is True
    r = http("GET", sample.url + "/flags/?" + urlencode({"context": "{}", "token": sample.token}))
    assert r.status == 400
    r = http("GET", sample.url + "/flags/?" + urlencode({"context": context, "token": "phc_nope"}))
    assert r.status == 401
