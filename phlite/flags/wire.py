"""The /flags and /decide wire format: request bodies in, versioned response shapes out.

Owns docs/flags-protocol.md "Flags endpoint: request decoding" (body decoding: JSON, gzip by query/header/magic bytes, base64 fallback,
form `data=`; the body fields and their aliases), docs/flags-protocol.md "Flags endpoint: response shapes" (the response shape of each endpoint and
version) and the Mixpanel flags answer (docs/flags-protocol.md "Mixpanel flags"). Pure: imports only errors; no framework,
no store, no clock.
"""

import base64
import binascii
import functools
import json
import math
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import orjson

from phlite import codec, errors

MAX_DISTINCT_ID_LEN = 200

# Merged into answers that ask for config (decide, /flags?config=true) when the caller has no
# project config to give: the flags service's own fallback, every optional feature off (docs/flags-protocol.md "Flags endpoint: config fields").
CONFIG = {
    "hasFeatureFlags": True,
    "supportedCompression": ["gzip", "gzip-js"],
    "sessionRecording": False,
    "surveys": False,
    "heatmaps": False,
    "capturePerformance": False,
    "autocaptureExceptions": False,
    "isAuthenticated": False,
    "toolbarParams": {},
    "config": {"enable_collect_everything": True},
}
# What GET /flags answers (the flags service's minimal response).
MINIMAL_CONFIG = {
    "supportedCompression": ["gzip", "gzip-js"],
    "config": {"enable_collect_everything": True},
    "toolbarParams": {},
    "isAuthenticated": False,
    "sessionRecording": False,
}

# Response shapes (docs/flags-protocol.md "Flags endpoint: response shapes").
DECIDE_V1 = "decide_v1"  # {"featureFlags": [enabled keys]}
DECIDE_V2 = "decide_v2"  # {"featureFlags": {enabled key: true | variant}}
LEGACY = "legacy"  # {"featureFlags": {all}, "featureFlagPayloads", "errorsWhileComputingFlags"}
V2 = "v2"  # {"flags": {key: FlagDetail}, ...} plus featureFlags/featureFlagPayloads


def _flag_error(detail, status=400, code="malformed_data", type_="validation_error", attr=None):
    return errors.PhliteError(detail, status=status, code=code, type=type_, attr=attr)


def decode_error(detail):
    """400 for a body that cannot be read, with the flags service's wording."""
    return _flag_error(f"Failed to decode request: {detail}. Please check your request format and try again.")


def missing_token():
    return _flag_error("No API token provided. Please include a valid API token in your request.",
                       status=401, code="invalid_api_key", type_="authentication_error")


def invalid_token():
    return _flag_error("The provided API key is invalid or has expired. Please check your API key and try again.",
                       status=401, code="invalid_api_key", type_="authentication_error")


def missing_distinct_id():
    return _flag_error("The distinct_id field is missing from the request. Please include a valid identifier.",
                       code="missing_distinct_id", attr="distinct_id")


# --- query -----------------------------------------------------------------------------------------


def bool_param(value) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def _version(value) -> int | None:
    """`v` as the flags service reads it: absent/empty -> None, unparseable -> 1."""
    if value is None or value.strip() == "":
        return None
    try:
        return int(value.strip())
    except ValueError:
        return 1


def response_format(endpoint: str, query: dict) -> tuple[str, bool]:
    """(shape, include config) for a POST to `endpoint` ("flags" or "decide") with this query."""
    version = _version(query.get("v"))
    config = bool_param(query.get("config"))
    if endpoint == "decide":
        if config is None:
            config = True
        if version == 2:
            return DECIDE_V2, config
        if version == 3:
            return LEGACY, config
        if version is not None and version >= 4:
            return V2, config
        return DECIDE_V1, config
    if version is None and config is None:
        return V2, True
    return (V2 if version is not None and version >= 2 else LEGACY), bool(config)


# --- body ------------------------------------------------------------------------------------------


def _gunzip(data: bytes, cap: int, max_values: int | None = None) -> bytes:
    try:
        return codec.gunzip(data, cap, max_values)  # bounded: a bomb stops at cap + 1 bytes
    except codec.BadGzip as e:
        raise decode_error(f"gzip decompression failed: {e}") from None


def _b64(text: bytes, cap: int) -> bytes | None:
    """URL-decode, drop spaces, pad, base64-decode (the flags service's forgiving base64)."""
    cleaned = unquote_to_bytes(text).replace(b" ", b"")
    cleaned += b"=" * (-len(cleaned) % 4)
    if len(cleaned) * 3 // 4 > cap:
        raise errors.PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None


def _nan_to_none(_constant):
    return None


