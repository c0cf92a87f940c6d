"""Capture request bytes -> raw event dicts (a Payload): phlite's ingestion wire format.

Owns docs/protocol.md "Capture: body decoding" and "Capture: query parameters" (the `data` query parameter,
optimistic base64, form bodies, gzip, lz64, the legacy second base64 pass, the four JSON shapes); the
project key, send time and project id are read by meta.py (docs/protocol.md "Capture: project key"). Mixpanel's shapes (`/track`, `/import`, `/engage`, `/groups`) are
turned into PostHog-shaped events by mixpanel.py, their operations kept beside the events
(Payload.operations). It refuses only bodies it cannot decode: per-event validation happens later, in
normalize.py, after the client got its 200. Pure: no framework, no clock, no I/O.
"""

import base64
import binascii
import email.parser
import email.policy
import functools
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_to_bytes

import orjson

from phlite import codec, errors
from phlite.ingest import lzstring, meta, mixpanel, reports

_MIB = 1024 * 1024
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
_MULTIPART_MIME = "multipart/form-data"
# The form fields read: the payload, its hint, the send time, Mixpanel's verbose flag, the key.
_FORM_FIELDS = ("data", "compression", "_", "sent_at", "verbose", "api_key", "token")
_MOST_PARTS = 64  # multipart parts: the SDKs send one to three



@dataclass
class Payload:
    events: list[dict]  # raw event objects, after shape handling
    token: str | None  # project key per docs/protocol.md "Capture: project key" (may be a "phx_" personal key; caller resolves)
    sent_at: datetime | None  # batch body sent_at, else query `_`/`sent_at` ms; tz-aware UTC
    historical_migration: bool
    verbose: bool  # Mixpanel: `verbose=1` in the query or in the form body
    project_id: str | None  # for personal-key auth: batch top-level or query `project_id`
    # /engage and /groups: each event's Mixpanel operations ($add, $union, $delete...), None for an
    # item that was already an event; None for every other endpoint. Never inside the events.
    operations: list[dict | None] | None = None


def decode_request(
    path: str,
    body: bytes,
    *,
    content_type: str = "",
    content_encoding: str = "",
    query: Mapping[str, str] = _NO_QUERY,
    max_decompressed: int = 50 * _MIB,
    max_values: int = 1_000_000,
    max_events: int = 50_000,
    known_key: Callable[[str], bool] | None = None,
) -> Payload:
    """Decode one capture request (any SDK, any encoding) into raw event dicts.

    `query` values must already be URL-decoded text. Events are not validated here.
    `known_key(key)`: whether a key names a project (or is a valid personal key). When given, a body
    whose key is neither in the query or form nor anywhere in its decoded bytes is refused before it
    is parsed (docs/reliability.md "Memory bombs"); the caller still resolves the payload's token.
    :raises errors.BadRequest: body not decodable, JSON not one of the accepted shapes, empty batch.
    :raises errors.PayloadTooLarge: a decoding step produced more than max_decompressed bytes, the JSON
        holds more than max_values values, or the request more than max_events events.
    :raises errors.Unauthorized: events of one array carry different project keys; no known key (with
        `known_key`).
    """
    endpoint = path.split("?", 1)[0].strip("/").split("/", 1)[0]
    if body[:2] == b"\x1f\x8b" and endpoint not in _NOT_FAST:
        fast = _posthog_js(body, content_type, query, max_decompressed, max_values, max_events, known_key)
        if fast is not None:
            return fast
    query_hint = _hint(query.get("compression"))
    header_hint = _hint(content_encoding) if content_encoding else None
    early_hint = query_hint or header_hint
    data, form, was_base64 = _extract(body, content_type, query, max_decompressed, skip_base64=early_hint == "lz64")
    hint = query_hint or (_hint(form.get("compression")) if form else None) or header_hint
    undecoded = data
    data = _decompress(data, hint, max_decompressed, max_values)
    if endpoint in _LEGACY_ENDPOINTS and _is_base64(data, _B64_STRICT):
        decoded = _b64decode(data, max_decompressed)
        if decoded is not None and _is_utf8(decoded):
            data = decoded
    # The base64 fallback of _parse_json is a first decoding only: base64 of base64 stays a legacy-path
    # feature (docs/protocol.md "Legacy second base64 pass").
    gate = None
    if known_key is not None:
        outside = meta.first_text(form, query)
        if not (outside and known_key(outside)):
            gate = functools.partial(_refuse_without_key, known_key=known_key, hint=outside)
    obj = _parse_json(data, max_decompressed, max_values, base64_fallback=data is undecoded and not was_base64,
                      gate=gate)

    batch: dict = {}
    if content_type.split(";", 1)[0].strip().lower() in reports.CSP_MIMES:
        # A browser's CSP violation report (on /report/ or /e/): PostHog's $csp_violation events.
        obj = reports.csp_events(obj, query)
        if not obj:
            raise errors.BadRequest("Invalid CSP report properties provided", code="invalid_csp_payload")
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
    if len(items) > max_events:
        # Bounded before the 200, so nothing acknowledged exceeds what the writer stores in bounded commits.
        raise errors.PayloadTooLarge(f"request holds {len(items)} events; at most {max_events} per request")
    operations = None
    if endpoint in ("engage", "groups"):
        pairs = [mixpanel.convert(item, endpoint) for item in items if isinstance(item, dict)]
        events = [event for event, _ in pairs]
        operations = [ops for _, ops in pairs]
    else:
        events = [item for item in items if isinstance(item, dict)]
    if not events:
        raise errors.BadRequest("failed to parse request: no event is a JSON object", code="invalid_payload")

    token = meta.batch_token(batch) or meta.events_token(events) or meta.first_text(form, query)
    if endpoint in ("track", "import"):
        for event in events:
            mixpanel.track_event(event, token)
    keep = [i for i, e in enumerate(events) if e.get("event") != "$performance_event"]
    if len(keep) < len(events):
        events = [events[i] for i in keep]
        operations = None if operations is None else [operations[i] for i in keep]
    return Payload(
        events=events,
        operations=operations,
        token=token,
        sent_at=meta.batch_sent_at(batch) or meta.query_sent_at(query) or meta.query_sent_at(form),
        historical_migration=batch.get("historical_migration") is True,
        verbose=codec.truthy(query.get("verbose")) or codec.truthy(form.get("verbose")),
        project_id=meta.project_id(batch, query),
    )


