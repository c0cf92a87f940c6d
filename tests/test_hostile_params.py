"""Hostile parameters on the web front answer phlite's JSON 4xx, never a 500 or bottle's HTML
(docs/reliability.md "Hostile parameters"): ids past 64 bits, NaN payloads, bad Range, forged link hosts."""

import http.client
import json

import pytest

from support import assert_error, http as request

BIG = [str(1 << 63), str(1 << 64), "9" * 40]


@pytest.mark.parametrize("big", BIG)
def test_ids_past_64_bits_answer_404_or_400_naming_the_field(project, big):
    for path in (f"/api/projects/{big}/", f"/api/projects/{big}/events/", f"/api/projects/{big}/feature_flags/",
                 f"/api/projects/@project/feature_flags/{big}/", f"/api/projects/@project/cohorts/{big}/",
                 f"/api/projects/@project/feature_flags/{big}/activity/",
                 f"/api/projects/@project/cohorts/{big}/activity/"):
        assert_error(project.api("GET", path), 404)
    assert_error(project.api("PATCH", f"/api/projects/@project/feature_flags/{big}/", {"name": "x"}), 404)
    assert_error(project.api("PATCH", f"/api/projects/@project/cohorts/{big}/", {"name": "x"}), 404)
    assert_error(project.api("GET", f"/api/projects/@project/events/?cursor={big}_1"), 400, attr="cursor")
    assert_error(project.api("GET", f"/api/projects/@project/events/?cursor=1_{big}"), 400, attr="cursor")
    assert_error(project.api("GET", f"/api/projects/@project/persons/?cursor={big}"), 400, attr="cursor")
    assert_error(project.api("GET", f"/api/projects/@project/feature_flags/?offset={big}"), 400, attr="offset")
    # A personal key capturing into project_id 2^63 (body and query): 400 naming project_id.
    r = request("POST", project.url + "/capture/", {"api_key": project.key, "project_id": int(big),
                                                     "event": "e", "distinct_id": "d"})
    assert_error(r, 400, code="invalid_project", attr="project_id")
    r = request("POST", project.url + f"/batch/?project_id={big}",
                {"api_key": project.key, "batch": [{"event": "e", "distinct_id": "d"}]})
    assert_error(r, 400, code="invalid_project", attr="project_id")


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity", '{"a": NaN}', "[1, Infinity]"])
def test_payload_text_that_is_not_json_is_refused(project, word):
    r = project.api("POST", "/api/projects/@project/feature_flags/", {
        "key": "nan-flag", "filters": {"groups": [{"rollout_percentage": 100}], "payloads": {"true": word}}})
    body = assert_error(r, 400, attr="filters")
    assert "payloads.true" in body["detail"], body


def test_bad_range_on_static_is_json(make_server, tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "array.js").write_text("console.log(1)")
    srv = make_server(static_dir=assets)
    for rng in ("bytes=999999-", "bytes=5-2", "bytes=99999999999999999999999-"):
        r = request("GET", srv.url + "/static/array.js", headers={"Range": rng})
        if r.status != 416:  # ignoring a Range it cannot serve is allowed too
            assert r.status in (200, 206), (rng, r.status)
            continue
        assert_error(r, 416, code="range_not_satisfiable")
    r = request("GET", srv.url + "/static/array.js", headers={"Range": "bytes=0-6"})
    assert r.status == 206 and r.body == b"console"


def _get_raw(url, path, headers):
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, json.loads(body)


def _events_next(project, headers):
    for i in range(3):
        request("POST", project.url + "/capture/", {"api_key": project.token, "event": f"e{i}", "distinct_id": "d"})
    project.flush()
    status, body = _get_raw(project.url, f"/api/projects/{project.id}/events/?limit=1",
                            {"Authorization": f"Bearer {project.key}", **headers})
    assert status == 200, body
    return body["next"]


@pytest.mark.parametrize("headers", [
    {"Host": "javascript://x", "X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "evil.example"},
    {"Host": "evil.example/%0d%0a", "X-Forwarded-Proto": "javascript"},
    {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
])
def test_next_links_do_not_trust_forwarded_headers_without_trust_proxy(project, headers):
    nxt = _events_next(project, headers)
    assert nxt.startswith("http://"), nxt
    assert "evil" not in nxt and "javascript" not in nxt, nxt
    assert f"/api/projects/{project.id}/events/?" in nxt


def test_next_links_follow_a_trusted_proxy(make_server):
    from support import Project

    srv = make_server(trust_proxy=True)
    p = Project(srv)
    nxt = _events_next(p, {"Host": "127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "phlite.example"})
    assert nxt.startswith("https://phlite.example/api/projects/"), nxt
    # Even a trusted proxy cannot make a link of another scheme.
    nxt = _events_next(p, {"Host": "127.0.0.1", "X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "a:b:c"})
    assert nxt.startswith("http://127.0.0.1/api/projects/"), nxt