def _finite_float(text):
    """Non-finite floats (1e999) become null, as in the flags service; read while parsing, so the
    slow path builds one tree, not a second, filtered copy."""
    value = float(text)
    return value if math.isfinite(value) else None


def _json(data: bytes):
    """JSON, also accepting NaN/Infinity (read as null); invalid UTF-8 is replaced. None if not JSON."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        return value
    try:
        # Slow path (orjson refuses NaN, Infinity, 1e999 and invalid UTF-8).
        return json.loads(data.decode("utf-8", "replace"), parse_constant=_nan_to_none, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return None


def _bounded_json(data: bytes, max_values: int, known_key=None, outside_key=None):
    if codec.too_many_json_values(data, max_values):
        raise errors.PayloadTooLarge(f"payload holds more than {max_values} JSON values")
    if known_key is not None and not (outside_key and known_key(outside_key)):
        # The key check before parsing (docs/reliability.md "Memory bombs"): the answers project_of gives.
        keys = codec.unknown_keys(data, known_key)
        if keys is not None:
            raise invalid_token() if keys or outside_key else missing_token()
    return _json(data)


def decode_flags_body(body: bytes, content_type: str = "", content_encoding: str = "",
                      compression: str | None = None, cap: int = 50 * 1024 * 1024,
                      max_values: int = 1_000_000, known_key=None, outside_key=None) -> dict:
    """The JSON object of a /flags or /decide request body (docs/flags-protocol.md "Flags endpoint: request decoding").

    :param compression: the `compression` query parameter (gzip, gzip-js, base64; else 400).
    :param cap: most bytes a body may decode to.
    :param max_values: most JSON values it may hold (its parsed memory, codec.too_many_json_values).
    :param known_key: `known_key(key) -> bool`; when given, a body that names no known key (and
        `outside_key`, the query's, is not one) is refused 401 before it is parsed.
    :raises errors.PhliteError: 400 for what cannot be decoded, 413 past `cap` or `max_values`, 401.
    """
    _json = functools.partial(_bounded_json, max_values=max_values, known_key=known_key, outside_key=outside_key)
    mime = (content_type or "application/json").split(";")[0].strip().lower()
    hint = (compression or "").strip().lower() or None
    if hint not in (None, "gzip", "gzip-js", "base64"):
        raise decode_error("Unsupported compression type")
    if mime in ("application/json", "text/plain"):
        if hint in ("gzip", "gzip-js") or "gzip" in (content_encoding or "").lower() or body[:2] == b"\x1f\x8b":
            body = _gunzip(body, cap, max_values)
        elif len(body) > cap:
            raise errors.PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")
        value = _json(body)
        if value is None:
            decoded = _b64(body, cap)
            value = _json(decoded) if decoded is not None else None
        if value is None:
            raise decode_error("invalid JSON")
    elif mime == "application/x-www-form-urlencoded":
        if hint in ("gzip", "gzip-js"):
            raise decode_error("Gzip compression not supported for form-urlencoded data")
        text = unquote_to_bytes(body)
        if text.startswith(b"data="):
            text = text[5:].split(b"=")[0]
        decoded = _b64(text, cap)
        if decoded is None:
            raise decode_error("Base64 decoding error")
        value = _json(decoded)
        if value is None:
            raise decode_error("invalid JSON structure")
    else:
        raise decode_error(f"unsupported content type: {content_type}")
    if not isinstance(value, dict):
        raise decode_error("invalid JSON: the body must be a JSON object")
    return value


# --- the request ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagRequest:
    """What a /flags request asks, with PostHog's aliases resolved and types checked."""

    token: str | None
    distinct_id: str | None
    groups: dict
    person_properties: dict
    group_properties: dict
    anon_distinct_id: str | None = None
    device_id: str | None = None
    disable_flags: bool = False
    flag_keys: list | None = None
    evaluation_runtime: str | None = None
    evaluation_contexts: list | None = None


def _field(obj: dict, name, alias=None):
    value = obj.get(name)
    if value is None and alias is not None:
        return obj.get(alias)
    return value


def _expect(value, kind, name):
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise decode_error(f"invalid JSON: '{name}' has the wrong type")
    return value


def _id_text(value, name) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise decode_error(f"invalid JSON: '{name}' must be a string or a number")
    if isinstance(value, str):
        return value
    return json.dumps(value)


def parse_flags_request(obj: dict) -> FlagRequest:
    """Read a decoded /flags body; token and distinct_id presence are checked by the caller."""
    token = _field(obj, "token", "api_key")
    if token is None:
        token = obj.get("$token")
    if token is not None and not isinstance(token, str):
        token = None
    distinct_id = _id_text(_field(obj, "distinct_id", "$distinct_id"), "distinct_id")
    if distinct_id is not None:
        distinct_id = distinct_id[:MAX_DISTINCT_ID_LEN]
    person_properties = _expect(_field(obj, "person_properties", "$properties"), dict, "person_properties") or {}
    groups = _expect(_field(obj, "groups", "$groups"), dict, "groups") or {}
    group_properties = _expect(_field(obj, "group_properties", "$group_properties"), dict, "group_properties") or {}
    for name, props in group_properties.items():
        _expect(props, dict, f"group_properties.{name}")
    anon = _id_text(_field(obj, "$anon_distinct_id", "anon_distinct_id"), "$anon_distinct_id")
    device_id = _field(obj, "$device_id", "device_id")
    if not isinstance(device_id, str) or not device_id:
        device_id = person_properties.get("$device_id")
        if not isinstance(device_id, str) or not device_id:
            device_id = None
    flag_keys = _expect(_field(obj, "flag_keys_to_evaluate", "flag_keys"), list, "flag_keys_to_evaluate")
    if flag_keys is not None:
        flag_keys = [k for k in flag_keys if isinstance(k, str)]
    runtime = _field(obj, "evaluation_runtime")
    contexts = _expect(_field(obj, "evaluation_contexts", "evaluation_environments"), list, "evaluation_contexts")
    return FlagRequest(
        token=token or None,
        distinct_id=distinct_id,
        groups=groups,
        person_properties=person_properties,
        group_properties={k: v for k, v in group_properties.items() if v is not None},
        anon_distinct_id=anon or None,
        device_id=device_id,
        disable_flags=obj.get("disable_flags") is True,
        flag_keys=flag_keys,
        evaluation_runtime=runtime.lower() if isinstance(runtime, str) else None,
        evaluation_contexts=[c for c in contexts if isinstance(c, str)] if contexts else None,
    )


def request_runtime(explicit: str | None, headers) -> str | None:
    """"client", "server", "all" or None (unknown): which runtime's flags a request may see (docs/flags-protocol.md "Flags endpoint: which flags are evaluated")."""
    if explicit is not None:
        return explicit if explicit in ("client", "server") else "all"
    ua = headers.get("User-Agent") or ""
    runtime = _ua_runtime(ua) if len(ua) <= 512 else _ua_runtime.__wrapped__(ua)
    if runtime is not None:
        return runtime
    if any(headers.get(h) is not None for h in ("Origin", "Referer", "Sec-Fetch-Mode", "Sec-Fetch-Site")):
        return "client"
    return None


@functools.lru_cache(maxsize=256)  # an SDK sends the same User-Agent on every request
def _ua_runtime(ua: str) -> str | None:
    """The runtime a User-Agent alone tells, else None."""
    if any(b in ua for b in ("Mozilla/", "Chrome/", "Safari/", "Firefox/", "Edge/")):
        return "client"
    if ua.startswith(("posthog-python/", "posthog-ruby/", "posthog-php/", "posthog-java/", "posthog-go/",
                      "posthog-node/", "posthog-dotnet/", "posthog-elixir/")) \
            or "python-requests/" in ua or "curl/" in ua:
        return "server"
    if ua.startswith(("posthog-android/", "posthog-ios/", "posthog-react-native/", "posthog-flutter/")):
        return "client"
    return None


def runtime_allows(flag_runtime: str | None, runtime: str | None) -> bool:
    """Whether a flag with `evaluation_runtime` may be evaluated for a request of `runtime`."""
    flag_runtime = (flag_runtime or "all").lower()
    if runtime == "all" or flag_runtime not in ("client", "server"):
        return True
    return flag_runtime == runtime


# --- responses ------------------------------------------------------------------------------------


def flag_detail(result) -> dict:
    """One v2 FlagDetail (docs/flags-protocol.md "Flags endpoint: response shapes") from an evaluator FlagResult."""
    detail = {
        "key": result.key,
        "enabled": result.enabled,
        "variant": result.variant,
        "reason": {
            "code": result.reason_code,
            "condition_index": result.condition_index,
            "description": result.description,
        },
        "metadata": {
            "id": result.id,
            "version": result.version,
            "description": result.name or None,
            "payload": result.payload,
            "has_experiment": False,
        },
    }
    if result.failed:
        detail["failed"] = True
    return detail


def _v2_parts(result):
    """(value, payload if enabled, flag_detail as pre-serialised JSON) of one result: built once per
    FlagResult, which evaluate() reuses across requests (results are immutable)."""
    parts = result.memo.get("v2")
    if parts is None:
        payload = result.payload if result.enabled else None
        parts = result.memo["v2"] = (_value(result), payload, orjson.Fragment(orjson.dumps(flag_detail(result))))
    return parts


def _v2_maps(results):
    """(flags, featureFlags, featureFlagPayloads) of a v2 answer."""
    flags, values, payloads = {}, {}, {}
    for k, r in results.items():
        # The detail is an orjson.Fragment: the same bytes as flag_detail's dict, built once per result.
        value, payload, flags[k] = _v2_parts(r)
        values[k] = value
        if payload is not None:
            payloads[k] = payload
    return flags, values, payloads


def _value(result):
    return result.variant if result.variant is not None else result.enabled


def shape_response(shape: str, results: dict, errors_while_computing: bool, request_id: str,
                   evaluated_at: int, config: dict | None = None, memo: dict | None = None) -> dict:
    """The answer of `shape` for evaluator results {key: FlagResult}, with `config` merged in.

    `memo`: a dict that goes with `results` (they are immutable): the v2 answer's flag maps are kept
    there encoded, so results answered again are not shaped again."""
    body: dict
    if memo is not None and shape == V2:
        parts = memo.get(shape)
        if parts is None:
            parts = memo[shape] = tuple(orjson.Fragment(orjson.dumps(part)) for part in _v2_maps(results))
        body = {"flags": parts[0], "errorsWhileComputingFlags": errors_while_computing,
                "featureFlags": parts[1], "featureFlagPayloads": parts[2]}
    elif shape == DECIDE_V1:
        body = {"featureFlags": [k for k, r in results.items() if r.enabled]}
    elif shape == DECIDE_V2:
        body = {"featureFlags": {k: _value(r) for k, r in results.items() if r.enabled}}
    elif shape == LEGACY:
        values = {k: _value(r) for k, r in results.items()}
        payloads = {k: r.payload for k, r in results.items() if r.enabled and r.payload is not None}
        body = {"featureFlags": values, "featureFlagPayloads": payloads,
                "errorsWhileComputingFlags": errors_while_computing}
    else:
        flags, values, payloads = _v2_maps(results)
        # featureFlags/featureFlagPayloads beside flags: posthog-js's getRemoteConfigPayload reads them.
        body = {"flags": flags, "errorsWhileComputingFlags": errors_while_computing,
                "featureFlags": values, "featureFlagPayloads": payloads}
    body["requestId"] = request_id
    body["evaluatedAt"] = evaluated_at
    if config is not None:
        body = {**config, **body}
    return body


def minimal_response(query: dict, request_id: str, evaluated_at: int) -> dict:
    """GET /flags without a Mixpanel context: no evaluation, the flags service's minimal answer."""
    version = _version(query.get("v")) or 1
    if version >= 2:
        body = {"errorsWhileComputingFlags": False, "flags": {}}
    else:
        body = {"errorsWhileComputingFlags": False, "featureFlags": {}, "featureFlagPayloads": {}}
    return {**body, "requestId": request_id, "evaluatedAt": evaluated_at, **MINIMAL_CONFIG}


# --- Mixpanel -------------------------------------------------------------------------------------


def parse_mixpanel_request(query: dict, basic_user: str | None) -> FlagRequest:
    """mixpanel-browser's GET /flags/?context=<JSON>&token=...: context has distinct_id, device_id
    and optionally custom_properties (read as person properties)."""
    try:
        context = orjson.loads(query.get("context") or "{}")
    except orjson.JSONDecodeError:
        raise decode_error("'context' is not valid JSON") from None
    if not isinstance(context, dict):
        raise decode_error("'context' must be a JSON object")
    props = context.get("custom_properties")
    device_id = context.get("device_id")
    distinct_id = _id_text(context.get("distinct_id"), "distinct_id")
    return FlagRequest(
        token=query.get("token") or basic_user or None,
        distinct_id=distinct_id[:MAX_DISTINCT_ID_LEN] if distinct_id is not None else None,
        groups={},
        person_properties=props if isinstance(props, dict) else {},
        group_properties={},
        device_id=device_id if isinstance(device_id, str) and device_id else None,
    )


def mixpanel_response(results: dict) -> dict:
    """{"flags": {key: {"variant_key", "variant_value"}}}: mixpanel-browser's `is_enabled` wants a
    boolean value, `get_variant_value` the value; a multivariate flag's value is its variant key."""
    flags = {}
    for key, r in results.items():
        if r.failed:
            continue  # let the client fall back to its default rather than a wrong "off"
        if r.variant is not None:
            flags[key] = {"variant_key": r.variant, "variant_value": r.variant}
        else:
            flags[key] = {"variant_key": "true" if r.enabled else "false", "variant_value": r.enabled}
    return {"flags": flags}
