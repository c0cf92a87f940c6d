"""Capture as PostHog's own capture tests and recorded SDK requests expect it (issue 14, "Capture wire"):
wrong compression hints, unpadded and form base64, CESU-8, multipart bodies, `_` in seconds, forwarded
addresses with ports, no added properties, 413 before 503, and the private API's key errors."""

import base64
import gzip
import json
import shutil
import subprocess
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

import pytest

from phlite.ingest.wire import decode_request
from support import ROOT, Project, assert_error, http, person
from test_reliability import Gate

TOKEN = "phc_test"
JS = ROOT / "tests" / "js"


def js(obj):
    return json.dumps(obj).encode()


def names(payload):
    return [e["event"] for e in payload.events]


# --- decoding, without HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    js({"api_key": TOKEN, "batch": [{"event": "plain", "distinct_id": "d"}]}),
    base64.b64encode(js({"api_key": TOKEN, "batch": [{"event": "plain", "distinct_id": "d"}]})),
])
def test_a_gzip_hint_over_bytes_that_are_not_gzip_is_ignored(body):
    for kw in ({"query": {"compression": "gzip-js"}}, {"content_encoding": "gzip"}):
        assert names(decode_request("/e/", body, content_type="text/plain", **kw)) == ["plain"]


def test_an_lz64_hint_over_plain_json_is_ignored():
    p = decode_request("/e/", js([{"event": "lz?", "distinct_id": "d", "properties": {"token": TOKEN}}]),
                       query={"compression": "lz64"})
    assert names(p) == ["lz?"]


def test_get_data_base64_without_padding():
    for pad in range(4):  # find bodies whose base64 needs one and two '='
        raw = base64.b64encode(js({"event": "get" + "x" * pad, "distinct_id": "d", "properties": {"token": TOKEN}}))
        p = decode_request("/e/", b"", query={"data": raw.rstrip(b"=").decode()})
        assert names(p) == ["get" + "x" * pad]


def test_base64_inside_a_form_data_field_on_batch():
    data = base64.b64encode(js({"api_key": TOKEN, "batch": [{"event": "form64", "distinct_id": "d"}]}))
    p = decode_request("/batch/", urlencode({"data": data}).encode(), content_type="application/x-www-form-urlencoded")
    assert names(p) == ["form64"] and p.token == TOKEN


def cesu8(text):
    """How old posthog-js encoded astral characters: each UTF-16 surrogate as its own 3-byte sequence."""
    units = text.encode("utf-16-le", "surrogatepass")
    chars = "".join(chr(int.from_bytes(units[i:i + 2], "little")) for i in range(0, len(units), 2))
    return chars.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("path", ["/e/", "/i/v0/e/", "/batch/"])
def test_cesu8_surrogate_pairs_inside_base64_decode_to_the_right_text(path):
    text = '{"api_key": "%s", "batch": [{"event": "emoji \U0001F600", "distinct_id": "d"}]}' % TOKEN
    body = base64.b64encode(cesu8(text))
    assert b"\xed\xa0\xbd" in cesu8(text)  # really CESU-8, not UTF-8
    assert names(decode_request(path, body)) == ["emoji \U0001F600"]
    form = urlencode({"data": body}).encode()
    assert names(decode_request(path, form, content_type="application/x-www-form-urlencoded")) == ["emoji \U0001F600"]


def multipart(fields, boundary="----phliteBoundary7MA4YWxk"):
    out = b""
    for name, value in fields.items():
        value = value if isinstance(value, bytes) else value.encode()
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_multipart_form_bodies_decode_like_form_bodies():
    event = {"event": "multi", "distinct_id": "d", "properties": {"token": TOKEN}}
    body, ctype = multipart({"data": json.dumps(event), "verbose": "1"})
    p = decode_request("/track/", body, content_type=ctype)
    assert names(p) == ["multi"] and p.verbose
    body, ctype = multipart({"data": base64.b64encode(js([event])), "compression": "base64"})
    assert names(decode_request("/e/", body, content_type=ctype)) == ["multi"]
    body, ctype = multipart({"data": gzip.compress(js([event])), "compression": "gzip"})
    assert names(decode_request("/e/", body, content_type=ctype)) == ["multi"]


@pytest.mark.parametrize("where, value, expected", [
    ("query", "1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)),  # seconds (10 digits)
    ("query", "1700000000123", datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)),
    ("form", "1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)),
    ("form", "1700000000123", datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)),
    ("query", "1500000000", None),  # 2017: not believed
])
def test_sent_at_in_seconds_or_ms_from_the_query_or_the_form(where, value, expected):
    event = js({"event": "e", "distinct_id": "d", "properties": {"token": TOKEN}})
    for name in ("_", "sent_at"):
        if where == "query":
            p = decode_request("/e/", event, query={name: value})
        else:
            p = decode_request("/e/", urlencode({"data": event, name: value}).encode(),
                               content_type="application/x-www-form-urlencoded")
        assert p.sent_at == expected, name


