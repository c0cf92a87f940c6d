"""Small decoders both wires share (capture in phlite/ingest/wire.py, flags in the flags package):
a gunzip with an output cap, the bounds checked before a body is parsed (its values, its project key), the one
reading of a boolean word, and of a 64-bit integer. Pure: standard library, orjson and errors.
"""

import re
import zlib

import orjson

from phlite import errors

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def too_many_json_values(data: bytes, limit: int) -> bool:
    """Whether the JSON text `data` may hold more than `limit` values, found without parsing it.

    Parsed, each value costs ~50-150 bytes of Python objects however few bytes it took on the wire
    (`{},` is three bytes, one 64-byte dict): a decompressed-bytes cap alone lets a 48 KB gzip body
    become gigabytes. Counting every `{`, `[`, `,` and `:` (a key is a value too; inside strings as
    well, so this over-counts) bounds the values from above at C speed (docs/reliability.md "Memory bombs").
    """
    if len(data) <= limit:  # every value takes at least one byte
        return False
    return data.count(b",") + data.count(b":") + data.count(b"{") + data.count(b"[") > limit


# A project key as the SDKs write it in a body: the string under "api_key", "token" or "$token", at any
# depth (docs/reliability.md "Memory bombs": the key check before parsing).
_KEY_FIELD = re.compile(rb'"(?:api_key|\$?token)"[ \t\r\n]*:[ \t\r\n]*"((?:[^"\\]|\\.){1,512})"')
_JSON_START = re.compile(rb"[ \t\r\n]*[\[{]")
_MOST_KEYS = 16  # distinct candidate keys looked up
_MOST_MATCHES = 10_000  # key fields scanned


def unknown_keys(data: bytes, known_key) -> list[str] | None:
    """The keys the JSON text `data` names, when it certainly names none that `known_key(key) -> bool`
    accepts: the strings it holds under "api_key", "token" or "$token" (any depth; an empty list: no
    key at all). Found by a byte scan, without parsing. None when it names a known key, is not a JSON
    object or array, or is undecided (more than a few distinct candidates, or very many fields): the
    caller then parses, under its values bound."""
    if not _JSON_START.match(data):
        return None
    if b'token"' not in data and b'api_key"' not in data:  # the usual bomb: one fast search says so
        return []
    seen, keys = set(), []
    for n, m in enumerate(_KEY_FIELD.finditer(data)):
        if n >= _MOST_MATCHES:
            return None
        raw = m.group(1)
        if raw in seen:
            continue
        if len(seen) >= _MOST_KEYS:
            return None
        seen.add(raw)
        if b"\\" in raw:
            try:
                key = orjson.loads(b'"' + raw + b'"')
            except orjson.JSONDecodeError:
                continue
        else:
            key = raw.decode("utf-8", "replace")
        key = key.strip()
        if key:
            if known_key(key):
                return None
            keys.append(key)
    return keys


class BadGzip(ValueError):
    """Not gzip, or cut short (`truncated`); the caller words the error for its endpoint."""

    def __init__(self, reason, truncated=False):
        super().__init__(reason)
        self.truncated = truncated


_GUNZIP_STEP = 1 << 20


def gunzip(data: bytes, cap: int, max_values: int | None = None) -> bytes:
    """A gzip container's content, refused with PayloadTooLarge past `cap` bytes, or as soon as it may hold
    more than `max_values` JSON values (counted as too_many_json_values does, one step at a time: a
    bomb of `{},` stops after a megabyte or two instead of filling the whole cap)."""
    d = zlib.decompressobj(wbits=31)  # gzip container only
    parts, size, values = [], 0, 0
    while True:
        want = min(_GUNZIP_STEP, cap + 1 - size)
        try:
            # max_length bounds the output: a bomb stops after cap+1 bytes instead of filling memory.
            part = d.decompress(data, want)
        except zlib.error as e:
            raise BadGzip(str(e)) from None
        data = d.unconsumed_tail
        parts.append(part)
        size += len(part)
        if size > cap:
            raise errors.PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")
        if max_values is not None:
            values += part.count(b",") + part.count(b":") + part.count(b"{") + part.count(b"[")
            if values > max_values:
                raise errors.PayloadTooLarge(f"payload holds more than {max_values} JSON values")
        if d.eof or not (data or len(part) == want):
            break
    if not d.eof:
        raise BadGzip("truncated data", truncated=True)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def parse_bool(value) -> bool | None:
    """A boolean setting or query value: 1/true/yes/on, 0/false/no/off/empty (any case, spaces
    around); None for anything else. bytes are read as latin-1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    return True if v in _TRUE else False if v in _FALSE else None


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def parse_int64(value) -> int:
    """An id, cursor or count as SQLite can hold it (a signed 64-bit INTEGER); ValueError otherwise,
    for a caller to word as a 400 naming its field or a 404 (a bigger number names no row)."""
    if isinstance(value, bool):
        raise ValueError("not an integer")
    v = value if isinstance(value, int) else int(str(value).strip())
    if not INT64_MIN <= v <= INT64_MAX:
        raise ValueError("out of range")
    return v


def truthy(value) -> bool:
    """A query flag such as `verbose=1` or `delete_events=true`: set only by a true word."""
    return parse_bool(value) is True
