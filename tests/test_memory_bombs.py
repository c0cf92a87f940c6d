"""Memory bombs against `python app.py`: small bodies that expand into gigabytes once decoded or parsed
(docs/reliability.md "Memory bombs"). Each class runs on a fresh server process, whose peak RSS
(`VmHWM`, reset through `/proc/<pid>/clear_refs` before the request) is read after the answer and,
for accepted requests, after the writer has stored them. No request may grow it past a small multiple
of `max_decompressed_bytes`.
"""

import gzip
import json
import sqlite3
import threading
import time
import zlib

import pytest

from phlite import codec
from support import Subprocess, assert_error, http
from test_reliability import record

MIB = 1024 * 1024
CAP = 50 * MIB  # max_decompressed_bytes (the default)
# Peak RSS growth asserted per request, in MB: what is parsed, at most 3 x the cap; what is refused before
# parsing, a small fixed amount (before the key check and the streamed values count, these bombs cost
# +45 MB to +1.5 GB); lz64 must decode up to the cap before it can tell, so 1.5 x the cap.
PARSED_MB = 3 * CAP / MIB
REFUSED_MB = 16
LZ64_MB = 1.5 * CAP / MIB
FORM_MB = 3 * 20  # a 20 MiB form body: the body, its `data` field, slack
GZ = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def _kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def _gzip(*parts, repeat=None):
    """gzip of parts[0] + parts[1] * repeat + parts[2], built without holding the whole text."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(parts[0])]
    chunk = parts[1] * 10_000
    for _ in range(repeat // 10_000):
        out.append(c.compress(chunk))
    out.append(c.compress(parts[1] * (repeat % 10_000) + parts[2]))
    out.append(c.flush())
    return b"".join(out)


_LZ_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def _lz64_run(char, units):
    """lz-string base64 text decoding to `char` repeated >= `units` times: every code names the entry being
    defined, so each is one longer than the last (~23 KB for 60 M characters)."""
    acc = nacc = 0
    out = []

    def put(value, count):
        nonlocal acc, nacc
        acc |= value << nacc
        nacc += count
        while nacc >= 6:
            group, acc, nacc = acc & 63, acc >> 6, nacc - 6
            out.append(_LZ_ALPHABET[int(f"{group:06b}"[::-1], 2)])

    put(0, 2)
    put(ord(char), 8)
    size, entry, dict_len, enlarge, bits = 1, 1, 4, 4, 3
    while size < units:
        put(dict_len, bits)
        entry, dict_len, enlarge = entry + 1, dict_len + 1, enlarge - 1
        size += entry
        if enlarge == 0:
            enlarge, bits = 1 << bits, bits + 1
    put(2, bits)
    if nacc:
        put(0, 6 - nacc)
    return "".join(out).encode()


def _stored(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM event").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()


def _measure(tmp_path, name, bombs, expect, bound_mb, stored=0):
    """Start a server, send `bombs` (a list of (path, body, headers) sent at once), check each answer's status
    is `expect`, wait until `stored` events are in the database, and return the figures."""
    srv = Subprocess(tmp_path / name)
    try:
        pid = srv.proc.pid
        bombs = [(path, body(srv) if callable(body) else body, headers) for path, body, headers in bombs]
        # Warm the routes (imports, caches) so the figure is the bomb's, not the first request's.
        for path in ("/batch/", "/flags/?v=2"):
            http("POST", srv.url + path, {"api_key": srv.token, "token": srv.token, "distinct_id": "w",
                                          "batch": [{"event": "w", "distinct_id": "w"}]})
        while _stored(srv.db) < 1:
            time.sleep(0.05)  # the warm-up event, stored by the server's own writer thread
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # VmHWM := current RSS
        before = _kb(pid, "VmRSS")
        answers = [None] * len(bombs)

        def send(i, path, body, headers):
            answers[i] = http("POST", srv.url + path, body, headers, timeout=120)

        start = time.perf_counter()
        threads = [threading.Thread(target=send, args=(i, *b)) for i, b in enumerate(bombs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        deadline = time.monotonic() + 60
        while stored and _stored(srv.db) < stored + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        peak = _kb(pid, "VmHWM")
        assert srv.proc.poll() is None, "the server died"
        assert http("GET", srv.url + "/healthz").status == 200
    finally:
        srv.terminate()
    for r in answers:
        if expect == 200:
            assert r.status == 200, r.body[:300]
        else:
            assert_error(r, expect)
    assert _stored(srv.db) - 1 == stored
    growth = (peak - before) / 1024
    figures = dict(bomb=name, body_kb=round(sum(len(b[1]) for b in bombs) / 1024, 1), requests=len(bombs),
                   answer=answers[0].status, detail=answers[0].json().get("detail") if expect != 200 else None,
                   seconds=round(elapsed, 2), rss_before_mb=round(before / 1024, 1),
                   rss_peak_mb=round(peak / 1024, 1), growth_mb=round(growth, 1), stored=stored)
    record("memory_bomb", **figures)
    assert growth <= len(bombs) * bound_mb, figures
    return figures


EMPTY_OBJECTS = _gzip(b"[", b"{},", b"{}]", repeat=16_000_000)  # 48 KB: 16 M objects, 48 MB of JSON
UNDER_BOUND = _gzip(b"[", b"{},", b"{}]", repeat=499_000)  # 998,000 values: under max_json_values
# /flags: one object with 332,000 keys (996,000 values), and one nested 100,000 deep.
MANY_KEYS = b'{"distinct_id": "x", "person_properties": {' + b", ".join(
    b'"k%d": {}' % i for i in range(332_000)) + b"}}"
DEEP = gzip.compress(b'{"distinct_id": "x", "person_properties": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}")


FORM_FIELDS = (b"data=e30=&" + b"&".join(b"k%d=" % i for i in range(2_000_000)))[:20 * MIB - 100]
MULTIPART = b"".join(b'--b\r\nContent-Disposition: form-data; name="k%d"\r\n\r\nv\r\n' % i
                     for i in range(100_000))[:2 * MIB - 100]


def _with_key(srv, head=b'{"api_key": "%s", "batch": ['):
    return head.replace(b"%s", srv.token.encode())


CLASSES = {
    # No key: refused before parsing (the values bound, or the key check).
    "gzip-empty-objects-no-key": ([("/batch/", EMPTY_OBJECTS, GZ)], 413, REFUSED_MB),
    "gzip-under-values-bound-no-key": ([("/batch/", UNDER_BOUND, GZ)], 401, REFUSED_MB),
    "lz64-no-key": ([("/e/?compression=lz64", _lz64_run("a", 60 * MIB), {"Content-Type": "text/plain"})], 413,
                    LZ64_MB),
    "flags-many-keys-no-key": ([("/flags/?v=2", gzip.compress(MANY_KEYS), GZ)], 401, REFUSED_MB),
    "flags-nested-no-key": ([("/flags/?v=2", DEEP, GZ)], 401, REFUSED_MB),
    "four-concurrent-no-key": ([("/batch/", UNDER_BOUND, GZ)] * 4, 401, REFUSED_MB),
    # Capture v1: the key is a header, checked before the body is decompressed.
    "v1-unknown-bearer-key": ([("/i/v1/analytics/events", EMPTY_OBJECTS,
                                {**GZ, "Authorization": "Bearer phc_unknown"})], 401, REFUSED_MB),
    # Form bodies: 20 MiB of 2 M fields (only the fields decoding reads are looked for), and 100,000 multipart
    # parts (counted before the MIME parser builds a message per part). The form body itself is in memory.
    "form-2M-fields-no-key": ([("/batch/", FORM_FIELDS, {"Content-Type": "application/x-www-form-urlencoded"})],
                              401, FORM_MB),
    "multipart-100000-parts-no-key": ([("/e/", MULTIPART, {"Content-Type": "multipart/form-data; boundary=b"})],
                                      400, REFUSED_MB),
    # The private API: a `personal_api_key` in a 2 MiB JSON body is found without parsing the body.
    "private-api-body-key-unknown": ([("/api/projects/1/feature_flags/", b'{"personal_api_key": "phx_unknown", "a": ['
                                       + b"{}," * 699_000 + b"{}]}", {"Content-Type": "application/json"})], 401,
                                     REFUSED_MB),
    # A valid key: parsed, under the values bound.
    "gzip-empty-objects-key": ([("/batch/", lambda s: _gzip(_with_key(s), b"{},", b"{}]}", repeat=16_000_000),
                                 GZ)], 413, REFUSED_MB),
    "gzip-under-values-bound-key": ([("/batch/", lambda s: _gzip(_with_key(s), b"{},", b"{}]}", repeat=499_000),
                                      GZ)], 413, PARSED_MB),
    # NaN sends the body through the slow (standard library) parser.
    "flags-many-keys-key": ([("/flags/?v=2", lambda s: gzip.compress(MANY_KEYS.replace(
        b'"distinct_id"', b'"n": NaN, "token": "%s", "distinct_id"' % s.token.encode())), GZ)], 200, PARSED_MB),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CLASSES))
def test_memory_bomb_is_bounded(tmp_path, name):
    bombs, expect, bound_mb = CLASSES[name]
    _measure(tmp_path, name, bombs, expect, bound_mb)


@pytest.mark.slow
def test_accepted_worst_case_requests_are_bounded_through_storage(tmp_path):
    """With a valid key, what is accepted is stored: the peak covers the parse, the spool and the writer."""
    props = {f"p{i}": "v" for i in range(45)}
    events = [{"event": "wide", "distinct_id": f"d{i % 50}", "properties": props} for i in range(10_000)]
    wide = lambda s: gzip.compress(json.dumps({"api_key": s.token, "batch": events}).encode())
    _measure(tmp_path, "valid-key-10000-events-x45-properties", [("/batch/", wide, GZ)], 200, PARSED_MB, stored=10_000)
    strings = lambda s: _gzip(_with_key(s, b'{"api_key": "%s", "batch": [{"event": "e", "distinct_id": "d", '
                                          b'"properties": {"a": ['), b'"ab",', b'"ab"]}}]}', repeat=990_000)
    _measure(tmp_path, "valid-key-one-event-990000-strings", [("/batch/", strings, GZ)], 200, PARSED_MB, stored=1)


def test_the_key_scan_before_parsing_decides_only_when_sure():
    known = {"phc_good"}.__contains__
    assert codec.unknown_keys(b'[{"event": "e"}, {}]', known) == []
    assert codec.unknown_keys(b'{"api_key": "phc_bad", "batch": [{"properties": {"token": " x "}}]}', known) == [
        "phc_bad", "x"]
    # Found at any depth, in any of the three names, with JSON escapes in the value.
    for body in (b'{"batch": [{"properties": {"token": "phc_good"}}]}', b'[{"$token" :\n "phc_good"}]',
                 b'{"api_key": "phc_\\u0067ood"}', b'{"x": 1, "token": "phc_bad", "token": "phc_good"}'):
        assert codec.unknown_keys(body, known) is None, body
    # Not a JSON object or array (base64, form, garbage): the decoders go on, the parse decides.
    assert codec.unknown_keys(b"eyJhIjoxfQ==", known) is None
    # Many distinct candidates: undecided, so the values bound alone applies.
    many = b"[" + b",".join(b'{"token": "t%d"}' % i for i in range(17)) + b"]"
    assert codec.unknown_keys(many, known) is None
    assert codec.unknown_keys(many.replace(b't16"', b't0"'), known) == [f"t{i}" for i in range(16)]
