"""phlite.ingest: request bytes -> Payload, with no HTTP and no database (docs/protocol.md "Capture: body decoding", docs/protocol.md "Capture: project key", docs/protocol.md "Capture: query parameters", docs/protocol.md "Mixpanel clients")."""

import base64
import gzip
import json
import tracemalloc
import uuid
import zlib
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

import lzstring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phlite import errors
from phlite.config import environ_get
from phlite.ingest.wire import decode_request

FORM = "application/x-www-form-urlencoded"
TOKEN = "phc_test"
EVENT = {"event": "$pageview", "distinct_id": "u1", "properties": {"token": TOKEN, "$current_url": "https://x/?q=~>"}}
BATCH = {"api_key": TOKEN, "batch": [EVENT], "sent_at": "2024-05-01T12:00:00.000Z"}


def js(obj) -> bytes:
    return json.dumps(obj).encode()


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def lz64(obj) -> str:
    return lzstring.LZString().compressToBase64(json.dumps(obj))


def plus_b64(obj) -> bytes:
    """base64 of obj's JSON that contains '+' (to exercise the form '+' -> ' ' repair)."""
    for i in range(200):
        encoded = b64(js({**obj, "pad": "~" * i}))
        if b"+" in encoded:
            return encoded
    raise AssertionError("no '+' found")


def decode(path="/batch/", body=b"", **kw):
    return decode_request(path, body, **kw)


# -- every encoding decodes to the same events ---------------------------------------------------------

ENCODINGS = [
    ("plain JSON", "/batch/", js(BATCH), {"content_type": "application/json"}),
    ("gzip by header", "/batch/", gzip.compress(js(BATCH)), {"content_encoding": "gzip"}),
    ("gzip header case", "/batch/", gzip.compress(js(BATCH)), {"content_encoding": " GZIP "}),
    ("gzip by magic, text/plain", "/e/", gzip.compress(js(BATCH)), {"content_type": "text/plain"}),
    ("gzip, ?compression=gzip-js", "/e/", gzip.compress(js(BATCH)), {"query": {"compression": "gzip-js"}}),
    ("base64 raw body on /i/v0/e", "/i/v0/e/", b64(js(BATCH)), {"content_type": "text/plain"}),
    ("base64 raw body on /batch", "/batch/", b64(js(BATCH)), {}),
    ("form base64, + sent raw", "/e/", b"data=" + plus_b64(BATCH), {"content_type": FORM}),
    ("form base64, + escaped", "/e/", b"data=" + quote(plus_b64(BATCH)).encode(), {"content_type": FORM}),
    ("form with charset", "/e/", b"data=" + quote(b64(js(BATCH))).encode(), {"content_type": FORM + "; charset=UTF-8"}),
    ("form JSON, not base64", "/e/", b"data=" + quote(js(BATCH)).encode() + b"&ver=1.2", {"content_type": FORM}),
    ("form, data not first", "/track/", b"verbose=1&data=" + quote(js(BATCH)).encode(), {"content_type": FORM}),
    ("sendBeacon form as text/plain", "/e/", b"data=" + quote(b64(js(BATCH))).encode(), {"content_type": "text/plain;charset=UTF-8"}),
    ("form gzip data", "/e/", b"data=" + quote(gzip.compress(js(BATCH))).encode(), {"content_type": FORM}),
    ("form base64 + ?compression=base64 on /i/v0/e", "/i/v0/e/", b"data=" + quote(b64(js(BATCH))).encode(),
     {"content_type": FORM, "query": {"compression": "base64"}}),
    ("form lz64", "/e/", b"compression=lz64&data=" + quote(lz64(BATCH)).encode(), {"content_type": FORM}),
    ("lz64 body, query hint", "/e/", lz64(BATCH).encode(), {"query": {"compression": "lz64"}}),
    ("lz64 body, lz-string header", "/i/v0/e/", lz64(BATCH).encode(), {"content_encoding": "lz-string"}),
    ("legacy double base64 on /e", "/e/", b64(b64(js(BATCH))), {}),
    ("legacy double base64 on /capture", "/capture/", b64(b64(js(BATCH))), {}),
    ("GET ?data=base64", "/e/", b"", {"query": {"data": b64(js(BATCH)).decode()}}),
    ("GET ?data=JSON", "/e/", b"", {"query": {"data": json.dumps(BATCH)}}),
    ("GET ?data=base64 with + as space", "/e/", b"", {"query": {"data": plus_b64(BATCH).decode().replace("+", " ")}}),
    ("query data wins over body", "/e/", b"garbage", {"query": {"data": json.dumps(BATCH)}}),
    ("form content type over a JSON body", "/capture/", js(BATCH), {"content_type": FORM}),
]


