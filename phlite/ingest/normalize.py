"""One raw event dict -> a storable Event, or the reason to drop it (docs/protocol.md "Events: normalisation").

Runs in the background writer, after the client was answered 200: bad input never raises here, it
returns a short drop reason. Owns the timestamp rules (docs/protocol.md "Events: timestamp" and
"Accepted timestamp formats"), uuid ("Events: uuid"), distinct_id ("Events: distinct_id"), event name,
properties, top-level $set/$set_once placement and $ip. No person or group processing, no
clock reads (now_ms is passed in). Pure: imports nothing from phlite.
"""

import email.utils
import json
import math
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson

MAX_NAME_CHARS = 200
MAX_DISTINCT_ID_CHARS = 200
FUTURE_LIMIT_MS = 23 * 3600 * 1000
_DAY_MS = 86_400_000
_UTC = timezone.utc
# Fixed namespace for uuids derived from malformed client uuids: never change it (dedupe of retries).
_BAD_UUID_NAMESPACE = uuid.UUID("2f6b7f0e-8c3a-4d59-b1e4-6a0c9d3e7f21")
_UUID_HEX = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")
_UUID_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(slots=True)
class Event:
    uuid: str  # canonical lowercase UUID string
    event: str
    distinct_id: str
    properties: dict
    timestamp: int  # UTC epoch milliseconds
    person_id: int | None = None  # set by person processing (phlite/ingest/persons.py)
    # The Mixpanel operations of an /engage or /groups request ($add, $union, $delete...), from the
    # spool record beside the event (phlite/ingest/mixpanel.py): never read from its properties.
    mixpanel: dict | None = None


class Request:
    """What the events of one request share, computed once per request rather than per event.

    :param now_ms: when the request was received (UTC epoch ms).
    :param sent_at: the request's send time (clock-skew correction), None if unknown.
    :param ip: the client address, used for properties.$ip when the event has none.
    :param token: the project key; scopes uuids derived from malformed client uuids.
    """

    __slots__ = ("now_ms", "sent_at", "sent_at_ms", "ip", "token")

    def __init__(self, now_ms: int, sent_at: datetime | None = None, ip: str | None = None, token: str = ""):
        self.now_ms = now_ms
        self.sent_at = sent_at
        self.sent_at_ms = None if sent_at is None else _to_ms(sent_at)
        self.ip = ip
        self.token = token


def normalize_event(
    raw: dict, request: Request | None = None, *,
    now_ms: int = 0, sent_at: datetime | None = None, ip: str | None = None, token: str = "",
) -> Event | str:
    """Normalise one raw event as PostHog's capture + ingestion would; a str return is the drop reason.

    The request's values come in `request` (the writer builds one per request), or else as the
    keywords, which are those of `Request`.
    """
    if request is None:
        request = Request(now_ms, sent_at, ip, token)
    if not isinstance(raw, dict):
        return "not_an_object"
    name = raw.get("event")
    if name is not None and not isinstance(name, str):
        name = _json(name)
    if not name:
        return "missing_event_name"
    props = raw.get("properties")
    if props is None:
        props = {}
    elif isinstance(props, dict):
        props = dict(props)  # never mutate the caller's dict (it may be retried from the spool)
    else:
        return "invalid_properties"
    distinct_id = _distinct_id(raw, props)
    if distinct_id is None:
        return "missing_distinct_id"

    for key in ("$set", "$set_once"):
        top = raw.get(key)
        if isinstance(top, dict):  # top-level keys win over the same keys inside properties
            inner = props.get(key)
            props[key] = {**inner, **top} if isinstance(inner, dict) else dict(top)
    client_ip = "127.0.0.1" if "capture_internal" in props else request.ip
    if client_ip and not props.get("$ip"):
        props["$ip"] = client_ip
    return Event(  # uuid, event, distinct_id, properties, timestamp: positional, half the cost of keywords
        _uuid(raw.get("uuid"), request.now_ms, request.token),
        name[:MAX_NAME_CHARS],
        distinct_id,
        props,
        _timestamp(raw, props, request.now_ms, request.sent_at_ms),
    )


