"""The capture endpoints over real HTTP: the contract table, encodings end to end, CORS,
size limits, drop rules, dedupe, and events read back through the private API."""

import base64
import gzip
import json
import uuid

import pytest

from support import assert_error, http

PATHS = ["/capture", "/batch", "/e", "/i/v0/e", "/track", "/engage"]


def ev(name="hello", distinct_id="user-1", **kw):
    return {"event": name, "distinct_id": distinct_id, "properties": kw.pop("properties", {}), **kw}


@pytest.mark.parametrize("path", [p + s for p in PATHS for s in ("", "/")])
def test_every_capture_path_accepts_post_with_and_without_slash(project, path):
    body = {"api_key": project.token, "batch": [ev("on " + path)]}
    if path.startswith("/engage"):
        body = {"$token": project.token, "$distinct_id": "user-1", "$set": {"a": 1}}
    r = http("POST", project.url + path, body)
    assert r.status == 200, r.body
    if path.startswith(("/engage", "/track")):
        assert r.body == b"1"  # Mixpanel-style paths answer a bare 1 without verbose=1
    else:
        assert r.json() == {"status": 1}


def test_get_with_data_query_param(project):
    data = base64.b64encode(json.dumps(ev("via get", properties={"token": project.token})).encode()).decode()
    r = http("GET", f"{project.url}/capture/?data={data}")
    assert r.status == 200
    assert [e["event"] for e in project.events()] == ["via get"]


def test_gzip_text_plain_without_marker_like_posthog_js(project):
    body = gzip.compress(json.dumps({"api_key": project.token, "batch": [ev("gz")]}).encode())
    r = http("POST", project.url + "/e/", body, {"Content-Type": "text/plain"})
    assert r.status == 200
    assert [e["event"] for e in project.events()] == ["gz"]


