"""phlite.normalize: one raw event -> Event or a drop reason (docs/protocol.md "Events: normalisation"). Time is injected."""

import copy
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phlite.config import environ_get
from phlite.ingest import normalize
from phlite.ingest.normalize import Event, Request, normalize_event, parse_timestamp, uuid7

UTC = timezone.utc
NOW = datetime(2023, 1, 1, 12, tzinfo=UTC)
HOUR = 3600 * 1000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


NOW_MS = ms("2023-01-01T12:00:00Z")


def norm(raw=None, *, sent_at=None, ip="9.9.9.9", token="phc_t", **fields):
    event = {"event": "e", "distinct_id": "u1", **fields} if raw is None else raw
    return normalize_event(event, now_ms=NOW_MS, sent_at=sent_at, ip=ip, token=token)


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- timestamp, docs/protocol.md "Events: timestamp" ---------------------------------------------------------------------------------------

TIMESTAMPS = [
    # name, event fields, sent_at, expected
    ("no timestamp -> now", {}, None, "2023-01-01T12:00:00Z"),
    ("no timestamp, sent_at -> now", {}, dt("2023-01-01T12:00:05Z"), "2023-01-01T12:00:00Z"),
    ("RFC 3339 Z", {"timestamp": "2023-01-01T11:00:00Z"}, None, "2023-01-01T11:00:00Z"),
    ("client clock 10 s ahead", {"timestamp": "2023-01-01T11:00:00Z"}, dt("2023-01-01T12:00:10Z"), "2023-01-01T10:59:50Z"),
    ("client clock 10 s behind", {"timestamp": "2023-01-01T11:00:00Z"}, dt("2023-01-01T11:59:50Z"), "2023-01-01T11:00:10Z"),
    ("aligned clocks", {"timestamp": "2023-01-01T11:00:00Z"}, dt("2023-01-01T12:00:00Z"), "2023-01-01T11:00:00Z"),
    ("$ignore_sent_at", {"timestamp": "2023-01-01T11:00:00Z", "properties": {"$ignore_sent_at": True}},
     dt("2023-01-01T12:00:10Z"), "2023-01-01T11:00:00Z"),
    ("$ignore_sent_at must be true", {"timestamp": "2023-01-01T11:00:00Z", "properties": {"$ignore_sent_at": "true"}},
     dt("2023-01-01T12:00:10Z"), "2023-01-01T10:59:50Z"),
    ("offset overrides all", {"timestamp": "2020-01-01T00:00:00Z", "offset": 5000}, dt("2023-01-01T12:00:10Z"),
     "2023-01-01T11:59:55Z"),
    ("offset alone", {"offset": 60_000}, None, "2023-01-01T11:59:00Z"),
    ("float offset", {"offset": 1500.7}, None, "2023-01-01T11:59:58.500Z"),
    ("bool offset ignored", {"offset": True}, None, "2023-01-01T12:00:00Z"),
    ("string offset ignored", {"offset": "5000"}, None, "2023-01-01T12:00:00Z"),
    ("22 h ahead is kept", {"timestamp": "2023-01-02T10:00:00Z"}, None, "2023-01-02T10:00:00Z"),
    ("23 h ahead is kept", {"timestamp": "2023-01-02T11:00:00Z"}, None, "2023-01-02T11:00:00Z"),
    ("over 23 h ahead -> now", {"timestamp": "2023-01-02T11:00:00.001Z"}, None, "2023-01-01T12:00:00Z"),
    ("far future -> now", {"timestamp": "9999-12-31T23:59:59Z"}, None, "2023-01-01T12:00:00Z"),
    ("future through skew -> now", {"timestamp": "2023-01-01T11:00:00Z"}, dt("2022-12-31T00:00:00Z"), "2023-01-01T12:00:00Z"),
    ("negative offset into the future -> now", {"offset": -30 * HOUR}, None, "2023-01-01T12:00:00Z"),
    ("before year 0 -> epoch", {"offset": 10**17}, None, "1970-01-01T00:00:00Z"),
    ("skew before year 0 -> epoch", {"timestamp": "0000-01-01T00:00:00Z"}, dt("9999-01-01T00:00:00Z"), "1970-01-01T00:00:00Z"),
    ("the distant past is kept", {"timestamp": "1900-01-01T00:00:00Z"}, None, "1900-01-01T00:00:00Z"),
    ("invalid -> now", {"timestamp": "not a date"}, None, "2023-01-01T12:00:00Z"),
    ("invalid with sent_at -> now", {"timestamp": "nope"}, dt("2023-01-01T12:00:10Z"), "2023-01-01T12:00:00Z"),
    ("empty -> now", {"timestamp": ""}, None, "2023-01-01T12:00:00Z"),
    ("object -> now", {"timestamp": {"t": 1}}, None, "2023-01-01T12:00:00Z"),
    ("bool -> now", {"timestamp": True}, None, "2023-01-01T12:00:00Z"),
    ("null -> now", {"timestamp": None}, None, "2023-01-01T12:00:00Z"),
    ("numeric seconds (lenient)", {"timestamp": 1672570800}, None, "2023-01-01T11:00:00Z"),
    ("numeric millis (lenient)", {"timestamp": 1672570800123}, None, "2023-01-01T11:00:00.123Z"),
    ("numeric with skew", {"timestamp": 1672570800000}, dt("2023-01-01T12:00:10Z"), "2023-01-01T10:59:50Z"),
    ("naive sent_at is UTC", {"timestamp": "2023-01-01T11:00:00Z"}, datetime(2023, 1, 1, 12, 0, 10), "2023-01-01T10:59:50Z"),
]