def _distinct_id(raw: dict, props: dict) -> str | None:
    value = raw.get("distinct_id")
    if value is None:
        value = raw.get("$distinct_id")
    if value is None:
        value = props.get("distinct_id")
    if value is None:
        return None
    text = value if isinstance(value, str) else _json(value)
    if not text:  # empty -> missing; whitespace-only is legal in PostHog (it only blocks merges)
        return None
    return clean_distinct_id(text)


def clean_distinct_id(text: str) -> str:
    """A distinct id as it is stored: NUL replaced (SQLite text and C clients), cut to 200 characters.
    Every id that names a person goes through here (the event's, `$anon_distinct_id`, `alias`), so the
    same id sent in either place names the same person."""
    return text.replace("\x00", "\ufffd")[:MAX_DISTINCT_ID_CHARS]


def _json(value) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# -- uuid ---------------------------------------------------------------------------------------------


def uuid7(now_ms: int) -> str:
    """A UUIDv7 (RFC 9562): 48-bit ms timestamp, version, 74 random bits. Time-ordered, so cheap to index."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (max(now_ms, 0) & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | rand & ((1 << 62) - 1)
    )
    h = f"{value:032x}"  # str(uuid.UUID(int=value)), without building the UUID
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid(value, now_ms: int, token: str) -> str:
    if value is None or value == "":
        return uuid7(now_ms)
    if isinstance(value, str):
        if _UUID_CANONICAL.fullmatch(value):  # what SDKs send, already canonical: skip the UUID round trip
            return value
        text = value.strip().lower()
        text = text.removeprefix("urn:uuid:")
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1]
        if _UUID_HEX.fullmatch(text):
            return str(uuid.UUID(text))
        seed = value
    else:
        seed = _json(value)
    # PostHog's capture 400s the whole request for a malformed uuid. phlite has already answered 200, so
    # it keeps the event under a uuid derived from the bad one: a retry of the same event derives the
    # same uuid and still dedupes, which a fresh random uuid would not.
    return str(uuid.uuid5(_BAD_UUID_NAMESPACE, f"{token}:{seed}"))


# -- timestamp ----------------------------------------------------------------------------------------


def _timestamp(raw: dict, props: dict, now_ms: int, sent_at_ms: int | None) -> int:
    ts = now_ms
    value = raw.get("timestamp")
    parsed = _parse_sdk_iso(value) if type(value) is str else None
    if parsed is None:
        parsed = parse_timestamp(value)
    if parsed is not None:
        if sent_at_ms is not None and props.get("$ignore_sent_at") is not True:
            ts = now_ms + (parsed - sent_at_ms)  # the client's clock skew cancels out
        else:
            ts = parsed
    offset = raw.get("offset")
    if isinstance(offset, (int, float)) and not isinstance(offset, bool) and math.isfinite(offset):
        ts = now_ms - int(offset)
    if ts - now_ms > FUTURE_LIMIT_MS:
        ts = now_ms
    if not _YEAR_1_MS <= ts < _YEAR_10000_MS:  # what datetime, and so every reader, can format
        ts = 0
    return ts


def parse_timestamp(value) -> int | None:
    """A client timestamp -> UTC epoch ms, or None if it is not one of the accepted forms.

    Strings: RFC 3339 (also with a trailing `+HH`), `YYYY-MM-DD[ HH:MM[:SS[.f]]][ AM|PM][ zone]`, date
    only (midnight), `M/D/YYYY` and `YYYY/M/D` with an optional time, RFC 2822, and epoch seconds /
    millis / nanos as 10 / 13 / 19 digits. Naive values are UTC. Numbers (PostHog 400s them; phlite is
    lenient) are epoch seconds below 1e11, millis below 1e17, nanos above.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        if abs(value) >= 1e17:
            return int(value) // 1_000_000
        return int(value) if abs(value) >= 1e11 else round(value * 1000)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit() and text.isascii():
        return {10: int(text) * 1000, 13: int(text), 19: int(text) // 1_000_000}.get(len(text))
    for pattern, order in _DATE_FORMS:
        m = pattern.fullmatch(text)
        if m:
            return _from_parts(m, order)
    if _RFC2822.match(text):
        try:
            parts = email.utils.parsedate_tz(text)
        except (ValueError, IndexError):
            parts = None
        if parts:
            y, mo, d, h, mi, s = parts[:6]
            return _civil_ms(y, mo, d, h, mi, s, 0, (parts[9] or 0) // 60)
    return None


# The RFC 3339 strings SDKs send (posthog-python `...T00:00:00.123456+00:00`, posthog-js `...T00:00:00.123Z`),
# narrowed to what the general parser below reads the same way: then the C `datetime.fromisoformat`
# does the work, about 6x faster. It raises for what the general parser also refuses or reads
# differently (year 0, Feb 30, a leap second): those fall back to it.
_SDK_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_MS = timedelta(milliseconds=1)


def _parse_sdk_iso(text: str) -> int | None:
    """parse_timestamp(text) for the SDKs' RFC 3339 strings; None means ask parse_timestamp."""
    text = text.strip()
    if _SDK_ISO.fullmatch(text):
        try:
            return (datetime.fromisoformat(text) - _EPOCH) // _MS
        except ValueError:
            return None
    return None


_TIME = r"(?:(?:[Tt]|\s+)(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?(?:[.,](?P<f>\d+))?\s*(?P<ap>[AaPp][Mm])?)?"
_ZONE = r"\s*(?P<tz>[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
_DATE_FORMS = (
    (re.compile(r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})" + _TIME + _ZONE), None),
    (re.compile(r"(?P<y>\d{4})/(?P<mo>\d{1,2})/(?P<d>\d{1,2})" + _TIME), None),
    (re.compile(r"(?P<mo>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4}|\d{2})" + _TIME), "mdy"),
)
_RFC2822 = re.compile(r"(?:[A-Za-z]{3},?\s*)?\d{1,2}\s+[A-Za-z]{3,9}\s+\d{2,4}\s+\d{1,2}:\d{2}")


def _from_parts(m: re.Match, order: str | None) -> int | None:
    g = m.groupdict()
    year = int(g["y"])
    if order == "mdy" and len(g["y"]) == 2:
        year += 2000 if year < 69 else 1900  # chrono's %y pivot, as PostHog's parser uses
    hour = int(g["h"] or 0)
    if g["ap"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if g["ap"].lower() == "pm" else 0)
    millis = int((g["f"] or "0")[:3].ljust(3, "0"))
    offset_min = 0
    tz = g.get("tz")
    if tz and tz[0] in "+-":
        digits = tz[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            return None
        offset_min = (hours * 60 + minutes) * (-1 if tz[0] == "-" else 1)
    return _civil_ms(year, int(g["mo"]), int(g["d"]), hour, int(g["mi"] or 0), int(g["s"] or 0), millis, offset_min)


def _civil_ms(y: int, mo: int, d: int, h: int, mi: int, s: int, ms: int, offset_min: int) -> int | None:
    """Validated civil date-time at a UTC offset -> epoch ms. Any year, unlike datetime (0 is valid here)."""
    if not (1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and h < 24 and mi < 60 and s <= 60):
        return None  # s == 60: a leap second, which RFC 3339 allows; it rolls into the next minute
    y2 = y - (mo <= 2)  # days-from-civil (H. Hinnant): proleptic Gregorian, no range limit
    era, yoe = divmod(y2, 400)
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    return days * _DAY_MS + ((h * 60 + mi - offset_min) * 60 + s) * 1000 + ms


def _month_days(y: int, mo: int) -> int:
    if mo == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if mo in (4, 6, 9, 11) else 31


_YEAR_1_MS = _civil_ms(1, 1, 1, 0, 0, 0, 0, 0)
_YEAR_10000_MS = _civil_ms(10000, 1, 1, 0, 0, 0, 0, 0)


def _to_ms(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    return (when - datetime(1970, 1, 1, tzinfo=_UTC)) // timedelta(milliseconds=1)