def test_form_base64_body(project):
    from urllib.parse import urlencode

    data = base64.b64encode(json.dumps([ev("form", properties={"token": project.token})]).encode()).decode()
    r = http("POST", project.url + "/e/?compression=base64", urlencode({"data": data}).encode(),
             {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200
    assert [e["event"] for e in project.events()] == ["form"]


# --- the contract table ---------------------------------------------------------

def test_missing_project_key_is_401(server):
    r = http("POST", server.url + "/batch/", {"batch": [ev()]})
    assert_error(r, 401, "invalid_api_key", type="authentication_error", attr=None,
                 detail="Project API key invalid. You can find your project API key in PostHog project settings.")


def test_unknown_project_key_is_401(server):
    r = http("POST", server.url + "/batch/", {"api_key": "phc_unknown", "batch": [ev()]})
    assert_error(r, 401, "invalid_api_key", type="authentication_error", attr=None)


def test_unknown_personal_key_is_401(server):
    r = http("POST", server.url + "/batch/", {"api_key": "phx_nope", "batch": [ev()]})
    assert_error(r, 401, "invalid_personal_api_key", type="authentication_error", detail="Invalid Personal API key.",
                 attr=None)


def test_personal_key_without_project_is_400(project):
    r = http("POST", project.url + "/batch/", {"api_key": project.key, "batch": [ev()]})
    assert_error(r, 400, "invalid_project", type="validation_error", detail="Invalid Project ID.", attr="project_id")


def test_personal_key_with_a_project_it_cannot_reach_is_400(server, project):
    other = server.store.create_project("other")
    r = http("POST", f"{project.url}/batch/?project_id={other['id']}", {"api_key": project.key, "batch": [ev()]})
    assert_error(r, 400, "invalid_project", type="validation_error", attr="project_id")


def test_personal_key_with_project_id_captures(project):
    r = http("POST", project.url + "/batch/", {"api_key": project.key, "project_id": project.id, "batch": [ev("pk")]})
    assert r.status == 200, r.body
    r = http("POST", f"{project.url}/batch/?project_id={project.id}", {"api_key": project.key, "batch": [ev("pk2")]})
    assert r.status == 200, r.body
    assert sorted(e["event"] for e in project.events()) == ["pk", "pk2"]


@pytest.mark.parametrize("body,content_type", [
    (b"\x1f\x8b\x08garbage", "text/plain"),
    # With its key: a JSON-looking body that names no known key is a 401 before it is parsed
    # (docs/protocol.md "The capture contract").
    (b'{"api_key": "x", not json', "application/json"),
    (b'{"api_key": "x", "batch": []}', "application/json"),
    (b"", "application/json"),
])
def test_undecodable_bodies_are_400_json(project, body, content_type):
    body = body.replace(b'"x"', json.dumps(project.token).encode())
    r = http("POST", project.url + "/batch/", body, {"Content-Type": content_type})
    assert_error(r, 400, type="validation_error")


def test_batch_body_limit_is_413_json(make_server):
    srv = make_server(max_batch_body_bytes=1000, max_body_bytes=500)
    big = {"api_key": "phc_x", "batch": [ev(properties={"pad": "x" * 2000})]}
    for path in ("/batch/", "/e/"):
        assert_error(http("POST", srv.url + path, big), 413, "payload_too_large", type="validation_error", attr=None)


def test_gzip_bomb_is_413_json(make_server):
    srv = make_server(max_decompressed_bytes=1024 * 1024)
    p = srv.store.create_project("bomb")
    bomb = gzip.compress(b'{"api_key": "' + p["api_token"].encode() + b'", "batch": [' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100_000
    r = http("POST", srv.url + "/batch/", bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert_error(r, 413, "payload_too_large", type="validation_error", attr=None)


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nope", 404),
    ("DELETE", "/batch/", 405),
    ("GET", "/api/projects/", 401),
])
def test_framework_errors_are_json(server, method, path, status):
    r = http(method, server.url + path)
    assert_error(r, status)


# --- success, CORS ----------------------------------------------------------------

def test_success_is_exactly_200_status_1(project):
    r = http("POST", project.url + "/batch/", {"api_key": project.token, "batch": [ev()]})
    assert (r.status, r.json()) == (200, {"status": 1})


def test_cors_mirrors_origin_with_credentials(project):
    r = http("POST", project.url + "/e/", {"api_key": project.token, "batch": [ev()]},
             {"Origin": "http://example.test:3000"})
    assert r.headers["Access-Control-Allow-Origin"] == "http://example.test:3000"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"


def test_cors_preflight(server):
    r = http("OPTIONS", server.url + "/e/", headers={
        "Origin": "http://example.test", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-thing"})
    assert r.status == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://example.test"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type,x-thing"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]


def test_private_api_gets_no_cors_credentials(project):
    r = project.api("GET", "/api/projects/", headers={"Origin": "http://evil.test"})
    assert r.status == 200
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert "Access-Control-Allow-Origin" not in r.headers


# --- the writer's drop rules, normalisation, dedupe ---------------------------------

def test_invalid_events_are_dropped_and_siblings_stored(project):
    batch = [ev("good-1"), {"distinct_id": "x"}, ev("", "x"), ev("no-id", ""), {"event": "no-id-at-all"},
             ev("good-2", 42)]
    r = http("POST", project.url + "/batch/", {"api_key": project.token, "batch": batch})
    assert r.status == 200
    stored = project.events()
    assert sorted((e["event"], e["distinct_id"]) for e in stored) == [("good-1", "user-1"), ("good-2", "42")]


def test_retry_with_same_uuid_is_stored_once(project):
    u = str(uuid.uuid4())
    body = {"api_key": project.token, "batch": [ev("once", uuid=u)]}
    for _ in range(3):
        assert http("POST", project.url + "/batch/", body).status == 200
    project.flush()
    assert [(e["id"], e["event"]) for e in project.events()] == [(u, "once")]


def test_event_read_back_shape_and_normalisation(project):
    u = str(uuid.uuid4())
    body = {"api_key": project.token, "sent_at": "2026-01-01T00:00:10Z", "batch": [
        ev("shape", "d" * 300, uuid=u, timestamp="2026-01-01T00:00:00Z", properties={"a": 1},
           **{"$set": {"plan": "pro"}})]}
    assert http("POST", project.url + "/batch/", body).status == 200
    [e] = project.events()
    assert set(e) == {"id", "event", "distinct_id", "properties", "timestamp", "created_at"}
    assert e["id"] == u and e["distinct_id"] == "d" * 200
    assert e["properties"]["a"] == 1 and e["properties"]["$set"] == {"plan": "pro"}
    assert e["properties"]["$ip"] == "127.0.0.1"
    # clock-skew correction: the event was made 10 s before the client sent the batch
    from datetime import datetime

    ts = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
    created = datetime.fromisoformat(e["created_at"].replace("Z", "+00:00"))
    assert 9 <= (created - ts).total_seconds() <= 12


def test_events_api_filters_and_pagination(project):
    batch = [ev("a" if i % 2 else "b", f"u{i % 3}", timestamp=f"2026-01-01T00:00:{i:02d}Z") for i in range(30)]
    assert http("POST", project.url + "/batch/", {"api_key": project.token, "batch": batch}).status == 200
    project.flush()
    r = project.api("GET", "/api/projects/@project/events/?limit=7")
    page = r.json()
    assert len(page["results"]) == 7 and page["next"]
    timestamps = [e["timestamp"] for e in page["results"]]
    assert timestamps == sorted(timestamps, reverse=True)
    everything = project.events()
    assert len(everything) == 30 and len({e["id"] for e in everything}) == 30
    assert len(project.events(event="a")) == 15
    assert len(project.events(distinct_id="u0")) == 10
    assert len(project.events(after="2026-01-01T00:00:19Z")) == 10
    assert len(project.events(before="2026-01-01T00:00:10Z")) == 10
    r = project.api("GET", "/api/projects/@current/events/?limit=1")
    assert r.status == 200 and len(r.json()["results"]) == 1


def test_events_api_requires_personal_key(project):
    r = http("GET", f"{project.url}/api/projects/{project.id}/events/")
    assert_error(r, 401, "not_authenticated", type="authentication_error", attr=None)
    r = http("GET", f"{project.url}/api/projects/{project.id}/events/", headers={"Authorization": f"Bearer {project.token}"})
    assert r.status == 401
    r = project.api("GET", "/api/projects/999999/events/")
    assert r.status in (403, 404)


def test_unrouted_404_is_readable_by_browsers(server):
    r = http("GET", server.url + "/static/", headers={"Origin": "http://site.test"})
    assert r.status == 404 and r.json()["code"] == "not_found"
    assert r.headers["Access-Control-Allow-Origin"] == "http://site.test"
    r = http("GET", server.url + "/api/projects/1/nope/", headers={"Origin": "http://site.test"})
    assert r.status == 404 and "Access-Control-Allow-Origin" not in r.headers