@pytest.mark.parametrize("name, fields, sent_at, expected", TIMESTAMPS, ids=[t[0] for t in TIMESTAMPS])
def test_timestamp_rules(name, fields, sent_at, expected):
    assert norm(sent_at=sent_at, **fields).timestamp == ms(expected)


FORMATS = [
    ("2023-01-01T11:00:00Z", "2023-01-01T11:00:00Z"),
    ("2023-01-01t11:00:00z", "2023-01-01T11:00:00Z"),
    ("2023-01-01T11:00:00.123Z", "2023-01-01T11:00:00.123Z"),
    ("2023-01-01T11:00:00.123456789Z", "2023-01-01T11:00:00.123Z"),
    ("2023-01-01T11:00:00.5Z", "2023-01-01T11:00:00.500Z"),
    ("2023-01-01T11:00:00+01:00", "2023-01-01T10:00:00Z"),
    ("2023-01-01T11:00:00-05:30", "2023-01-01T16:30:00Z"),
    ("2023-01-01T11:00:00+03", "2023-01-01T08:00:00Z"),
    ("2023-01-01T11:00:00.805-05", "2023-01-01T16:00:00.805Z"),
    ("2023-01-01T11:00:00", "2023-01-01T11:00:00Z"),
    ("2023-01-01T11:00", "2023-01-01T11:00:00Z"),
    ("2023-01-01", "2023-01-01T00:00:00Z"),
    ("2023-01-01 UTC", "2023-01-01T00:00:00Z"),
    ("2023-01-01+08:00", "2022-12-31T16:00:00Z"),
    ("2023-01-01 11:00:00", "2023-01-01T11:00:00Z"),
    ("2023-01-01 11:00", "2023-01-01T11:00:00Z"),
    ("2023-01-01 11:00:00.25", "2023-01-01T11:00:00.250Z"),
    ("2023-01-01 11:00:00 +0100", "2023-01-01T10:00:00Z"),
    ("2023-01-01 11:00:00-08", "2023-01-01T19:00:00Z"),
    ("2023-01-01 11:00:00 GMT", "2023-01-01T11:00:00Z"),
    ("2023-01-01 05:24:37 PM", "2023-01-01T17:24:37Z"),
    ("2023-01-01 12:05 am", "2023-01-01T00:05:00Z"),
    ("2023/01/02", "2023-01-02T00:00:00Z"),
    ("2023/1/2 3:04", "2023-01-02T03:04:00Z"),
    ("2023/01/02 03:04:05.678", "2023-01-02T03:04:05.678Z"),
    ("01/02/2023", "2023-01-02T00:00:00Z"),
    ("1/2/23 3:04 PM", "2023-01-02T15:04:00Z"),
    ("8/8/65 12:00:00 AM", "2065-08-08T00:00:00Z"),
    ("8/8/71", "1971-08-08T00:00:00Z"),
    ("Sun, 01 Jan 2023 11:00:00 +0200", "2023-01-01T09:00:00Z"),
    ("Sun, 01 Jan 2023 11:00:00 GMT", "2023-01-01T11:00:00Z"),
    ("1 Jan 2023 11:00 -0500", "2023-01-01T16:00:00Z"),
    ("1672570800", "2023-01-01T11:00:00Z"),
    ("1672570800123", "2023-01-01T11:00:00.123Z"),
    ("1672570800123456789", "2023-01-01T11:00:00.123Z"),
    (" 2023-01-01T11:00:00Z ", "2023-01-01T11:00:00Z"),
    ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z"),
    ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
    (1672570800, "2023-01-01T11:00:00Z"),
    (1672570800.5, "2023-01-01T11:00:00.500Z"),
    (1672570800123, "2023-01-01T11:00:00.123Z"),
    (1672570800123456789, "2023-01-01T11:00:00.123Z"),
]


