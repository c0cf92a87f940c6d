"""Capture v1 (`POST /i/v1/analytics/events`) request -> a Payload of ordinary events, plus the per-event
results the answer carries (docs/protocol.md "Capture v1").

posthog-python (`capture_mode="v1"`), posthog-node (`POSTHOG_CAPTURE_MODE=v1`) and posthog-go send it:
Bearer project key, `PostHog-*` headers, a compressed `{"created_at", "batch": [...]}` body whose events
carry some properties in other places (`options`, `session_id`, `$lib` in a header). Those are put back
where the rest of ingestion reads them, so a v1 event is stored as the same event sent to `/batch` would be.
Pure: no framework, no clock, no I/O.
"""

import zlib
from collections.abc import Mapping

import orjson

from phlite import codec, errors
from phlite.ingest.reports import log_events
from phlite.ingest.meta import parse_sent_at
from phlite.ingest.wire import Payload

# options field -> the property PostHog's ingestion reads (the SDKs move these properties into options).
_OPTIONS = (
    ("process_person_profile", "$process_person_profile"),
    ("disable_skew_correction", "$ignore_sent_at"),
    ("cookieless_mode", "$cookieless_mode"),
    ("product_tour_id", "$product_tour_id"),
)
_TOP_LEVEL = (("session_id", "$session_id"), ("window_id", "$window_id"))
OK, WARNING, DROP = "ok", "warning", "drop"


def decode_v1(
    body: bytes,
    *,
    authorization: str = "",
    content_encoding: str = "",
    sdk_info: str = "",
    max_decompressed: int,
    max_values: int = 1_000_000,
    known_key=None,
) -> tuple[Payload, dict[str, dict]]:
    """Decode one v1 request. Returns (payload of the events to store, {uuid: {"result", "details"?}}).

    Events the writer would drop anyway (no name, no distinct id) are answered `drop` here and left out;
    every other event is `ok`.
    :raises errors.Unauthorized: no Bearer project key, or one `known_key(key) -> bool` refuses: checked
        before the body is decompressed (docs/reliability.md "Memory bombs").
    :raises errors.BadRequest: body not decodable, not a v1 batch.
    :raises errors.PayloadTooLarge: decompressed past max_decompressed, or more than max_values JSON values.
    :raises errors.PhliteError: (415) a Content-Encoding phlite cannot decode.
    """
    token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
    _check_key(token, known_key)
    data = _decompress(body, content_encoding.strip().lower(), max_decompressed)
    _check_values(data, max_values)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise errors.BadRequest(f"failed to parse request: {e}", code="invalid_payload") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("batch"), list):
        raise errors.BadRequest("failed to parse request: expected {\"created_at\", \"batch\": [...]}",
                                code="invalid_payload")
    lib, _, lib_version = sdk_info.strip().partition("/")
    events, results = [], {}
    for item in obj["batch"]:
        if not isinstance(item, dict):
            continue
        uuid = item.get("uuid")
        key = uuid if isinstance(uuid, str) and uuid else None
        problem = _problem(item)
        if problem:
            if key:
                results[key] = {"result": DROP, "details": problem}
            continue
        events.append(_to_event(item, lib, lib_version))
        if key:
            results[key] = {"result": OK}
    payload = Payload(
        events=events,
        token=token,
        sent_at=parse_sent_at(obj.get("created_at")),
        historical_migration=obj.get("historical_migration") is True,
        verbose=False,
        project_id=None,
    )
    return payload, results


def decode_logs(body: bytes, *, token: str, content_encoding: str = "", max_decompressed: int,
                max_values: int = 1_000_000, known_key=None) -> Payload:
    """posthog-node's `captureLog`: OTLP JSON logs to `/i/v1/logs?token=` -> a Payload of `$log` events
    (docs/protocol.md "Logs"). OTLP protobuf bodies are not read (415). The key and the bounds are
    checked as in decode_v1."""
    token = (token or "").strip()
    _check_key(token, known_key)
    data = _decompress(body, content_encoding.strip().lower(), max_decompressed)
    _check_values(data, max_values)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise errors.PhliteError("Logs must be OTLP JSON (Content-Type: application/json).",
                                 code="unsupported_media_type", status=415, type="validation_error") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceLogs"), list):
        raise errors.BadRequest("failed to parse request: expected OTLP JSON {\"resourceLogs\": [...]}",
                                code="invalid_payload")
    return Payload(events=log_events(obj), token=token, sent_at=None, historical_migration=False,
                   verbose=False, project_id=None)


def _check_key(token: str, known_key) -> None:
    # The key is outside the body here, so it is checked before any decompressing or parsing.
    if not token or (known_key is not None and not known_key(token)):
        raise errors.invalid_personal_key() if token.startswith("phx_") else errors.invalid_project_key()


def _check_values(data: bytes, max_values: int) -> None:
    if codec.too_many_json_values(data, max_values):
        raise errors.PayloadTooLarge(f"payload holds more than {max_values} JSON values")


def _problem(item: Mapping) -> str | None:
    if not isinstance(item.get("event"), str) or not item["event"]:
        return "missing event name"
    distinct_id = item.get("distinct_id")
    if distinct_id is None or distinct_id == "":
        return "missing distinct_id"
    if item.get("properties") is not None and not isinstance(item["properties"], dict):
        return "properties must be an object"
    return None


def _to_event(item: Mapping, lib: str, lib_version: str) -> dict:
    props = dict(item.get("properties") or {})
    options = item.get("options")
    if isinstance(options, dict):
        for field, prop in _OPTIONS:
            if field in options and prop not in props:
                props[prop] = options[field]
    for field, prop in _TOP_LEVEL:
        value = item.get(field)
        if isinstance(value, str) and prop not in props:
            props[prop] = value
    # PostHog materialises $lib / $lib_version from the PostHog-Sdk-Info header ("posthog-python/7.91.1").
    if lib and "$lib" not in props:
        props["$lib"] = lib
        if lib_version:
            props.setdefault("$lib_version", lib_version)
    event = {"event": item["event"], "distinct_id": item["distinct_id"], "properties": props}
    for key in ("uuid", "timestamp"):
        if item.get(key) is not None:
            event[key] = item[key]
    return event


def _decompress(body: bytes, encoding: str, cap: int) -> bytes:
    if body[:2] == b"\x1f\x8b" or encoding == "gzip":
        try:
            return codec.gunzip(body, cap)
        except codec.BadGzip:
            raise errors.BadRequest("invalid GZIP data", code="invalid_payload") from None
    if encoding == "deflate":  # zlib-wrapped, as posthog-python and posthog-go send it
        d = zlib.decompressobj()
        try:
            out = d.decompress(body, cap + 1)
        except zlib.error:
            raise errors.BadRequest("invalid deflate data", code="invalid_payload") from None
        if len(out) > cap:
            raise errors.PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")
        return out
    if encoding in ("", "identity"):
        if len(body) > cap:
            raise errors.PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")
        return body
    raise errors.PhliteError(f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none.",
                             code="unsupported_encoding", status=415, type="validation_error")
