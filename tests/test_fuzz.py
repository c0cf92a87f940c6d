"""Hostile and malformed input against every public endpoint: a hypothesis fuzz of bodies,
headers, query strings and encodings; malformed HTTP framing; bombs; a catastrophic
regex in a flag filter.

The fuzz is derandomized (the same cases every run). PHLITE_FUZZ_EXAMPLES sets the number
of cases (default 300) for a longer run.
"""

import base64
import functools
import gzip
import http.client
import json
import re
import socket
import threading
import time
import uuid
import zlib
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from support import http as http_request
from phlite.config import environ_get
from support import ERROR_KEYS
from test_reliability import record

EXAMPLES = int(environ_get("PHLITE_FUZZ_EXAMPLES", "300"))


def public_paths(app):
    paths = sorted({r.rule for r in app.routes if r.config.get("public") and "<" not in r.rule})
    assert {"/e/", "/batch/", "/capture/", "/flags/", "/decide/", "/track/"} <= set(paths), paths
    return paths


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


# The codes of what waitress answers itself, before phlite's app is called (HTTP it cannot parse: a control
# character in a header, say), in phlite's JSON shape (phlite/httpserver.py).
FRAMING_CODES = {"malformed_request", "request_header_fields_too_large", "not_implemented"}


def is_waitress_answer(status, body):
    try:
        return status in (400, 431, 501) and json.loads(body).get("code") in FRAMING_CODES
    except ValueError:  # a HEAD answer has no body
        return False


def check_answer(status, headers, body, where):
    """2xx, or a JSON 4xx of the one error shape; never a 5xx (the queue is never full here)."""
    assert status < 500, f"{where}: {status} {body[:300]!r}"
    if status >= 400:
        assert (headers.get("Content-Type") or "").startswith("application/json"), f"{where}: {status} {body[:200]!r}"
        assert set(json.loads(body)) == ERROR_KEYS, f"{where}: {body[:300]!r}"


# --- strategies ----------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_value = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=4),
                                                        st.dictionaries(st.text(max_size=10), c, max_size=4)),
                          max_leaves=20)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40)
QUERY_KEYS = ["compression", "ver", "v", "_", "ip", "token", "api_key", "data", "config", "verbose", "context",
              "project_id", "only_evaluate_survey_feature_flags", "distinct_id", "lib_version"]
QUERY_VALUES = ["gzip", "gzip-js", "lz64", "base64", "1", "2", "3", "4", "true", "false", "", "0", "-1",
                "%", "\u2603", "null"]


@st.composite
def event_like(draw, token):
    ev = {"event": draw(st.one_of(st.text(max_size=12), st.sampled_from(["$pageview", "$identify", "$groupidentify",
                                                                        "$create_alias", "$set"]), json_value)),
          "distinct_id": draw(st.one_of(st.text(max_size=12), json_value)),
          "properties": draw(st.one_of(st.dictionaries(st.sampled_from(
              ["$set", "$set_once", "$unset", "$groups", "$anon_distinct_id", "alias", "$ip", "token",
               "$group_type", "$group_key", "$group_set", "x"]), json_value, max_size=5), json_value))}
    if draw(st.booleans()):
        ev["api_key"] = draw(st.sampled_from([token, "phc_unknown", "", None, 7]))
    if draw(st.booleans()):
        ev["timestamp"] = draw(st.one_of(st.text(max_size=30), st.integers(), json_value))
    if draw(st.booleans()):
        ev["uuid"] = draw(st.one_of(st.uuids().map(str), st.text(max_size=40)))
    return ev