# --- over HTTP ------------------------------------------------------------------------------------------


def test_stored_events_gain_no_property_the_client_did_not_send(project):
    body = {"api_key": project.token, "sent_at": "2026-01-01T00:00:00Z",
            "batch": [{"event": "as-sent", "distinct_id": "d", "properties": {"$ip": "9.9.9.9", "a": 1}}]}
    assert http("POST", project.url + "/batch/", body).status == 200
    r = http("GET", f"{project.url}/e/?_=1767225600000&data=" + quote(json.dumps(
        {"event": "as-sent-2", "distinct_id": "d", "properties": {"token": project.token, "$ip": "9.9.9.9"}})))
    assert r.status == 200
    props = {e["event"]: e["properties"] for e in project.events()}
    assert props == {"as-sent": {"$ip": "9.9.9.9", "a": 1}, "as-sent-2": {"token": project.token, "$ip": "9.9.9.9"}}


@pytest.mark.parametrize("forwarded, ip", [
    ("1.2.3.4:5555", "1.2.3.4"),
    ("1.2.3.4:5555, 10.0.0.1", "1.2.3.4"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("2001:db8::2", "2001:db8::2"),
    (" 5.6.7.8 ", "5.6.7.8"),
])
def test_forwarded_address_with_port_or_brackets_gives_the_bare_ip(make_server, forwarded, ip):
    p = Project(make_server(trust_proxy=True))
    body = {"api_key": p.token, "batch": [{"event": "xff", "distinct_id": "d"}]}
    assert http("POST", p.url + "/batch/", body, {"X-Forwarded-For": forwarded}).status == 200
    assert p.events()[0]["properties"]["$ip"] == ip


def test_an_oversized_body_gets_413_even_when_the_queue_is_full(make_server):
    srv = make_server(queue_max_bytes=2000, max_body_bytes=5000, max_batch_body_bytes=5000)
    p = srv.store.create_project("busy")
    gate = Gate(srv.app.ingestion.writer)
    try:
        small = {"api_key": p["api_token"], "batch": [{"event": "fill", "distinct_id": "d", "properties": {"x": "y" * 1500}}]}
        assert http("POST", srv.url + "/batch/", small).status == 200
        assert_error(http("POST", srv.url + "/batch/", small), 503)  # the queue is busy
        big = {"api_key": p["api_token"], "batch": [{"event": "big", "distinct_id": "d", "properties": {"x": "y" * 9000}}]}
        assert_error(http("POST", srv.url + "/batch/", big), 413, "payload_too_large")
        assert_error(http("POST", srv.url + "/e/", big), 413, "payload_too_large")
    finally:
        gate.open()


# --- private API keys -----------------------------------------------------------------------------------


def test_unknown_or_revoked_personal_key_is_invalid_personal_api_key(server, project):
    url = f"{project.url}/api/projects/{project.id}/events/"
    assert_error(http("GET", url, headers={"Authorization": "Bearer phx_unknown"}), 401, "invalid_personal_api_key",
                 type="authentication_error", attr=None)
    created = server.store.create_personal_key("doomed", [project.id])
    server.store.revoke_personal_key(created["id"])
    assert_error(http("GET", url, headers={"Authorization": f"Bearer {created['personal_api_key']}"}), 401,
                 "invalid_personal_api_key")


def test_personal_key_in_the_query_or_the_body(project):
    r = http("GET", f"{project.url}/api/projects/{project.id}/events/?personal_api_key={project.key}")
    assert r.status == 200, r.body
    r = http("GET", f"{project.url}/api/projects/{project.id}/events/?personal_api_key=phx_nope")
    assert_error(r, 401, "invalid_personal_api_key")
    r = http("POST", f"{project.url}/api/projects/{project.id}/feature_flags/",
             {"personal_api_key": project.key, "key": "from-body", "filters": {"groups": []}})
    assert r.status == 201, r.body
    assert r.json()["key"] == "from-body"
    # The body is not parsed to find the key (docs/reliability.md "Memory bombs"): the field is found by a scan,
    # also after another field of that name, and an unknown one is the same 401 as in the query.
    r = http("POST", f"{project.url}/api/projects/{project.id}/feature_flags/",
             {"filters": {"groups": [], "payloads": {"true": '{"personal_api_key": "phx_nope"}'},
                          "personal_api_key": "phx_nested"}, "personal_api_key": project.key, "key": "second"})
    assert r.status == 201, r.body
    r = http("POST", f"{project.url}/api/projects/{project.id}/feature_flags/",
             {"personal_api_key": "phx_nope", "key": "x", "filters": {"groups": []}})
    assert_error(r, 401, "invalid_personal_api_key")


def test_authorization_without_bearer_says_what_is_expected(project):
    r = http("GET", f"{project.url}/api/projects/{project.id}/events/", headers={"Authorization": project.key})
    body = assert_error(r, 401, type="authentication_error")
    assert "Bearer" in body["detail"]


# --- capture v1 -----------------------------------------------------------------------------------------


def v1(project, batch, headers=None, token=None, **body):
    data = gzip.compress(js({"created_at": "2026-01-01T00:00:00Z", "batch": batch, **body}))
    h = {"Authorization": f"Bearer {token or project.token}", "Content-Type": "application/json",
         "Content-Encoding": "gzip", "PostHog-Sdk-Info": "posthog-go/1.6.0", **(headers or {})}
    return http("POST", project.url + "/i/v1/analytics/events", data, h)


def test_capture_v1_answers_per_event_and_stores_what_it_accepted(project):
    batch = [
        {"event": "ok", "uuid": "0190a4e1-7d2b-7c3a-8e4f-000000000001", "distinct_id": "d",
         "timestamp": "2026-01-01T00:00:00Z", "options": {"disable_skew_correction": True},
         "properties": {"a": 1, "$set": {"x": 1}}, "session_id": "s1"},
        {"event": "", "uuid": "0190a4e1-7d2b-7c3a-8e4f-000000000002", "distinct_id": "d", "properties": {}},
        {"event": "no-id", "uuid": "0190a4e1-7d2b-7c3a-8e4f-000000000003", "properties": {}},
    ]
    r = v1(project, batch)
    assert r.status == 200, r.body
    results = r.json()["results"]
    assert results["0190a4e1-7d2b-7c3a-8e4f-000000000001"] == {"result": "ok"}
    assert results["0190a4e1-7d2b-7c3a-8e4f-000000000002"]["result"] == "drop"
    assert results["0190a4e1-7d2b-7c3a-8e4f-000000000003"]["result"] == "drop"
    (stored,) = project.events()
    assert stored["id"] == "0190a4e1-7d2b-7c3a-8e4f-000000000001"
    assert stored["timestamp"].startswith("2026-01-01T00:00:00")
    assert stored["properties"] == {"a": 1, "$set": {"x": 1}, "$ignore_sent_at": True, "$session_id": "s1",
                                    "$lib": "posthog-go", "$lib_version": "1.6.0", "$ip": "127.0.0.1"}


def test_capture_v1_errors_are_json(project):
    ok = [{"event": "e", "uuid": "0190a4e1-7d2b-7c3a-8e4f-000000000009", "distinct_id": "d"}]
    assert_error(v1(project, ok, token="phc_unknown"), 401, "invalid_api_key")
    r = http("POST", project.url + "/i/v1/analytics/events", js({"batch": ok}), {"Content-Type": "application/json"})
    assert_error(r, 401, "invalid_api_key")
    r = http("POST", project.url + "/i/v1/analytics/events", b"{nope",
             {"Authorization": f"Bearer {project.token}"})
    assert_error(r, 400, "invalid_payload")
    r = http("POST", project.url + "/i/v1/analytics/events", b"(zstd)",
             {"Authorization": f"Bearer {project.token}", "Content-Encoding": "zstd"})
    assert_error(r, 415, "unsupported_encoding")


# --- posthog-node's captureLog (OTLP JSON logs) ---------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None or not (JS / "node_modules" / "posthog-node").is_dir(),
                    reason="node or tests/js/node_modules missing (tests/run.sh installs them)")