@pytest.mark.parametrize("name, path, body, kw", ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_every_encoding_decodes(name, path, body, kw):
    p = decode(path, body, **kw)
    assert p.token == TOKEN
    assert [e["event"] for e in p.events] == ["$pageview"]
    assert p.events[0]["properties"]["$current_url"] == EVENT["properties"]["$current_url"]
    assert p.sent_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def test_lz64_with_astral_characters():
    # lz-string works on UTF-16 code units: an emoji is a surrogate pair in the compressed stream.
    obj = {"api_key": TOKEN, "batch": [{"event": "e😀é", "distinct_id": "u"}]}
    text = json.dumps(obj, ensure_ascii=False).encode("utf-16-le")
    units = "".join(chr(int.from_bytes(text[i:i + 2], "little")) for i in range(0, len(text), 2))
    body = lzstring.LZString().compressToBase64(units).encode()
    assert decode("/e/", body, query={"compression": "lz64"}).events[0]["event"] == "e😀é"


@pytest.mark.parametrize("path", ["/i/v0/e/", "/batch/"])
def test_second_base64_pass_is_legacy_paths_only(path):
    with pytest.raises(errors.BadRequest, match="failed to parse request"):
        decode(path, b64(b64(js(BATCH))))


# -- JSON shapes ----------------------------------------------------------------------------------------

SHAPES = [
    ("array", "/e/", [EVENT, {**EVENT, "event": "b"}], ["$pageview", "b"]),
    ("batch", "/batch/", {"api_key": TOKEN, "batch": [EVENT, {**EVENT, "event": "b"}]}, ["$pageview", "b"]),
    ("single", "/capture/", EVENT, ["$pageview"]),
    ("engage on /engage", "/engage/", {"$token": TOKEN, "$distinct_id": "u1", "$set": {"a": 1}}, ["$identify"]),
    ("non-dicts dropped from array", "/e/", [EVENT, 1, "x", None, [EVENT]], ["$pageview"]),
    ("nameless events in an array are kept", "/e/", [EVENT, {"distinct_id": "u", "properties": {"token": TOKEN}}],
     ["$pageview", None]),
    ("$performance_event removed", "/e/", [EVENT, {**EVENT, "event": "$performance_event"}], ["$pageview"]),
    ("only $performance_event: 200 with nothing", "/e/", [{**EVENT, "event": "$performance_event"}], []),
    ("batch without api_key takes the events' token", "/batch/", {"batch": [EVENT]}, ["$pageview"]),
]


@pytest.mark.parametrize("name, path, obj, names", SHAPES, ids=[s[0] for s in SHAPES])
def test_json_shapes(name, path, obj, names):
    p = decode(path, js(obj))
    assert [e.get("event") for e in p.events] == names
    assert p.token == TOKEN


ERRORS = [
    ("no body, no data", "/e/", b"", {}, errors.BadRequest, "empty_payload", "request missing data payload"),
    ("empty query data, empty body", "/e/", b"", {"query": {"data": ""}}, errors.BadRequest, "empty_payload", "missing data"),
    ("form without data", "/e/", b"ver=1&ip=1", {"content_type": FORM}, errors.BadRequest, "empty_payload", "missing data"),
    ("empty array", "/e/", b"[]", {}, errors.BadRequest, "empty_batch", "request holds no event"),
    ("empty batch", "/batch/", js({"api_key": TOKEN, "batch": []}), {}, errors.BadRequest, "empty_batch", "holds no event"),
    ("array of non-objects", "/e/", b"[1, 2]", {}, errors.BadRequest, "invalid_payload", "no event is a JSON object"),
    ("batch not a list", "/batch/", js({"api_key": TOKEN, "batch": {}}), {}, errors.BadRequest, "invalid_payload", "must be an array"),
    ("engage shape off /engage", "/e/", js({"$set": {"a": 1}, "token": TOKEN}), {}, errors.BadRequest, "invalid_payload",
     "non-engage request missing event name attribute"),
    ("event: null off /engage", "/capture/", js({"event": None, "token": TOKEN}), {}, errors.BadRequest, "invalid_payload",
     "non-engage request"),
    ("scalar JSON", "/e/", b'"hello"', {}, errors.BadRequest, "invalid_payload", "failed to parse request"),
    ("bad JSON", "/e/", b"{not json", {}, errors.BadRequest, "invalid_payload", "failed to parse request: "),
    ("invalid UTF-8", "/e/", b'{"event": "\xff\xfe", "token": "t"}', {}, errors.BadRequest, "invalid_payload", "failed to parse"),
    ("corrupt gzip", "/batch/", b"\x1f\x8b\x08\x00garbage-garbage", {}, errors.BadRequest, "invalid_payload", "invalid GZIP data"),
    ("truncated gzip", "/batch/", gzip.compress(js(BATCH))[:-12], {}, errors.BadRequest, "invalid_payload", "invalid GZIP data"),
    ("bad lz64", "/e/", b"!!!not lz!!!", {"query": {"compression": "lz64"}}, errors.BadRequest, "invalid_payload", "invalid lz64"),
    ("mixed tokens in an array", "/e/", js([EVENT, {**EVENT, "properties": {"token": "phc_other"}}]), {},
     errors.Unauthorized, "invalid_api_key", "Project API key invalid"),
]


@pytest.mark.parametrize("name, path, body, kw, exc, code, detail", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(name, path, body, kw, exc, code, detail):
    with pytest.raises(exc) as info:
        decode(path, body, **kw)
    assert info.value.code == code
    assert detail in info.value.detail
    assert info.value.body()["type"] in ("validation_error", "authentication_error")


# -- bombs and limits -----------------------------------------------------------------------------------


def gzip_bomb(mib: int) -> bytes:
    """A valid gzip stream of `mib` MiB of zeros, built from one full-flushed 1 MiB block (~1 KB each)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return first + block * (mib - 1) + c.flush()


def test_gzip_bomb_fails_fast_without_inflating():
    bomb = gzip_bomb(1024)  # 1 GiB decompressed, ~1 MB on the wire
    assert len(bomb) < 2_000_000
    # Memory, not time, shows where it stopped (a timed assertion fails on a loaded machine):
    # at the 50 MiB default cap, far below the bomb's 1 GiB.
    tracemalloc.start()
    try:
        with pytest.raises(errors.PayloadTooLarge) as info:
            decode("/batch/", bomb, content_encoding="gzip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * 50 * 2**20
    assert info.value.status == 413


def test_gzip_by_magic_respects_a_small_cap():
    with pytest.raises(errors.PayloadTooLarge):
        decode("/e/", gzip_bomb(4), max_decompressed=1 << 20)
    assert decode("/batch/", gzip.compress(js(BATCH)), max_decompressed=len(js(BATCH))).token == TOKEN


@pytest.mark.parametrize("path, body, kw", [
    ("/e/", lzstring.LZString().compressToBase64("A" * 200_000).encode(), {"query": {"compression": "lz64"}}),
    ("/e/", b64(b"[" + b" " * 10_000 + b"]"), {}),
    ("/e/", b"[" + b" " * 10_000 + b"]", {}),
    ("/e/", b"data=" + b64(b"[" + b" " * 10_000 + b"]"), {"content_type": FORM}),
], ids=["lz64", "base64", "plain", "form base64"])
def test_every_decoding_step_is_capped(path, body, kw):
    with pytest.raises(errors.PayloadTooLarge):
        decode(path, body, max_decompressed=5_000, **kw)


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b'{"batch":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"[" * 100_000,  # unbalanced
    b'[{"event": "x", "properties": ' + b'{"a":[' * 600 + b"1" + b"]}" * 600 + b"}]",  # 1,203 levels
], ids=["arrays", "objects", "inside batch", "unbalanced", "just over the limit"])
def test_deep_nesting_is_a_clean_400(body):
    with pytest.raises(errors.BadRequest) as info:
        decode("/e/", body)
    assert info.value.status == 400


def test_nesting_below_the_limit_and_brackets_in_strings_are_fine():
    deep = {"event": "x", "token": TOKEN, "properties": json.loads('{"a":[' * 400 + "1" + "]}" * 400)}
    many = [{"event": "e", "distinct_id": "[[[{{{", "properties": {"token": TOKEN, "s": "]]]}}}" * 50}}] * 300
    assert decode("/e/", js(deep)).events[0]["event"] == "x"
    assert len(decode("/e/", js(many)).events) == 300


# -- token, sent_at and the other request fields -------------------------------------------------------

TOKENS = [
    ("batch api_key wins", "/batch/", {"api_key": " phc_batch ", "batch": [EVENT]}, {}, "phc_batch"),
    ("batch token alias", "/batch/", {"token": "phc_batch", "batch": [EVENT]}, {}, "phc_batch"),
    ("batch api_key null -> events", "/batch/", {"api_key": None, "batch": [EVENT]}, {}, TOKEN),
    ("single: top-level token", "/capture/", {**EVENT, "token": "phc_top"}, {}, "phc_top"),
    ("single: $token", "/capture/", {**EVENT, "$token": "phc_top"}, {}, "phc_top"),
    ("single: api_key", "/capture/", {**EVENT, "api_key": "phc_top"}, {}, "phc_top"),
    ("single: properties.token", "/capture/", EVENT, {}, TOKEN),
    ("single: whitespace trimmed", "/capture/", {"event": "x", "properties": {"token": "\t phc_x \n"}}, {}, "phc_x"),
    ("single: empty token is none", "/capture/", {"event": "x", "token": "  ", "properties": {}}, {}, None),
    ("single: non-string ignored", "/capture/", {"event": "x", "properties": {"token": 5}}, {}, None),
    ("array: one distinct token", "/e/", [EVENT, {"event": "y"}, EVENT], {}, TOKEN),
    ("no token anywhere", "/e/", [{"event": "y"}], {}, None),
    ("personal key passed through", "/batch/", {"api_key": "phx_personal", "batch": [EVENT]}, {}, "phx_personal"),
    ("query api_key fallback", "/import", [{"event": "y", "properties": {}}], {"query": {"api_key": "phc_q"}}, "phc_q"),
    ("query token fallback", "/e/", [{"event": "y"}], {"query": {"token": "phc_q"}}, "phc_q"),
    ("body beats query", "/import", [EVENT], {"query": {"api_key": "phc_q"}}, TOKEN),
]


@pytest.mark.parametrize("name, path, obj, kw, token", TOKENS, ids=[t[0] for t in TOKENS])
def test_token_precedence(name, path, obj, kw, token):
    assert decode(path, js(obj), **kw).token == token


def test_form_api_key_fallback_and_verbose_in_body():
    body = urlencode({"data": json.dumps({"event": "e", "properties": {"distinct_id": "d"}}), "api_key": "phc_form",
                      "verbose": 1}).encode()
    p = decode("/import", body, content_type=FORM)
    assert (p.token, p.verbose) == ("phc_form", True)


SENT_AT = [
    ("batch ISO", {"sent_at": "2024-05-01T12:00:00+02:00"}, {}, datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
    ("batch naive is UTC", {"sent_at": "2024-05-01T12:00:00"}, {}, datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
    ("batch beats query", {"sent_at": "2024-05-01T12:00:00Z"}, {"_": "1700000000000"},
     datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
    ("query _ ms", {}, {"_": "1700000000000"}, datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)),
    ("query sent_at ms", {}, {"sent_at": "1700000000000"}, datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)),
    ("unparseable batch -> query", {"sent_at": "yesterday"}, {"_": "1700000000000"},
     datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)),
    ("query seconds", {}, {"_": "1700000000"}, datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)),
    ("query year <= 2020 ignored", {}, {"_": "1500000000000"}, None),
    ("query non-integer ignored", {}, {"_": "soon"}, None),
    ("query absurd ignored", {}, {"_": "9" * 30}, None),
    ("none", {}, {}, None),
]


@pytest.mark.parametrize("name, extra, query, expected", SENT_AT, ids=[s[0] for s in SENT_AT])
def test_sent_at(name, extra, query, expected):
    p = decode("/batch/", js({"api_key": TOKEN, "batch": [EVENT], **extra}), query=query)
    assert p.sent_at == expected
    assert p.sent_at is None or p.sent_at.tzinfo is not None


@pytest.mark.parametrize("body, query, form, expected", [
    ({"historical_migration": True}, {}, None, (True, False, None)),
    ({"historical_migration": "yes"}, {}, None, (False, False, None)),
    ({"project_id": 42}, {}, None, (False, False, "42")),
    ({}, {"project_id": "7", "verbose": "1"}, None, (False, True, "7")),
    ({"project_id": "3"}, {"project_id": "7"}, None, (False, False, "3")),
    ({}, {"verbose": "0"}, "1", (False, True, None)),
    ({}, {}, "0", (False, False, None)),
])
def test_request_flags(body, query, form, expected):
    raw = js({"api_key": TOKEN, "batch": [EVENT], **body})
    kw = {}
    if form is not None:
        raw = urlencode({"data": raw.decode(), "verbose": form}).encode()
        kw["content_type"] = FORM
    p = decode("/batch/", raw, query=query, **kw)
    assert (p.historical_migration, p.verbose, p.project_id) == expected


# -- Mixpanel -------------------------------------------------------------------------------------------

MP_TOKEN = "mp_token"
MP_EVENT = {"event": "Signed up", "properties": {"token": MP_TOKEN, "distinct_id": "d1", "time": 1700000000.25,
                                                 "$insert_id": "a1b2c3", "mp_lib": "python"}}


def mp_uuid(token, insert_id):
    return decode("/track", js({"event": "e", "properties": {"token": token, "$insert_id": insert_id}})).events[0]["uuid"]


def test_mixpanel_python_track_form():
    body = urlencode({"data": json.dumps(MP_EVENT), "verbose": 1, "ip": 0}).encode()
    p = decode("/track", body, content_type=FORM)
    (event,) = p.events
    assert (p.token, p.verbose) == (MP_TOKEN, True)
    assert event["timestamp"] == "2023-11-14T22:13:20.250Z"
    assert uuid.UUID(event["uuid"]).version == 5
    assert event["uuid"] == decode("/track", body, content_type=FORM).events[0]["uuid"]  # a retry dedupes
    assert event["properties"]["distinct_id"] == "d1"


def test_mixpanel_node_get_track_without_time():
    obj = {"event": "e", "properties": {"distinct_id": "d", "token": MP_TOKEN, "mp_lib": "node"}}
    p = decode("/track", b"", query={"ip": "0", "verbose": "0", "data": b64(js(obj)).decode(), "api_key": "k"})
    assert p.token == MP_TOKEN and p.verbose is False
    assert "timestamp" not in p.events[0] and "uuid" not in p.events[0]


def test_mixpanel_node_import_batch_in_ms():
    events = [{"event": "e", "properties": {"distinct_id": "d", "token": MP_TOKEN, "time": 1700000000123 + i,
                                            "$insert_id": f"i{i}"}} for i in range(3)]
    p = decode("/import", b"data=" + quote(b64(js(events))).encode(), content_type=FORM, query={"api_key": "k"})
    assert [e["timestamp"] for e in p.events] == [f"2023-11-14T22:13:20.{123 + i}Z" for i in range(3)]
    assert len({e["uuid"] for e in p.events}) == 3


def test_mixpanel_browser_beacon_batch():
    events = [MP_EVENT, {**MP_EVENT, "event": "$mp_web_page_view"}]
    body = b"data=" + quote(b64(js(events))).encode()
    p = decode("/track/", body, content_type="text/plain;charset=UTF-8", query={"verbose": "1", "ip": "1", "_": "1700000001000"})
    assert [e["event"] for e in p.events] == ["Signed up", "$mp_web_page_view"]
    assert p.verbose and p.sent_at == datetime(2023, 11, 14, 22, 13, 21, tzinfo=timezone.utc)


@pytest.mark.parametrize("time_value, expected", [
    (1700000000, "2023-11-14T22:13:20.000Z"),
    (1700000000.999, "2023-11-14T22:13:20.999Z"),
    (1700000000999, "2023-11-14T22:13:20.999Z"),
    ("1700000000", "2023-11-14T22:13:20.000Z"),
    ("soon", None),
    (True, None),
    (None, None),
    (1e300, None),
])
def test_mixpanel_time_seconds_vs_ms(time_value, expected):
    event = decode("/track", js({"event": "e", "properties": {"token": "t", "time": time_value}})).events[0]
    assert event.get("timestamp") == expected


def test_mixpanel_keeps_an_explicit_timestamp_and_uuid():
    given_uuid = "0190a4e1-0000-7000-8000-000000000001"
    obj = {"event": "e", "uuid": given_uuid, "timestamp": "2020-01-01T00:00:00Z",
           "properties": {"token": "t", "time": 1700000000, "$insert_id": "x"}}
    event = decode("/track", js(obj)).events[0]
    assert (event["uuid"], event["timestamp"]) == (given_uuid, "2020-01-01T00:00:00Z")


def test_insert_id_uuid_is_scoped_by_token():
    assert mp_uuid("t1", "abc") == mp_uuid("t1", "abc")
    assert mp_uuid("t1", "abc") != mp_uuid("t2", "abc")
    assert mp_uuid("t1", "abc") != mp_uuid("t1", "abd")


def test_insert_id_is_not_used_outside_mixpanel_paths():
    assert "uuid" not in decode("/e/", js(MP_EVENT)).events[0]


def test_engage_operations():
    obj = {"$token": MP_TOKEN, "$distinct_id": "d1", "$time": 1700000000.5, "$ip": "1.2.3.4",
           "$set": {"plan": "pro"}, "$set_once": {"first": 1}, "$unset": ["old"], "$add": {"n": 2},
           "$append": {"l": "x"}, "$union": {"u": ["a"]}, "$remove": {"r": "y"}}
    body = urlencode({"data": json.dumps(obj), "verbose": 1}).encode()
    p = decode("/engage", body, content_type=FORM)
    (event,) = p.events
    assert p.token == MP_TOKEN
    assert event["event"] == "$identify" and event["distinct_id"] == "d1"
    assert event["$set"] == {"plan": "pro"} and event["$set_once"] == {"first": 1}
    assert event["timestamp"] == "2023-11-14T22:13:20.500Z"
    # The event keeps what the client sent; the Mixpanel operations travel beside it.
    assert event["properties"] == {"$unset": ["old"], "$ip": "1.2.3.4"}
    assert p.operations == [{"$add": {"n": 2}, "$append": {"l": "x"}, "$union": {"u": ["a"]}, "$remove": {"r": "y"}}]


@pytest.mark.parametrize("unset, expected", [(["a", "b"], ["a", "b"]), ({"a": 1}, ["a"]), ("a", ["a"]), (5, [])])
def test_engage_unset_shapes(unset, expected):
    event = decode("/engage/", js({"$token": "t", "$distinct_id": "d", "$unset": unset})).events[0]
    assert event["properties"]["$unset"] == expected


def test_engage_delete_and_browser_batch():
    objs = [{"$token": MP_TOKEN, "$distinct_id": "d1", "$delete": ""},
            {"$token": MP_TOKEN, "$distinct_id": "d2", "$set": {"company": ["acme"]}, "$device_id": "dev"}]
    p = decode("/engage/", b"data=" + quote(b64(js(objs))).encode(), content_type=FORM, query={"verbose": "1"})
    assert p.events[0]["properties"] == {}
    assert p.operations == [{"$delete": True}, {}]
    assert p.events[1]["$set"] == {"company": ["acme"]} and p.events[1]["distinct_id"] == "d2"


def test_posthog_engage_shape_is_the_same_path():
    obj = {"token": TOKEN, "distinct_id": "u9", "$set": {"a": 1}, "properties": {"x": 1}, "uuid": "u", "offset": 5}
    (event,) = decode("/engage/", js(obj)).events
    assert event == {"event": "$identify", "token": TOKEN, "distinct_id": "u9", "$set": {"a": 1}, "uuid": "u",
                     "offset": 5, "properties": {"x": 1}}


def test_engage_with_bad_properties_is_left_for_the_writer_to_drop():
    assert decode("/engage", js({"$token": "t", "$distinct_id": "d", "properties": [1]})).events[0]["properties"] == [1]


def test_mixpanel_node_groups_get():
    obj = {"$token": MP_TOKEN, "$group_key": "company", "$group_id": "acme", "$set": {"size": 10},
           "$set_once": {"founded": 1999}, "$unset": ["old"], "$union": {"tags": ["x"]}}
    p = decode("/groups", b"", query={"data": b64(js(obj)).decode(), "verbose": "0"})
    (event,) = p.events
    assert event["event"] == "$groupidentify" and event["distinct_id"] == "$company_acme"
    assert event["token"] == MP_TOKEN
    assert event["properties"] == {"$group_type": "company", "$group_key": "acme", "$group_set": {"size": 10},
                                   "$group_set_once": {"founded": 1999}, "$group_unset": ["old"]}
    assert p.operations == [{"$union": {"tags": ["x"]}}]


def test_groups_numeric_id_time_and_delete():
    obj = {"$token": "t", "$group_key": "team", "$group_id": 42, "$time": 1700000000000, "$delete": ""}
    p = decode("/groups/", js([obj]))
    (event,) = p.events
    assert event["distinct_id"] == "$team_42" and event["properties"]["$group_key"] == "42"
    assert event["properties"]["$group_set"] == {} and p.operations == [{"$delete": True}]
    assert event["timestamp"] == "2023-11-14T22:13:20.000Z"


def test_only_mixpanel_endpoints_carry_operations():
    # Person processing applies Mixpanel operations only from the record's operations, which only
    # /engage and /groups objects make; the events themselves carry no marker.
    p = decode("/groups", js({"$token": "t", "$group_key": "company", "$group_id": "acme", "$remove": {"tags": "x"}}))
    assert p.operations == [{"$remove": {"tags": "x"}}] and "$remove" not in p.events[0]["properties"]
    p = decode("/batch/", js({"api_key": "t", "batch": [{
        "event": "$groupidentify", "distinct_id": "u",
        "properties": {"$group_type": "company", "$group_key": "acme", "$mp_union": {"tags": ["x"]}}}]}))
    assert p.operations is None
    p = decode("/capture/", js({"api_key": "t", "event": "$identify", "distinct_id": "u",
                                "properties": {"$mp_engage": True, "$mp_add": {"n": 1}}}))
    assert p.operations is None and p.events[0]["properties"] == {"$mp_engage": True, "$mp_add": {"n": 1}}


def test_groups_without_ids_leave_distinct_id_missing():
    (event,) = decode("/groups", js({"$token": "t", "$set": {"a": 1}})).events
    assert "distinct_id" not in event


# -- fuzz: only PhliteErrors ever escape ---------------------------------------------------------------

PATHS = st.sampled_from(["/e/", "/batch/", "/i/v0/e/", "/track", "/engage/", "/groups", "/import", "/capture"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["event", "batch", "api_key", "token", "properties", "$set", "$group_key", "$group_id",
                         "distinct_id", "$time", "time", "$insert_id", "$unset", "sent_at", "uuid", "x"]),
        inner, max_size=6),
    max_leaves=20)
FUZZ = settings(max_examples=int(environ_get("PHLITE_FUZZ_EXAMPLES", "100")), deadline=None)


@FUZZ
@given(PATHS, st.binary(max_size=300), st.sampled_from(["", FORM, "text/plain"]), st.sampled_from(["", "gzip", "lz64"]))
def test_fuzz_bytes_only_raise_phlite_errors(path, body, content_type, encoding):
    try:
        decode_request(path, body, content_type=content_type, content_encoding=encoding, max_decompressed=10_000)
    except errors.PhliteError:
        pass


@FUZZ
@given(PATHS, JSON_VALUES, st.sampled_from(["json", "gzip", "b64", "form"]))
def test_fuzz_json_only_raise_phlite_errors(path, value, encoding):
    raw = js(value)
    body = {"json": raw, "gzip": gzip.compress(raw), "b64": b64(raw), "form": b"data=" + quote(b64(raw)).encode()}[encoding]
    try:
        p = decode_request(path, body, content_type=FORM if encoding == "form" else "")
    except errors.PhliteError:
        return
    assert all(isinstance(e, dict) for e in p.events)
    assert p.token is None or (p.token == p.token.strip() and p.token)


# -- the posthog-js fast path (phlite/ingest/wire.py _posthog_js) agrees with the general path ---------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
_event = st.fixed_dictionaries(
    {"event": st.sampled_from(["$pageview", "$autocapture", "$performance_event", "x"]) | _json_values},
    optional={"distinct_id": _json_values, "token": st.sampled_from([TOKEN, "phc_other", "", " "]),
              "api_key": st.just(TOKEN),
              "properties": st.dictionaries(st.sampled_from(["token", "$lib", "a"]), _json_values, max_size=3)
              | _json_values})
_payload = (_event | st.lists(_event | _json_values, max_size=4)
            | st.fixed_dictionaries({"batch": st.lists(_event, max_size=2)}, optional={"api_key": st.just(TOKEN)})
            | _json_values)


def _body(draw_kind, obj):
    text = json.dumps(obj).encode()
    return {"gzip": gzip.compress(text), "gzip-spaced": gzip.compress(b"  " + text),
            "gzip-base64": gzip.compress(b64(text)), "gzip-bad-json": gzip.compress(text[:-1] + b"@"),
            "gzip-cut": gzip.compress(text)[:-6],
            # A key name the byte scan does not read (no SDK writes one): the parse would see "token".
            "gzip-escaped-key": gzip.compress(text.replace(b'"token"', b'"tok\\u0065n"'))}[draw_kind]


def _outcome(path, body, kw):
    try:
        return decode_request(path, body, **kw)
    except errors.PhliteError as e:
        return type(e), str(e), getattr(e, "code", None)


@settings(max_examples=int(environ_get("PHLITE_FAST_PATH_EXAMPLES", "400")), deadline=None)
@given(
    payload=_payload,
    kind=st.sampled_from(["gzip", "gzip", "gzip", "gzip-spaced", "gzip-base64", "gzip-bad-json", "gzip-cut",
                          "gzip-escaped-key"]),
    path=st.sampled_from(["/e/", "/i/v0/e/", "/capture/", "/batch/", "/engage/", "/track/"]),
    content_type=st.sampled_from(["text/plain", "", "text/plain;charset=UTF-8", "application/json",
                                  FORM, "application/csp-report"]),
    query=st.dictionaries(st.sampled_from(["compression", "_", "ver", "verbose", "token", "project_id", "data"]),
                          st.sampled_from(["gzip-js", "1714564800000", "1.2", "1", TOKEN, "7", "", "x"]),
                          max_size=3),
    max_events=st.sampled_from([1, 2, 50_000]),
    known=st.sampled_from([None, (TOKEN,), ("phc_other",), ()]),
)
def test_posthog_js_fast_path_agrees_with_the_general_path(payload, kind, path, content_type, query, max_events,
                                                            known):
    from phlite.ingest import wire

    body = _body(kind, payload)
    kw = {"content_type": content_type, "query": query, "max_events": max_events, "max_values": 50,
          "known_key": None if known is None else known.__contains__}
    fast = _outcome(path, body, kw)
    real = wire._posthog_js
    wire._posthog_js = lambda *a: None
    try:
        general = _outcome(path, body, kw)
    finally:
        wire._posthog_js = real
    assert fast == general


def test_the_fast_path_takes_the_posthog_js_request():
    from phlite.ingest import wire

    body = gzip.compress(js([EVENT]))
    fast = wire._posthog_js(body, "text/plain", {"compression": "gzip-js", "_": "1714564800000"}, 1 << 20, 1000, 10)
    assert fast is not None and fast.token == TOKEN and fast.sent_at.year == 2024
    assert wire._posthog_js(gzip.compress(js(EVENT)), "text/plain", {}, 1 << 20, 1000, 10).events == [EVENT]


def test_the_fast_path_skips_the_key_scan_only_where_the_scan_would_pass():
    from phlite.ingest import wire

    known = {TOKEN}.__contains__
    plain = gzip.compress(js([EVENT]))
    escaped = gzip.compress(js([EVENT]).replace(b'"token"', b'"tok\\u0065n"'))  # the scan cannot read it
    unknown = gzip.compress(js([{**EVENT, "properties": {"token": "phc_nobody"}}]))
    kw = {"content_type": "text/plain", "known_key": known}
    assert decode_request("/e/", plain, **kw).token == TOKEN
    for body in (escaped, unknown):
        with pytest.raises(errors.Unauthorized):
            decode_request("/e/", body, **kw)
        real = wire._posthog_js
        wire._posthog_js = lambda *a: None
        try:
            with pytest.raises(errors.Unauthorized):
                decode_request("/e/", body, **kw)
        finally:
            wire._posthog_js = real