# The endpoints whose decoding differs from posthog-js's shape (Mixpanel's): never the fast path.
_NOT_FAST = frozenset({"engage", "groups", "track", "import"})
_FAST_MIMES = frozenset({"text/plain", "", "application/json"})
# Decoded bodies up to this size are parsed before the project-key check (what posthog-js sends is a
# few KB); the check's byte scan was ~8% of a capture request's CPU (bench/notes.md).
FAST_PARSE_BYTES = 64 * 1024


def _posthog_js(body, content_type, query, cap, max_values, max_events, known_key=None) -> Payload | None:
    """The exact shape posthog-js sends (a gzip body as text/plain: one event or an array of them),
    decoded as the general path would (tests/test_ingest.py proves it on generated requests); None
    for anything else, which then takes the general path."""
    if "data" in query or content_type.split(";", 1)[0].strip().lower() not in _FAST_MIMES:
        return None
    # Its errors are the general path's own: that path would take these same steps first (the
    # key check before parsing included, docs/reliability.md "Memory bombs").
    data = _gunzip(body, cap, max_values)
    if data[:1] not in (b"[", b"{"):
        return None  # base64 or lz64 inside the gzip, whitespace first...: the general path
    gate = None
    if known_key is not None:
        outside = meta.first_text(_NO_QUERY, query)
        if not (outside and known_key(outside)):
            gate = functools.partial(_refuse_without_key, known_key=known_key, hint=outside)
    # A small body is parsed before the key check: its parsed size is bounded anyway, and when the
    # events' own key is known the byte scan would find it too (it reads the same fields, when no
    # \u escape can hide a key name), so it is skipped; otherwise the scan runs after parsing.
    late_gate = gate if gate is not None and len(data) <= FAST_PARSE_BYTES else None
    try:
        obj = _loads(data, max_values, None if late_gate else gate)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict):
        if "batch" in obj or obj.get("event") is None:
            return None
        events = [obj]
    elif isinstance(obj, list) and 0 < len(obj) <= max_events:
        events = obj
        for event in events:
            if not isinstance(event, dict):
                return None
    else:
        return None
    for event in events:
        if event.get("event") == "$performance_event":
            return None
    try:
        token = meta.events_token(events) or meta.first_text(_NO_QUERY, query)
    except errors.Unauthorized:
        return None
    # The scan reads the same fields the parse did, once no key name can be written with \u escapes.
    if late_gate is not None and not (token and b"\\u" not in data and known_key(token)):
        late_gate(data)
    return Payload(
        events=events,
        token=token,
        sent_at=meta.query_sent_at(query),
        historical_migration=False,
        verbose=codec.truthy(query.get("verbose")),
        project_id=meta.project_id({}, query),
    )


