"""Capture request bytes -> raw event dicts: phlite's ingestion wire format.

Owns posthog-api.md 1.2-1.4 (the `data` query parameter, optimistic base64, form bodies, gzip, lz64, the
legacy second base64 pass, the four JSON shapes, the project key) and the Mixpanel shapes of sdk-wire.md
(`/track`, `/import`, `/engage`, `/groups`), which become PostHog-shaped events here so nothing downstream
knows Mixpanel. It refuses only bodies it cannot decode: per-event validation happens later, in
normalize.py, after the client got its 200. Imports only errors and lzstring; no framework, no clock.
"""

import base64
import binascii
import math
import re
import types
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from urllib.parse import unquote_to_bytes

import orjson

from phlite import errors, lzstring

MAX_DEPTH = 1024
_MIB = 1024 * 1024
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_NO_QUERY: Mapping[str, str] = types.MappingProxyType({})

_FORM_MIME = "application/x-www-form-urlencoded"
_FORM_PREFIXES = (b"data=", b"ver=", b"_=", b"ip=", b"compression=")
_FORM_HEAD = re.compile(rb"(?:\A|&)(?:" + b"|".join(re.escape(p) for p in _FORM_PREFIXES) + rb")")
_B64_STRICT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_LOOSE = _B64_STRICT + b" "
_HINTS = {"gzip": "gzip", "gzip-js": "gzip", "lz64": "lz64", "lz-string": "lz64", "base64": "base64", "b64": "base64"}
# First path segment of the endpoints that get the legacy second base64 pass. PostHog does it for
# /e, /capture, /engage and /track; /groups and /import are Mixpanel's and get the same treatment.
_LEGACY_ENDPOINTS = frozenset({"e", "capture", "engage", "track", "groups", "import"})
_MIN_QUERY_SENT_AT_MS = 1_609_459_200_000  # 2021-01-01: smaller `_` values are seconds, not ms (1.4)
# Fixed namespace for Mixpanel $insert_id -> uuid: never change it, or retried events stop deduplicating.
_INSERT_ID_NAMESPACE = uuid.UUID("5b0c8a3e-1f7d-4c1e-9a51-0d7f5e2b6c44")
_ENGAGE_OPS = {"$add": "$mp_add", "$append": "$mp_append", "$union": "$mp_union", "$remove": "$mp_remove"}

# orjson before 3.9.15 has no nesting limit and overflows the C stack on deep documents (CVE-2024-27454).
_ORJSON_LIMITS_DEPTH = tuple(int(p) for p in re.findall(r"\d+", orjson.__version__)[:3]) >= (3, 9, 15)
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = [1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256)]


@dataclass
class Payload:
    events: list[dict]  # raw event objects, after shape handling
    token: str | None  # project key per posthog-api.md 1.3 (may be a "phx_" personal key; caller resolves)
    sent_at: datetime | None  # batch body sent_at, else query `_`/`sent_at` ms; tz-aware UTC
    historical_migration: bool
    verbose: bool  # Mixpanel: `verbose=1` in the query or in the form body
    project_id: str | None  # for personal-key auth: batch top-level or query `project_id`