@st.composite
def bodies(draw, token):
    kind = draw(st.sampled_from(["event", "batch", "list", "flags", "json", "bytes", "empty"]))
    if kind == "event":
        obj = draw(event_like(token))
    elif kind == "batch":
        obj = {"api_key": draw(st.sampled_from([token, "phc_nope", None])),
               "batch": draw(st.lists(event_like(token), max_size=4)),
               "sent_at": draw(st.one_of(st.none(), st.text(max_size=30)))}
    elif kind == "list":
        obj = draw(st.lists(event_like(token), max_size=3))
    elif kind == "flags":
        obj = {"token": draw(st.sampled_from([token, "phc_nope", None, 1])),
               "distinct_id": draw(st.one_of(st.text(max_size=10), json_value)),
               "groups": draw(json_value), "person_properties": draw(json_value),
               "group_properties": draw(json_value), "flag_keys_to_evaluate": draw(json_value),
               "disable_flags": draw(json_value)}
    elif kind == "json":
        obj = draw(json_value)
    elif kind == "bytes":
        return draw(st.binary(max_size=200))
    else:
        return b""
    data = json.dumps(obj).encode()
    # Mutate: flip, cut or insert bytes.
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
        elif op == "cut":
            data = data[:i]
        else:
            data = data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
    enc = draw(st.sampled_from(["raw", "raw", "gzip", "base64", "form", "form-b64", "lz64", "gzip-cut"]))
    if enc == "gzip":
        return gzip.compress(data)
    if enc == "gzip-cut":
        g = gzip.compress(data)
        return g[: draw(st.integers(0, len(g)))]
    if enc == "base64":
        return base64.b64encode(data)
    if enc == "form":
        return b"data=" + quote_from_bytes(data).encode() + b"&compression=" + draw(
            st.sampled_from([b"", b"gzip-js", b"lz64", b"base64"]))
    if enc == "form-b64":
        return b"data=" + base64.b64encode(data)
    if enc == "lz64":
        import lzstring

        return lzstring.LZString().compressToBase64(data.decode("utf-8", "replace")).encode()
    return data


@st.composite
def requests(draw, paths, token):
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "GET", "OPTIONS", "HEAD", "PUT", "DELETE", "PATCH"]))
    path = draw(st.sampled_from(paths))
    params = draw(st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_KEYS), st.text(max_size=6)),
                                     st.one_of(st.sampled_from(QUERY_VALUES + [token]), st.text(max_size=20),
                                               st.binary(max_size=10))), max_size=4))
    parts = []
    for k, v in params:
        kq = quote(k, safe="")
        safe = draw(st.sampled_from(["", "/+=&"]))
        vq = quote_from_bytes(v, safe="") if isinstance(v, bytes) else quote(v, safe=safe)
        parts.append(f"{kq}={vq}")
    target = path + ("?" + "&".join(parts) if parts else "")
    headers = {}
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.one_of(st.sampled_from([
            "application/json", "text/plain", "application/x-www-form-urlencoded", "text/plain;charset=UTF-8",
            "multipart/form-data; boundary=x", "application/json; charset=latin-1"]), header_text))
    if draw(st.booleans()):
        headers["Content-Encoding"] = draw(st.one_of(st.sampled_from(["gzip", "deflate", "br", "lz64", "gzip, gzip",
                                                                      "identity", ""]), header_text))
    if draw(st.booleans()):
        headers["Origin"] = draw(st.sampled_from(["https://example.com", "null", ""]))
    if draw(st.booleans()):
        headers["Authorization"] = draw(st.one_of(st.sampled_from([f"Bearer {token}", "Bearer phx_x", "Basic !!",
                                                                   "Basic " + base64.b64encode(b"u:").decode()]),
                                                  header_text))
    for name in draw(st.lists(st.sampled_from(["X-Forwarded-For", "X-Request-Id", "User-Agent", "Accept-Encoding",
                                               "Access-Control-Request-Method", "If-None-Match"]), max_size=2)):
        headers[name] = draw(header_text)
    body = draw(bodies(token)) if method in ("POST", "PUT", "PATCH") or draw(st.integers(0, 9)) == 0 else b""
    return method, target, headers, body