@pytest.mark.parametrize("value, expected", FORMATS, ids=[str(f[0]) for f in FORMATS])
def test_accepted_timestamp_formats(value, expected):
    assert parse_timestamp(value) == ms(expected)


@pytest.mark.parametrize("value", [
    "not a date", "", "2023", "2023-01", "167257080", "16725708001", "2023-02-29", "2023-13-01", "2023-01-32",
    "2023-01-01T24:00:00Z", "2023-01-01T11:60:00Z", "2023-01-01T11:00:61Z", "2023-01-01T11:00:00+24:00",
    "2023-01-01 13:00 PM", "2023-01-01 00:00 AM", "13/13/2023", "Sun, 32 Jan 2023 11:00:00 GMT", "١٦٧٢٥٧٠٨٠٠",
    None, True, False, float("nan"), float("inf"), [], {},
])
def test_rejected_timestamps(value):
    assert parse_timestamp(value) is None


def test_year_zero_parses():
    assert parse_timestamp("0000-01-01T00:00:00Z") == -62_167_219_200_000


# The writer's fast path for SDK timestamps (datetime.fromisoformat) must agree with parse_timestamp.
EDGE_ISO = [
    "2026-01-01T00:00:00.123456+00:00", "2026-01-01T00:00:00.123Z", "2026-01-01T00:00:00+00:00",
    "2026-01-01T00:00:00Z", "2023-01-01T11:00:00.9999999Z", "1969-12-31T23:59:59.9995Z", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
    "0000-01-01T00:00:00Z", "2016-12-31T23:59:60Z", "2023-02-29T00:00:00Z", "2023-01-01T24:00:00Z",
    "2023-01-01T11:00:00+05:60", "2023-01-01T11:00:00+24:00", "2023-01-01T11:00:00+23:59", "2023-01-01T11:00:00.Z",
    "2023-01-01T11:00:00z", "2023-01-01T11:00:00+00:00:30", "2023-01-01T11", "2023-01-01", "20230101T110000Z",
    " 2023-01-01T11:00:00Z ", "2023-W01-1T00:00:00Z", "2023-01-01X11:00:00Z", "2023-01-01T11:00:00+0530",
    "٢٠٢٣-01-01T11:00:00Z",
]


@pytest.mark.parametrize("value", [v for v, _ in FORMATS if isinstance(v, str)] + EDGE_ISO)
def test_sdk_timestamp_fast_path_agrees(value, monkeypatch):
    assert normalize._parse_sdk_iso(value) in (None, parse_timestamp(value))
    fast = [norm(timestamp=value, sent_at=s).timestamp for s in (None, NOW)]
    monkeypatch.setattr(normalize, "_parse_sdk_iso", lambda text: None)
    assert fast == [norm(timestamp=value, sent_at=s).timestamp for s in (None, NOW)]


@settings(max_examples=300, deadline=None)
@given(st.from_regex(normalize._SDK_ISO, fullmatch=True)
       | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
       | st.datetimes(timezones=st.just(UTC)).map(
           lambda d: d.isoformat(timespec="milliseconds").replace("+00:00", "Z")))
def test_sdk_timestamp_fast_path_agrees_on_generated(value):
    fast = normalize._parse_sdk_iso(value)
    assert fast is None or fast == parse_timestamp(value)


# -- uuid, docs/protocol.md "Events: uuid" --------------------------------------------------------------------------------------------

V4 = "8a6f0b3c-52d1-4e3e-9b4c-0c1f2e3d4a5b"


@pytest.mark.parametrize("value, expected", [
    (V4, V4),
    (V4.upper(), V4),
    (V4.replace("-", ""), V4),
    ("{" + V4 + "}", V4),
    ("urn:uuid:" + V4, V4),
    ("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"),
])
def test_valid_client_uuid_is_kept_canonical(value, expected):
    assert norm(uuid=value).uuid == expected


@settings(max_examples=200, deadline=None)
@given(st.uuids(), st.sampled_from([str, lambda u: str(u).upper(), lambda u: u.hex, lambda u: f"{{{u}}}"]))
def test_client_uuid_fast_path_is_canonical(value, form):
    assert norm(uuid=form(value)).uuid == str(value)