# -- bytes --------------------------------------------------------------------------------------------


def _extract(body, content_type, query, cap, *, skip_base64):
    """The first steps of docs/protocol.md "Capture: body decoding": pick the raw bytes, optimistic base64, form bodies.

    Returns (bytes, form, whether the optimistic base64 decoding was applied)."""
    qdata = query.get("data")
    if qdata:
        raw = _pad_base64(_restore_plus(qdata.encode("utf-8")))
    elif body:
        raw = body
    else:
        raise errors.BadRequest("request missing data payload", code="empty_payload")
    # _is_base64 first: cheaper, and false at the first byte of gzip or JSON (both tests are pure).
    was_base64 = False
    if not skip_base64 and _is_base64(raw, _B64_STRICT) and not _looks_like_form(raw):
        decoded = _b64decode(raw, cap)
        if decoded is not None:
            raw, was_base64 = decoded, True
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == _MULTIPART_MIME and not qdata:
        form = _parse_multipart(raw, content_type)
        raw = _pad_base64(_restore_plus(form.get("data", b"")))
        if not raw:
            raise errors.BadRequest("request missing data payload", code="empty_payload")
        return raw, form, False
    # Lenient where PostHog is strict: `; charset=...` is fine, mixpanel-browser's sendBeacon sends a form
    # as text/plain, and a form content type over a non-form body (curl -d '{...}') is read as the body.
    if raw.startswith(b"data=") or (mime == _FORM_MIME and _looks_like_form(raw)):
        form = _parse_form(raw)
        raw = _restore_plus(form.get("data", b""))
        if not raw:
            raise errors.BadRequest("request missing data payload", code="empty_payload")
        return raw, form, False
    return raw, {}, was_base64


def _parse_multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """A multipart/form-data body as {field name: bytes} (first value wins), like _parse_form.

    The stdlib MIME parser does the boundary work; the body is already capped by the route's limit, and its
    parts are counted first (the parser builds a message object per part).
    """
    boundary = re.search(r'boundary="?([^";]+)', content_type)
    if boundary and body.count(b"--" + boundary.group(1).strip().encode("latin-1", "replace")) > _MOST_PARTS + 1:
        raise errors.BadRequest(f"failed to parse request: more than {_MOST_PARTS} multipart parts",
                                code="invalid_payload")
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    form: dict[str, bytes] = {}
    if not message.is_multipart():
        raise errors.BadRequest("failed to parse request: bad multipart body", code="invalid_payload")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name:
            value = part.get_payload(decode=True)
            form.setdefault(name, value if isinstance(value, bytes) else b"")
    return form


def _pad_base64(data: bytes) -> bytes:
    # posthog-js and hand-made GETs may strip base64's '=' padding; restore it so the strict test passes.
    missing = -len(data) % 4
    if missing in (1, 2) and data and not data[:128].translate(None, _B64_STRICT):
        return data + b"=" * missing
    return data


def _looks_like_form(data: bytes) -> bool:
    # One regex search: some _FORM_PREFIXES at the start or after a '&' of the first 128 bytes.
    return _FORM_HEAD.search(data[:128]) is not None


def _parse_form(data: bytes) -> dict[str, bytes]:
    """The form fields decoding reads (first value wins), each found by one C-speed search: a Python loop
    over every field let a 20 MiB body of 2 M fields cost +307 MB and 27 s before its 401
    (docs/reliability.md "Memory bombs"). Names are matched as written: no SDK percent-encodes them."""
    form: dict[str, bytes] = {}
    for name in _FORM_FIELDS:
        key = name.encode() + b"="
        if data.startswith(key):
            start = len(key)
        else:
            start = data.find(b"&" + key)  # bytes.find: a fast search, where a regex took seconds
            if start < 0:
                continue
            start += 1 + len(key)
        end = data.find(b"&", start)
        value = data[start:] if end < 0 else data[start:end]
        form[name] = unquote_to_bytes(value.replace(b"+", b" "))
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