def test_posthog_node_capture_log_is_stored_as_log_events(project):
    out = subprocess.run(["node", "node_logs.mjs", project.url, project.token], cwd=JS,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    logs = {e["properties"]["$log_body"]: e for e in project.events(event="$log")}
    assert set(logs) == {"payment failed", "order placed"}
    failed = logs["payment failed"]["properties"]
    assert (failed["$log_severity_text"], failed["$log_severity_number"]) == ("ERROR", 17)
    assert {k: failed["$log_attributes"][k] for k in ("code", "amount")} == {"code": "E001", "amount": 12}
    assert failed["$log_resource"]["service.name"] == "checkout-api"
    assert logs["payment failed"]["distinct_id"] == "checkout-api"  # no person in context: the service
    assert logs["order placed"]["distinct_id"] == "log-user"
    assert person(project, "log-user") is None  # logs never create persons


def test_logs_endpoint_errors(project):
    assert_error(http("POST", project.url + "/i/v1/logs", js({"resourceLogs": []})), 401, "invalid_api_key")
    r = http("POST", f"{project.url}/i/v1/logs?token={project.token}", b"\x0a\x02protobuf",
             {"Content-Type": "application/x-protobuf"})
    assert_error(r, 415)


# --- CSP violation reports ------------------------------------------------------------------------------


REPORT_URI = {"csp-report": {"document-uri": "https://shop.example/cart", "violated-directive": "script-src",
                             "blocked-uri": "https://evil.example/x.js", "original-policy": "script-src 'self'"}}
REPORT_TO = [{"type": "csp-violation", "url": "https://shop.example/", "user_agent": "UA/1",
              "body": {"documentURL": "https://shop.example/", "effectiveDirective": "img-src",
                       "blockedURL": "https://img.example/a.png", "disposition": "enforce"}},
             {"type": "deprecation", "body": {}}]


@pytest.mark.parametrize("path", ["/report/", "/e/"])
def test_csp_reports_become_csp_violation_events(project, path):
    q = f"?token={project.token}&distinct_id=csp-user&session_id=s-1&v=3"
    r = http("POST", project.url + path + q, js(REPORT_URI), {"Content-Type": "application/csp-report"})
    assert r.status == 200, r.body
    r = http("POST", project.url + path + q, js(REPORT_TO), {"Content-Type": "application/reports+json"})
    assert r.status == 200, r.body
    events = project.events(event="$csp_violation")
    assert len(events) == 2 and {e["distinct_id"] for e in events} == {"csp-user"}
    by_directive = {e["properties"]["$csp_violated_directive"]: e["properties"] for e in events}
    uri, to = by_directive["script-src"], by_directive["img-src"]
    assert uri["$current_url"] == "https://shop.example/cart" and uri["$csp_blocked_url"] == "https://evil.example/x.js"
    assert uri["$session_id"] == "s-1" and uri["$csp_version"] == "3" and uri["$process_person_profile"] is False
    assert to["$csp_blocked_url"] == "https://img.example/a.png" and to["$csp_user_agent"] == "UA/1"
    assert person(project, "csp-user") is None
    r = http("POST", project.url + path + q, js({"not": "a report"}), {"Content-Type": "application/csp-report"})
    assert_error(r, 400, "invalid_csp_payload")


# --- events API: property filters -----------------------------------------------------------------------


def test_events_api_filters_by_posthog_property_filters(project):
    from support import send, ev as sev
    send(project, sev("a", "d", plan="pro", n=5, ok=True, url="https://Shop.example/cart"),
         sev("b", "d", plan="free", n=12, ok=False), sev("c", "d", plan="pro", n="7"), sev("d", "d"))

    def names(filters):
        r = project.api("GET", f"/api/projects/@project/events/?properties={quote(json.dumps(filters))}")
        assert r.status == 200, r.body
        return sorted(e["event"] for e in r.json()["results"])

    assert names([{"key": "plan", "value": "pro", "operator": "exact", "type": "event"}]) == ["a", "c"]
    assert names([{"key": "plan", "value": ["pro", "free"]}]) == ["a", "b", "c"]
    assert names([{"key": "plan", "value": "pro", "operator": "is_not"}]) == ["b", "d"]
    assert names([{"key": "n", "value": "5"}]) == ["a"] and names([{"key": "n", "value": 7}]) == ["c"]
    assert names([{"key": "ok", "value": "true"}]) == ["a"] and names([{"key": "ok", "value": False}]) == ["b"]
    assert names([{"key": "url", "value": "shop.EXAMPLE", "operator": "icontains"}]) == ["a"]
    assert names([{"key": "url", "value": "shop", "operator": "not_icontains"}]) == ["b", "c", "d"]
    assert names([{"key": "n", "value": 6, "operator": "gt"}]) == ["b"]  # "7" is a string: not a number
    assert names([{"key": "n", "value": "12", "operator": "lte"}]) == ["a", "b"]
    assert names([{"key": "plan", "operator": "is_set"}]) == ["a", "b", "c"]
    assert names([{"key": "plan", "operator": "is_not_set"}]) == ["d"]
    assert names([{"key": "plan", "value": "pro"}, {"key": "n", "value": 5}]) == ["a"]
    assert names({"type": "OR", "values": [{"key": "n", "value": 12}, {"key": "n", "value": "7"}]}) == ["b", "c"]
    assert names([{"key": "plan", "value": "100%_"}]) == []
    for bad in ([{"key": "plan", "value": "x", "operator": "regex_maybe"}], [{"key": "email", "value": "x", "type": "person"}],
                [{"value": "x"}], [{"key": "n", "value": "many", "operator": "gt"}], "nope"):
        r = project.api("GET", f"/api/projects/@project/events/?properties={quote(json.dumps(bad))}")
        assert_error(r, 400, attr="properties")
    r = project.api("GET", "/api/projects/@project/events/?properties=%7Bnot-json")
    assert_error(r, 400, attr="properties")