@pytest.mark.parametrize("fields", [{}, {"uuid": None}, {"uuid": ""}])
def test_missing_uuid_becomes_uuid7_of_now(fields):
    generated = uuid.UUID(norm(**fields).uuid)
    assert generated.version == 7 and generated.variant == uuid.RFC_4122
    assert generated.int >> 80 == NOW_MS


def test_uuid7_is_time_ordered_and_unique():
    ids = [uuid7(NOW_MS + i) for i in range(50)]
    assert ids == sorted(ids) and len(set(uuid7(NOW_MS) for _ in range(1000))) == 1000


@pytest.mark.parametrize("value", ["abc", "0x" + "a" * 30, "1234_5678" * 4, V4 + "0", " ", 12345, {"a": 1}, ["x"]])
def test_invalid_uuid_becomes_a_deterministic_uuid5(value):
    first = uuid.UUID(norm(uuid=value).uuid)
    assert first.version == 5
    assert norm(uuid=value).uuid == str(first)  # a retried event dedupes
    assert norm(uuid=value, token="phc_other").uuid != str(first)  # scoped by project


# -- distinct_id, event name, properties: docs/protocol.md "Events: distinct_id", docs/protocol.md "Events: name and properties" -------------------------------------------------------------

DISTINCT_IDS = [
    ("string", {"distinct_id": "abc"}, "abc"),
    ("integer", {"distinct_id": 23}, "23"),
    ("float", {"distinct_id": 23.4}, "23.4"),
    ("bool", {"distinct_id": True}, "true"),
    ("object, keys sorted, compact", {"distinct_id": {"b": 1, "a": [2, "x"]}}, '{"a":[2,"x"],"b":1}'),
    ("array", {"distinct_id": [1, "x"]}, '[1,"x"]'),
    ("$distinct_id alias", {"distinct_id": None, "$distinct_id": "alias"}, "alias"),
    ("top-level wins over properties", {"distinct_id": "top", "properties": {"distinct_id": "p"}}, "top"),
    ("null -> properties", {"distinct_id": None, "properties": {"distinct_id": "p"}}, "p"),
    ("missing -> properties", {"properties": {"distinct_id": 7}}, "7"),
    ("whitespace-only is legal", {"distinct_id": "  "}, "  "),
    ("NUL -> U+FFFD", {"distinct_id": "a\x00b"}, "a\ufffdb"),
    ("truncated to 200", {"distinct_id": "x" * 300}, "x" * 200),
    ("truncated by characters", {"distinct_id": "é" * 201}, "é" * 200),
    ("huge integer", {"distinct_id": 2**70}, str(2**70)),
]


@pytest.mark.parametrize("name, fields, expected", DISTINCT_IDS, ids=[d[0] for d in DISTINCT_IDS])
def test_distinct_id(name, fields, expected):
    raw = {"event": "e", **fields}
    assert norm(raw).distinct_id == expected


DROPS = [
    ("not an object", ["e"], "not_an_object"),
    ("no name", {"distinct_id": "u"}, "missing_event_name"),
    ("null name", {"event": None, "distinct_id": "u"}, "missing_event_name"),
    ("empty name", {"event": "", "distinct_id": "u"}, "missing_event_name"),
    ("no distinct_id", {"event": "e"}, "missing_distinct_id"),
    ("empty distinct_id", {"event": "e", "distinct_id": ""}, "missing_distinct_id"),
    ("empty distinct_id does not fall back", {"event": "e", "distinct_id": "", "properties": {"distinct_id": "p"}},
     "missing_distinct_id"),
    ("null everywhere", {"event": "e", "distinct_id": None, "properties": {"distinct_id": None}}, "missing_distinct_id"),
    ("properties a list", {"event": "e", "distinct_id": "u", "properties": []}, "invalid_properties"),
    ("properties a string", {"event": "e", "distinct_id": "u", "properties": "x"}, "invalid_properties"),
]


@pytest.mark.parametrize("name, raw, reason", DROPS, ids=[d[0] for d in DROPS])
def test_drop_reasons(name, raw, reason):
    assert norm(raw) == reason


@pytest.mark.parametrize("value, expected", [
    ("$pageview", "$pageview"), (123, "123"), ({"b": 1, "a": 2}, '{"a":2,"b":1}'), (False, "false"),
    ("n" * 250, "n" * 200),
])
def test_event_name(value, expected):
    assert norm(event=value).event == expected


def test_properties_null_or_absent_become_empty():
    assert norm(properties=None).properties == {"$ip": "9.9.9.9"}
    assert norm(ip=None).properties == {}