def _decompress(data: bytes, hint: str | None, cap: int, max_values: int | None = None) -> bytes:
    """The decompression step of docs/protocol.md "Capture: body decoding". Every branch stops at `cap` output bytes."""
    # The bytes win over the hint (docs/protocol.md "Compression hints"): gzip's magic bytes mean gzip
    # whatever the hint says, and a gzip hint over bytes that are not gzip is ignored (a recorded
    # posthog-js request sends `compression=gzip-js` with a plain body).
    if data[:2] == b"\x1f\x8b":
        return _gunzip(data, cap, max_values)
    if hint == "lz64" and data.lstrip()[:1] not in (b"{", b"["):
        try:
            out = lzstring.decompress_from_base64(data.decode("ascii"), cap).encode("utf-8")
        except lzstring.OutputTooLarge:
            raise _too_large(cap) from None
        except ValueError as e:  # includes UnicodeError
            raise errors.BadRequest(f"invalid lz64 data: {e}", code="invalid_payload") from None
    elif hint == "base64" and _is_base64(data, _B64_STRICT):
        # PostHog decodes base64 only optimistically or on legacy paths
        # (docs/protocol.md "Optimistic base64", "Legacy second base64 pass"); honouring the explicit
        # hint everywhere also covers posthog-js's base64 form beacon to /i/v0/e/.
        out = _b64decode(data, cap) or data
    else:
        out = data
    if len(out) > cap:
        raise _too_large(cap)
    return out


def _gunzip(data: bytes, cap: int, max_values: int | None = None) -> bytes:
    try:
        return codec.gunzip(data, cap, max_values)
    except codec.BadGzip as e:
        detail = "invalid GZIP data (truncated)" if e.truncated else "invalid GZIP data"
        raise errors.BadRequest(detail, code="invalid_payload") from None


def _too_large(cap: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")


def _refuse_without_key(data: bytes, *, known_key, hint):
    # The answer resolve_project gives a request without a known key: a personal key's if one was sent.
    keys = codec.unknown_keys(data, known_key)
    if keys is not None:
        first = keys[0] if keys else hint or ""  # a body's key comes before the query's
        raise errors.invalid_personal_key() if first.startswith("phx_") else errors.invalid_project_key()


def _loads(data: bytes, max_values: int, gate=None):
    if codec.too_many_json_values(data, max_values):
        raise errors.PayloadTooLarge(f"payload holds more than {max_values} JSON values")
    if gate is not None:
        gate(data)
    return orjson.loads(data)


def _parse_json(data: bytes, cap: int, max_values: int, *, base64_fallback: bool, gate=None):
    """The JSON of the payload; failing that, as PostHog's Django capture does, its base64 decoding
    (padding optional), and CESU-8 surrogate pairs (old posthog-js's emoji) read as the characters they encode."""
    # orjson (>= 3.9.15, setup.cfg) refuses nesting past 1,024 levels itself.
    try:
        return _loads(data, max_values, gate)
    except orjson.JSONDecodeError as e:
        error = e
    candidates = []
    padded = _pad_base64(data.strip()) if base64_fallback else b""
    if _is_base64(padded, _B64_STRICT):
        decoded = _b64decode(padded, cap)
        if decoded is not None:
            candidates.append(decoded)
    candidates.append(data)
    for candidate in candidates:
        for attempt in (candidate, _from_cesu8(candidate)):
            if attempt is None:
                continue
            try:
                return _loads(attempt, max_values, gate)
            except orjson.JSONDecodeError:
                pass
    raise errors.BadRequest(f"failed to parse request: {error}", code="invalid_payload") from None


def _from_cesu8(data: bytes) -> bytes | None:
    """UTF-8 bytes holding surrogate pairs encoded one by one (CESU-8) -> proper UTF-8; None if there are none."""
    if b"\xed" not in data:
        return None
    try:
        text = data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    # Through UTF-16, where a high + low surrogate pair is one character; a lone surrogate becomes U+FFFD.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")