def decode_request(
    path: str,
    body: bytes,
    *,
    content_type: str = "",
    content_encoding: str = "",
    query: Mapping[str, str] = _NO_QUERY,
    max_decompressed: int = 50 * _MIB,
) -> Payload:
    """Decode one capture request (any SDK, any encoding) into raw event dicts.

    `query` values must already be URL-decoded text. Events are not validated here.
    :raises errors.BadRequest: body not decodable, JSON not one of the accepted shapes, empty batch.
    :raises errors.PayloadTooLarge: a decoding step produced more than max_decompressed bytes.
    :raises errors.Unauthorized: events of one array carry different project keys.
    """
    endpoint = path.split("?", 1)[0].strip("/").split("/", 1)[0]
    query_hint = _hint(query.get("compression"))
    header_hint = _hint(content_encoding) if content_encoding else None
    early_hint = query_hint or header_hint
    data, form = _extract(body, content_type, query, max_decompressed, skip_base64=early_hint == "lz64")
    hint = query_hint or (_hint(form.get("compression")) if form else None) or header_hint
    data = _decompress(data, hint, max_decompressed)
    if endpoint in _LEGACY_ENDPOINTS and _is_base64(data, _B64_STRICT):
        decoded = _b64decode(data, max_decompressed)
        if decoded is not None and _is_utf8(decoded):
            data = decoded
    obj = _parse_json(data)

    batch: dict = {}
    if isinstance(obj, list):
        items = obj
    elif isinstance(obj, dict) and "batch" in obj:
        # Unlike PostHog, a batch without a top-level api_key still counts as a batch: the key may be
        # inside its events, and if it is nowhere the caller answers 401 (the contract's answer).
        batch, items = obj, obj["batch"]
        if not isinstance(items, list):
            raise errors.BadRequest("failed to parse request: `batch` must be an array", code="invalid_payload")
    elif isinstance(obj, dict):
        if obj.get("event") is None and endpoint not in ("engage", "groups"):
            raise errors.BadRequest("non-engage request missing event name attribute", code="invalid_payload")
        items = [obj]
    else:
        raise errors.BadRequest(
            "failed to parse request: expected an event object, an array of events or a batch object",
            code="invalid_payload",
        )
    if not items:
        raise errors.BadRequest("request holds no event", code="empty_batch")
    if endpoint in ("engage", "groups"):
        events = [_convert(item, endpoint) for item in items if isinstance(item, dict)]
    else:  # _convert changes nothing elsewhere
        events = [item for item in items if isinstance(item, dict)]
    if not events:
        raise errors.BadRequest("failed to parse request: no event is a JSON object", code="invalid_payload")

    token = _batch_token(batch) or _events_token(events) or _first_text(form, query)
    if endpoint in ("track", "import"):
        for event in events:
            _mixpanel_event(event, token)
    events = [e for e in events if e.get("event") != "$performance_event"]
    return Payload(
        events=events,
        token=token,
        sent_at=_batch_sent_at(batch) or _query_sent_at(query),
        historical_migration=batch.get("historical_migration") is True,
        verbose=_truthy(query.get("verbose")) or _truthy(form.get("verbose")),
        project_id=_project_id(batch, query),
    )


# -- bytes --------------------------------------------------------------------------------------------


def _extract(body, content_type, query, cap, *, skip_base64):
    """Steps 1-3 of 1.2: pick the raw bytes, optimistic base64, form bodies. Returns (bytes, form)."""
    qdata = query.get("data")
    if qdata:
        raw = _restore_plus(qdata.encode("utf-8"))
    elif body:
        raw = body
    else:
        raise errors.BadRequest("request missing data payload", code="empty_payload")
    # _is_base64 first: cheaper, and false at the first byte of gzip or JSON (both tests are pure).
    if not skip_base64 and _is_base64(raw, _B64_STRICT) and not _looks_like_form(raw):
        raw = _b64decode(raw, cap) or raw
    mime = content_type.split(";", 1)[0].strip().lower()
    # Lenient where PostHog is strict: `; charset=...` is fine, mixpanel-browser's sendBeacon sends a form
    # as text/plain, and a form content type over a non-form body (curl -d '{...}') is read as the body.
    if raw.startswith(b"data=") or (mime == _FORM_MIME and _looks_like_form(raw)):
        form = _parse_form(raw)
        raw = _restore_plus(form.get("data", b""))
        if not raw:
            raise errors.BadRequest("request missing data payload", code="empty_payload")
        return raw, form
    return raw, {}


def _looks_like_form(data: bytes) -> bool:
    # One regex search: some _FORM_PREFIXES at the start or after a '&' of the first 128 bytes.
    return _FORM_HEAD.search(data[:128]) is not None


def _parse_form(data: bytes) -> dict[str, bytes]:
    form: dict[str, bytes] = {}
    for part in data.split(b"&"):
        key, _, value = part.partition(b"=")
        if key:
            name = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8", "replace")
            form.setdefault(name, unquote_to_bytes(value.replace(b"+", b" ")))
    return form


def _is_base64(data: bytes, alphabet: bytes) -> bool:
    # PostHog's cheap test: the first 128 bytes are base64 characters and the length is aligned.
    return bool(data) and len(data) % 4 == 0 and not data[:128].translate(None, alphabet)


def _restore_plus(data: bytes) -> bytes:
    # URL decoding turned the '+' of unescaped base64 into spaces; put them back.
    if b" " in data and _is_base64(data, _B64_LOOSE):
        return data.replace(b" ", b"+")
    return data