def test_set_and_set_once_merge_with_top_level_winning():
    raw = {"event": "$identify", "distinct_id": "u", "$set": {"a": 1, "b": 1}, "$set_once": {"c": 1},
           "properties": {"$set": {"b": 0, "z": 0}, "$set_once": "not an object"}}
    props = norm(raw).properties
    assert props["$set"] == {"b": 1, "z": 0, "a": 1}
    assert props["$set_once"] == {"c": 1}


def test_non_object_top_level_set_is_ignored():
    assert "$set" not in norm(**{"$set": ["a"]}).properties


def test_only_known_top_level_keys_survive():
    raw = {"event": "e", "distinct_id": "u", "$unset": ["a"], "$groups": {"c": "x"}, "type": "capture",
           "sent_at": "2023-01-01T00:00:00Z", "messageId": "m"}
    event = norm(raw)
    assert isinstance(event, Event)
    assert set(event.properties) == {"$ip"}


@pytest.mark.parametrize("props, ip, expected", [
    ({}, "1.2.3.4", "1.2.3.4"),
    ({"$ip": "5.6.7.8"}, "1.2.3.4", "5.6.7.8"),
    ({"$ip": ""}, "1.2.3.4", "1.2.3.4"),
    ({"capture_internal": True}, "1.2.3.4", "127.0.0.1"),
    ({"capture_internal": False, "$ip": "5.6.7.8"}, "1.2.3.4", "5.6.7.8"),
    ({}, None, None),
])
def test_ip(props, ip, expected):
    assert norm(properties=props, ip=ip).properties.get("$ip") == expected


def test_sent_at_is_not_added_to_the_properties():
    # It corrects the timestamp and is gone: a stored event holds only what the client sent (and $ip).
    assert "$sent_at" not in norm(sent_at=dt("2023-01-01T12:00:10.5+01:00")).properties


def test_raw_event_is_not_mutated():
    raw = {"event": "e", "distinct_id": "u", "$set": {"a": 1}, "properties": {"$set": {"b": 2}, "k": [1]}}
    before = copy.deepcopy(raw)
    norm(raw, sent_at=NOW)
    assert raw == before


def test_a_whole_posthog_js_event():
    raw = {"uuid": "0190A4E1-7D2B-7C3A-8E4F-112233445566", "event": "$identify", "timestamp": "2023-01-01T11:59:59.000Z",
           "properties": {"distinct_id": "user@x", "token": "phc_t", "$anon_distinct_id": "anon", "$ip": "8.8.8.8"},
           "$set": {"email": "user@x"}, "$set_once": {"first_seen": "today"}}
    event = normalize_event(raw, now_ms=NOW_MS, sent_at=dt("2023-01-01T12:00:01Z"), ip="1.1.1.1", token="phc_t")
    assert event == Event(
        uuid="0190a4e1-7d2b-7c3a-8e4f-112233445566", event="$identify", distinct_id="user@x",
        properties={"distinct_id": "user@x", "token": "phc_t", "$anon_distinct_id": "anon", "$ip": "8.8.8.8",
                    "$set": {"email": "user@x"}, "$set_once": {"first_seen": "today"}},
        timestamp=NOW_MS - 2000,
    )


# -- fuzz: never raises, always well-formed -------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10)
RAW = st.one_of(JSON, st.fixed_dictionaries({}, optional={
    k: JSON for k in ("event", "distinct_id", "$distinct_id", "uuid", "timestamp", "offset", "properties", "$set",
                      "$set_once")}))


@settings(max_examples=int(environ_get("PHLITE_FUZZ_EXAMPLES", "100")), deadline=None)
@given(RAW, st.none() | st.datetimes(timezones=st.just(UTC)), st.none() | st.text(max_size=5))
def test_fuzz_never_raises(raw, sent_at, ip):
    result = normalize_event(raw, now_ms=NOW_MS, sent_at=sent_at, ip=ip)
    again = normalize_event(copy.deepcopy(raw), Request(NOW_MS, sent_at, ip))  # as the writer calls it
    if isinstance(result, str):
        assert again == result
        return
    if result.uuid != again.uuid:  # a fresh uuid7 each call
        assert "uuid" not in raw or raw["uuid"] in (None, "")
        again.uuid = result.uuid
    assert again == result
    assert str(uuid.UUID(result.uuid)) == result.uuid
    assert result.event and len(result.event) <= 200
    assert result.distinct_id and len(result.distinct_id) <= 200 and "\x00" not in result.distinct_id
    assert result.timestamp - NOW_MS <= 23 * HOUR
    assert isinstance(result.properties, dict)