def send(url, method, target, headers, body, timeout=10):
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, target, body=body or None, headers=headers)
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def test_fuzz_public_endpoints(server, project):
    paths = public_paths(server.web)
    counts = {"cases": 0, "2xx": 0, "4xx": 0, "waitress_4xx": 0}
    statuses = {}
    probes = []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests(paths, project.token))
    def fuzz(req):
        method, target, headers, body = req
        status, h, answer = send(project.url, method, target, headers, body)
        where = f"{method} {target} {headers} {body[:200]!r}"
        if method == "HEAD":  # no body, by HTTP
            assert status < 500 and answer == b"", where
        else:
            check_answer(status, h, answer, where)
        counts["cases"] += 1
        counts["2xx" if status < 300 else "waitress_4xx" if is_waitress_answer(status, answer) else "4xx"] += 1
        statuses[status] = statuses.get(status, 0) + 1
        if counts["cases"] % 10 == 0:
            probe()

    def probe():
        # A well-formed event between fuzz cases is accepted and, below, stored.
        u = str(uuid.uuid4())
        r = http_request("POST", project.url + "/batch/", {"api_key": project.token, "batch": [
            {"event": "probe", "distinct_id": "probe", "uuid": u}]})
        assert r.status == 200, r.body
        probes.append(u)

    fuzz()
    probe()
    stored = {e["id"] for e in project.events(event="probe")}
    missing = set(probes) - stored
    assert not missing and probes
    assert server.app.ingestion.failure is None
    record("fuzz_public_endpoints", cases=counts["cases"], answered_2xx=counts["2xx"], answered_4xx_json=counts["4xx"],
           answered_4xx_by_waitress=counts["waitress_4xx"],
           answered_5xx=0, statuses={str(k): v for k, v in sorted(statuses.items())}, public_paths=len(paths),
           probe_events_sent=len(probes), probe_events_stored=len(stored & set(probes)))


# --- malformed HTTP framing ---------------------------------------------------------