def _b64decode(data: bytes, cap: int) -> bytes | None:
    try:
        out = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(out) > cap:
        raise _too_large(cap)
    return out


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _hint(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return _HINTS.get(value.strip().lower()) if value else None


def _decompress(data: bytes, hint: str | None, cap: int) -> bytes:
    """Step 5 of 1.2. Every branch stops at `cap` output bytes."""
    if hint == "gzip" or data[:2] == b"\x1f\x8b":
        return _gunzip(data, cap)
    if hint == "lz64":
        try:
            out = lzstring.decompress_from_base64(data.decode("ascii"), cap).encode("utf-8")
        except lzstring.OutputTooLarge:
            raise _too_large(cap) from None
        except ValueError as e:  # includes UnicodeError
            raise errors.BadRequest(f"invalid lz64 data: {e}", code="invalid_payload") from None
    elif hint == "base64" and _is_base64(data, _B64_STRICT):
        # PostHog only decodes base64 optimistically (step 2) or on legacy paths (step 6); honouring the
        # explicit hint everywhere also covers posthog-js's base64 form beacon to /i/v0/e/.
        out = _b64decode(data, cap) or data
    else:
        out = data
    if len(out) > cap:
        raise _too_large(cap)
    return out


def _gunzip(data: bytes, cap: int) -> bytes:
    d = zlib.decompressobj(wbits=31)  # gzip container only
    try:
        # max_length bounds the output: a bomb stops after cap+1 bytes instead of filling memory.
        out = d.decompress(data, cap + 1)
    except zlib.error:
        raise errors.BadRequest("invalid GZIP data", code="invalid_payload") from None
    if len(out) > cap:
        raise _too_large(cap)
    if not d.eof:
        raise errors.BadRequest("invalid GZIP data (truncated)", code="invalid_payload")
    return out


def _too_large(cap: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")


def _parse_json(data: bytes):
    if not _ORJSON_LIMITS_DEPTH and _too_deep(data):
        raise errors.BadRequest(
            f"failed to parse request: JSON nested deeper than {MAX_DEPTH} levels", code="invalid_payload"
        )
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise errors.BadRequest(f"failed to parse request: {e}", code="invalid_payload") from None


def _too_deep(data: bytes) -> bool:
    """Nesting deeper than MAX_DEPTH, for orjson versions that do not check it themselves."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    # Strings may hold brackets; on any valid JSON prefix this regex finds exactly the string tokens.
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


# -- shapes and Mixpanel ------------------------------------------------------------------------------


def _convert(item: dict, endpoint: str) -> dict:
    if item.get("event") is None:
        if endpoint == "engage":
            return _engage_event(item)
        if endpoint == "groups":
            return _group_event(item)
    return item


def _engage_event(obj: dict) -> dict:
    """A people update (PostHog's engage shape or Mixpanel's /engage object) -> a `$identify` event.

    Operations other than $set/$set_once travel inside properties for person processing to apply.
    """
    event = {"event": "$identify"}
    for key in ("uuid", "timestamp", "offset", "$set", "$set_once"):
        if key in obj:
            event[key] = obj[key]
    _copy_token(obj, event)
    distinct_id = obj.get("distinct_id")
    if distinct_id is None:
        distinct_id = obj.get("$distinct_id")
    if distinct_id is not None:
        event["distinct_id"] = distinct_id
    _copy_time(obj, event)
    props = obj.get("properties")
    if props is not None and not isinstance(props, dict):
        event["properties"] = props  # normalize drops it as invalid_properties
        return event
    props = dict(props or {})
    if "$unset" in obj:
        props["$unset"] = _key_list(obj["$unset"])
    for op, key in _ENGAGE_OPS.items():
        if op in obj:
            props[key] = obj[op]
    if "$delete" in obj:
        props["$mp_delete"] = True
    if isinstance(obj.get("$ip"), str) and obj["$ip"]:
        props.setdefault("$ip", obj["$ip"])
    props["$mp_engage"] = True
    event["properties"] = props
    return event


def _group_event(obj: dict) -> dict:
    """A Mixpanel /groups object -> a `$groupidentify` event (distinct_id as posthog-node makes it)."""
    props: dict = {}
    event = {"event": "$groupidentify", "properties": props}
    _copy_token(obj, event)
    group_type, group_key = obj.get("$group_key"), obj.get("$group_id")
    if group_type is not None:
        props["$group_type"] = _text(group_type)
    if group_key is not None:
        props["$group_key"] = _text(group_key)
    if group_type is not None and group_key is not None:
        event["distinct_id"] = f"${props['$group_type']}_{props['$group_key']}"
    props["$group_set"] = obj["$set"] if isinstance(obj.get("$set"), dict) else {}
    if isinstance(obj.get("$set_once"), dict) and obj["$set_once"]:
        props["$group_set_once"] = obj["$set_once"]
    if "$unset" in obj:
        props["$group_unset"] = _key_list(obj["$unset"])
    for op in ("$union", "$remove"):
        if op in obj:
            props[_ENGAGE_OPS[op]] = obj[op]
    if "$delete" in obj:
        props["$mp_delete"] = True
    props["$mp_groups"] = True  # person processing applies the $mp_* operations only with this
    _copy_time(obj, event)
    return event


def _mixpanel_event(event: dict, token: str | None) -> None:
    """/track and /import: `properties.time` -> timestamp, `properties.$insert_id` -> a stable uuid."""
    props = event.get("properties")
    if not isinstance(props, dict):
        return
    if event.get("timestamp") is None:
        iso = _epoch_to_iso(props.get("time"))
        if iso:
            event["timestamp"] = iso
    insert_id = props.get("$insert_id")
    if not event.get("uuid") and insert_id not in (None, ""):
        # Same token + insert id -> same uuid, so a retried Mixpanel request dedupes like a PostHog one.
        event["uuid"] = str(uuid.uuid5(_INSERT_ID_NAMESPACE, f"{token or ''}:{_text(insert_id)}"))


def _copy_token(obj: dict, event: dict) -> None:
    for key in ("token", "$token", "api_key"):
        if obj.get(key) is not None:
            event["token"] = obj[key]
            return


def _copy_time(obj: dict, event: dict) -> None:
    if event.get("timestamp") is None:
        iso = _epoch_to_iso(obj.get("$time"))
        if iso:
            event["timestamp"] = iso


def _epoch_to_iso(value) -> str | None:
    """Mixpanel time: float seconds, or integer ms (told apart by magnitude) -> ISO 8601 UTC."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    ms = int(value) if abs(value) > 1e11 else round(value * 1000)
    try:
        when = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key_list(value) -> list:
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, str) else []


def _text(value) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


# -- request metadata ---------------------------------------------------------------------------------


def _clean_token(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _batch_token(batch: dict) -> str | None:
    if not batch:  # an array or a single event: no batch object
        return None
    return _clean_token(batch.get("api_key")) or _clean_token(batch.get("token"))


def _event_token(event: dict) -> str | None:
    for key in ("token", "$token", "api_key"):
        token = _clean_token(event.get(key))
        if token:
            return token
    props = event.get("properties")
    return _clean_token(props.get("token")) if isinstance(props, dict) else None


def _events_token(events: list[dict]) -> str | None:
    if len(events) == 1:  # the browser SDKs' usual request: one key cannot conflict
        return _event_token(events[0])
    tokens = {t for t in map(_event_token, events) if t}
    if len(tokens) > 1:
        raise errors.invalid_project_key()
    return tokens.pop() if tokens else None


def _first_text(form: Mapping, query: Mapping) -> str | None:
    # Mixpanel's /import sends api_key in the form body (python) or the query (node).
    for source, key in ((form, "api_key"), (form, "token"), (query, "api_key"), (query, "token")):
        token = _clean_token(source.get(key))
        if token:
            return token
    return None


def _batch_sent_at(batch: dict) -> datetime | None:
    value = batch.get("sent_at")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
        if when.tzinfo is None:
            when = when.replace(tzinfo=_UTC)
        return when.astimezone(_UTC)
    except (ValueError, OverflowError):
        return None


def _query_sent_at(query: Mapping[str, str]) -> datetime | None:
    value = query.get("_") or query.get("sent_at")
    try:
        ms = int(value)  # PostHog 400s a non-integer; phlite just ignores it
    except (TypeError, ValueError):
        return None
    if ms < _MIN_QUERY_SENT_AT_MS:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return None


def _truthy(value) -> bool:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return isinstance(value, str) and value.strip().lower() in ("1", "true")


def _project_id(batch: dict, query: Mapping[str, str]) -> str | None:
    value = batch.get("project_id")
    if value is None or isinstance(value, bool):
        value = query.get("project_id")
    if isinstance(value, (int, str)) and str(value).strip():
        return str(value).strip()
    return None