# Each raw request, and the status of its JSON answer (None: no HTTP answer, the connection is closed).
FRAMING = [
    (b"GARBAGE\r\n\r\n", 400),  # a malformed request line
    (b"POST /e/ HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    (b"POST /e/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
    (b"POST /e/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /e/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST /batch/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    (b"POST /batch/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400),
    (b"POST /batch/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    (b"POST /batch/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET /flags/?v=2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n", 431),
    (b"GET /" + b"e" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /e/\x00\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /e/ HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n", 400),  # a control character in a header
    (b"POST /e/ HTTP/9.9\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 401),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, None),  # a TLS ClientHello
    (b"POST /e/?%zz=%%%&&==& HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 401),
]


def test_malformed_http_framing_gets_json_and_never_takes_the_server_down(server, project):
    host, port = "127.0.0.1", int(project.url.rsplit(":", 1)[1])
    answers = []
    for raw, expect in FRAMING:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        status = int(m.group(1)) if m else None
        assert status == expect, (raw[:60], data[:300])
        if status is not None:
            head, _, body = data.partition(b"\r\n\r\n")
            ctype = re.search(rb"(?i)\r\ncontent-type: ([^\r]*)", head)
            assert ctype and ctype.group(1).startswith(b"application/json"), (raw[:60], data[:300])
            assert set(json.loads(body)) == ERROR_KEYS, (raw[:60], body[:300])
            answers.append(f"{status} {json.loads(body)['code']}")
        r = http_request("POST", project.url + "/e/", {"api_key": project.token, "event": "alive", "distinct_id": "d"})
        assert r.status == 200
    record("malformed_http_framing", cases=len(FRAMING), answers=answers, server_alive_after_each=True)


# --- bombs ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _gzip_bomb(mib):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    out = [c.compress(chunk) for _ in range(mib)]
    out.append(c.flush())
    return b"".join(out)


def _deep(token, depth):
    nested = "[" * depth + "]" * depth
    return ('{"api_key":"%s","batch":[{"event":"deep","distinct_id":"d","properties":{"n":%s}}]}'
            % (token, nested)).encode()


BOMBS = ["deep-100000", "deep-300", "gzip-256MiB", "gzip-256MiB-base64", "batch-10000-events",
         "property-1MiB", "distinct-properties-100000", "distinct-properties-1000x1000"]


@pytest.mark.parametrize("bomb", BOMBS)
def test_bombs_are_bounded_in_memory_and_time(make_server, bomb):
    srv = make_server()
    from conftest import Project

    p = Project(srv)
    t = p.token
    headers = {"Content-Type": "application/json"}
    path = "/batch/"
    expect_stored = None
    if bomb == "deep-100000":
        body = _deep(t, 100_000)
    elif bomb == "deep-300":
        body = _deep(t, 300)
    elif bomb == "gzip-256MiB":
        body, headers = _gzip_bomb(256), {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    elif bomb == "gzip-256MiB-base64":
        body = base64.b64encode(_gzip_bomb(256))
        headers = {"Content-Type": "text/plain"}
        path = "/batch/?compression=gzip-js"
    elif bomb == "batch-10000-events":
        body = json.dumps({"api_key": t, "batch": [
            {"event": "many", "distinct_id": f"d{i % 100}", "properties": {"i": i}} for i in range(10_000)]}).encode()
        expect_stored = 10_000
    elif bomb == "property-1MiB":
        body = json.dumps({"api_key": t, "batch": [{"event": "big", "distinct_id": "d",
                                                    "properties": {"big": "x" * (1 << 20)}}]}).encode()
    elif bomb == "distinct-properties-100000":
        body = json.dumps({"api_key": t, "batch": [{"event": "wide", "distinct_id": "d",
                                                    "properties": {f"p{i}": i for i in range(100_000)}}]}).encode()
    else:
        body = json.dumps({"api_key": t, "batch": [{"event": "wide", "distinct_id": f"d{j}", "properties": {
            f"p{j}_{i}": i for i in range(1000)}} for j in range(1000)]}).encode()
    before = _rss_kb("VmRSS")
    _reset_peak()
    start = time.monotonic()
    status, h, answer = send(p.url, "POST", path, headers, body, timeout=60)
    p.flush()
    elapsed = time.monotonic() - start
    peak = _rss_kb("VmHWM")
    check_answer(status, h, answer, bomb)
    assert elapsed < 30, f"{bomb} took {elapsed:.1f} s"
    growth_mb = (peak - before) / 1024
    # The decompression cap is 50 MiB; nothing may cost more than a few times that.
    assert growth_mb < 300, f"{bomb}: peak RSS +{growth_mb:.0f} MB"
    stored = None
    if status == 200:
        stored = srv.store.db.execute_sql("SELECT count(*) FROM event WHERE project_id = ?", (p.id,)).fetchone()[0]
        if expect_stored is not None:
            assert stored == expect_stored
    r = http_request("POST", p.url + "/e/", {"api_key": t, "event": "after", "distinct_id": "d"})
    assert r.status == 200
    record("bomb", bomb=bomb, request_bytes=len(body), status=status,
           detail=json.loads(answer).get("detail") if status >= 400 else None,
           seconds=round(elapsed, 2), peak_rss_growth_mb=round(growth_mb, 1), events_stored=stored)


# --- catastrophic regex -----------------------------------------------------------------


def test_catastrophic_regex_flag_filter_does_not_stall(server, project):
    r = project.api("POST", "/api/projects/@project/feature_flags/", {
        "key": "redos", "filters": {"groups": [{"properties": [
            {"key": "email", "value": "^(a|aa)+$", "type": "person", "operator": "regex"}],
            "rollout_percentage": 100}]}})
    assert r.status in (200, 201), r.body
    r = project.api("POST", "/api/projects/@project/feature_flags/", {
        "key": "plain", "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}})
    assert r.status in (200, 201), r.body
    crafted = "a" * 60 + "!"  # exponential backtracking, in `regex` too, without its timeout
    timings, answers = [], []
    for i in range(5):
        t = time.monotonic()
        r = http_request("POST", project.url + "/flags/?v=2", {
            "token": project.token, "distinct_id": f"redos-{i}", "person_properties": {"email": crafted}}, timeout=30)
        timings.append(time.monotonic() - t)
        assert r.status == 200, r.body
        answers.append(r.json())
    assert max(timings) < 2.0, timings
    for a in answers:
        assert a["flags"]["redos"]["enabled"] is False
        assert a["flags"]["plain"]["enabled"] is True
    # Under a stream of such requests, other clients are still served (the search holds the
    # GIL until its timeout, so they wait, but a bounded time).
    stop_attack, attacks = threading.Event(), []

    def attacker():
        while not stop_attack.is_set() and len(attacks) < 200:
            http_request("POST", project.url + "/flags/?v=2", {
                "token": project.token, "distinct_id": "attacker", "person_properties": {"email": crafted}}, timeout=30)
            attacks.append(1)

    threads = [threading.Thread(target=attacker) for _ in range(2)]
    for t in threads:
        t.start()
    others = []
    try:
        for _ in range(20):
            t = time.monotonic()
            r = http_request("POST", project.url + "/e/", {"api_key": project.token, "event": "bystander",
                                                          "distinct_id": "b"}, timeout=30)
            others.append(time.monotonic() - t)
            assert r.status == 200
    finally:
        stop_attack.set()
        for t in threads:
            t.join(30)
    assert max(others) < 2.0, others
    # The same flag still matches a harmless value.
    r = http_request("POST", project.url + "/flags/?v=2", {
        "token": project.token, "distinct_id": "ok", "person_properties": {"email": "aaaa"}})
    assert r.json()["flags"]["redos"]["enabled"] is True
    record("catastrophic_regex", requests=len(timings) + 1, max_seconds=round(max(timings), 3),
           attack_requests=len(attacks), bystander_requests=len(others),
           bystander_median_ms=round(sorted(others)[len(others) // 2] * 1000, 1),
           bystander_max_ms=round(max(others) * 1000, 1),
           errors_while_computing=[a["errorsWhileComputingFlags"] for a in answers])


@pytest.mark.parametrize("header", ["Content-Type", "Content-Encoding", "Origin", "Authorization", "X-Request-Id",
                                    "User-Agent", "X-Forwarded-For"])
def test_header_bytes_that_are_not_utf8_are_never_a_500(server, project, header):
    host, port = "127.0.0.1", int(project.url.rsplit(":", 1)[1])
    body = json.dumps({"api_key": project.token, "token": project.token, "distinct_id": "d",
                       "batch": [{"event": "x", "distinct_id": "d"}]}).encode()
    for method, path in [("POST", "/batch/"), ("POST", "/flags/?v=2"), ("POST", "/track/"),
                         ("GET", f"/api/projects/{project.id}/events/")]:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.putrequest(method, path)
        conn.putheader(header, b"\xe9\x80")
        if header != "Authorization":
            conn.putheader("Authorization", f"Bearer {project.key}")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        check_answer(r.status, r.headers, r.read(), f"{method} {path} {header}")
        conn.close()


# --- the private API, with a valid key ----------------------------------------------------

filter_value = st.one_of(json_value, st.sampled_from(["a@b.c", "^(a|aa)+$", "1.2.3", "-7d", "2026-01-01", "[", ""]),
                         st.lists(st.text(max_size=5), max_size=3))
property_filter = st.fixed_dictionaries({
    "key": st.one_of(st.sampled_from(["email", "$browser", "id", "name"]), json_value),
    "value": filter_value,
    "operator": st.one_of(st.sampled_from([
        "exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "gt", "gte", "lt", "lte",
        "is_set", "is_not_set", "is_date_before", "is_date_after", "in", "not_in", "semver_gt", "flag_evaluates_to"]),
        json_value),
    "type": st.one_of(st.sampled_from(["person", "cohort", "group", "flag", "event"]), json_value),
}, optional={"negation": json_value, "group_type_index": json_value})
flag_key = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
flag_body = st.fixed_dictionaries({"key": st.one_of(flag_key, flag_key, flag_key, st.text(max_size=12), json_value)},
                                  optional={
    "name": json_value,
    "active": json_value,
    "deleted": json_value,
    "ensure_experience_continuity": json_value,
    "evaluation_runtime": st.one_of(st.sampled_from(["all", "server", "client"]), json_value),
    "evaluation_tags": json_value,
    "filters": st.one_of(json_value, st.fixed_dictionaries({}, optional={
        "groups": st.one_of(json_value, st.lists(st.fixed_dictionaries({}, optional={
            "properties": st.one_of(st.lists(property_filter, max_size=3), st.lists(property_filter, max_size=3),
                                    json_value),
            "rollout_percentage": st.one_of(st.integers(0, 100), st.integers(-5, 105), st.floats(allow_nan=False),
                                            json_value),
            "variant": json_value}), max_size=3)),
        "multivariate": st.one_of(json_value, st.fixed_dictionaries({"variants": st.lists(st.fixed_dictionaries({
            "key": json_value, "rollout_percentage": json_value}), max_size=3)})),
        "payloads": json_value,
        "aggregation_group_type_index": json_value,
        "super_groups": json_value,
        "holdout_groups": json_value})),
})
cohort_body = st.fixed_dictionaries({}, optional={
    "name": json_value, "description": json_value, "is_static": json_value, "deleted": json_value,
    "filters": st.one_of(json_value, st.fixed_dictionaries({"properties": st.one_of(json_value, st.fixed_dictionaries({
        "type": st.sampled_from(["AND", "OR", "x"]), "values": st.lists(
            st.one_of(property_filter, st.fixed_dictionaries({"type": st.sampled_from(["AND", "OR"]),
                                                              "values": st.lists(property_filter, max_size=2)})),
            max_size=3)}))})),
})


def test_fuzz_private_api_with_a_valid_key(server, project):
    """Random and half-valid flag and cohort definitions, and random query strings, through
    every private route with the project's own key: 2xx or JSON 4xx, never a 5xx; then
    /flags still answers for whatever was stored."""
    routes = sorted({(r.rule, r.method) for r in server.web.routes
                     if not r.config.get("public") and not r.config.get("console")})  # console: HTML pages
    r = project.api("POST", "/api/projects/@project/feature_flags/", {
        "key": "base", "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}})
    values = {"project": project.id, "flag_id": r.json()["id"], "flag": "base", "cohort_id": 1,
              "person_uuid": "00000000-0000-0000-0000-000000000000"}
    counts = {"cases": 0}
    statuses = {}

    writes = [(rule, m) for rule, m in routes
              if m in ("POST", "PATCH") and ("feature_flags" in rule or "cohorts" in rule)]
    assert writes

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.sampled_from(routes), st.sampled_from(writes)), st.one_of(flag_body, flag_body, cohort_body,
                                                                                  json_value),
           st.lists(st.tuples(st.sampled_from(["limit", "offset", "search", "active", "cursor", "after", "before",
                                               "event", "distinct_id", "person_id", "token", "group_type_index",
                                               "delete_events"]),
                              st.one_of(st.text(max_size=12), st.sampled_from(["-1", "0", "1001", "true"]))),
                    max_size=3),
           st.dictionaries(st.sampled_from(["email", "$browser", "id", "name"]), filter_value, max_size=4))
    def fuzz(route, body, params, person_properties):
        rule, method = route
        path = re.sub(r"<([a-zA-Z_]+)(?::[^>]*)?>", lambda m: str(values.get(m.group(1), "1")), rule)
        if method == "DELETE":
            return  # deleting the fixture's person adds nothing here
        target = path + ("?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params) if params else "")
        data = json.dumps(body).encode() if method in ("POST", "PATCH", "PUT") else b""
        headers = {"Authorization": f"Bearer {project.key}", "Content-Type": "application/json"}
        status, h, answer = send(project.url, method, target, headers, data)
        if status != 304:
            check_answer(status, h, answer, f"{method} {target} {data[:300]!r}")
        counts["cases"] += 1
        statuses[status] = statuses.get(status, 0) + 1
        if status in (200, 201) and method in ("POST", "PATCH", "PUT"):
            # Whatever was stored is evaluated at once, against odd person properties.
            r = http_request("POST", project.url + "/flags/?v=2", {
                "token": project.token, "distinct_id": "fuzz", "person_properties": person_properties})
            assert r.status == 200, (data[:300], person_properties, r.body[:300])
            counts["evaluations"] = counts.get("evaluations", 0) + 1

    fuzz()
    r = http_request("POST", project.url + "/flags/?v=2", {"token": project.token, "distinct_id": "after-fuzz",
                                                          "person_properties": {"email": "a@b.c"}})
    assert r.status == 200, r.body
    created = project.api("GET", "/api/projects/@project/feature_flags/?limit=1000").json()["count"]
    record("fuzz_private_api", cases=counts["cases"], answered_5xx=0, flags_created=created,
           flags_evaluations_after_writes=counts.get("evaluations", 0),
           statuses={str(k): v for k, v in sorted(statuses.items())})
