"""Small decoders both wires share (capture in phlite/ingest/wire.py, flags in the flags package):
a gunzip with an output cap, the one reading of a boolean word, and of a 64-bit integer. Pure: standard library and errors.
"""

import zlib

from phlite import errors

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def too_many_json_values(data: bytes, limit: int) -> bool:
    """Whether the JSON text `data` may hold more than `limit` values, found without parsing it.

    Parsed, each value costs ~60-100 bytes of Python objects however few bytes it took on the wire
    (`{},` is three bytes, one 64-byte dict): a decompressed-bytes cap alone lets a 48 KB gzip body
    become gigabytes. Counting every `{`, `[` and `,` (inside strings too, so this over-counts) bounds
    the values from above at C speed (docs/reliability.md "Memory bombs").
    """
    if len(data) <= limit:  # every value takes at least one byte
        return False
    return data.count(b",") + data.count(b"{") + data.count(b"[") > limit


class BadGzip(ValueError):
    """Not gzip, or cut short (`truncated`); the caller words the error for its endpoint."""

    def __init__(self, reason, truncated=False):
        super().__init__(reason)
        self.truncated = truncated


def gunzip(data: bytes, cap: int) -> bytes:
    """A gzip container's content, refused with PayloadTooLarge past `cap` bytes."""
    d = zlib.decompressobj(wbits=31)  # gzip container only
    try:
        # max_length bounds the output: a bomb stops after cap+1 bytes instead of filling memory.
        out = d.decompress(data, cap + 1)
    except zlib.error as e:
        raise BadGzip(str(e)) from None
    if len(out) > cap:
        raise errors.PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")
    if not d.eof:
        raise BadGzip("truncated data", truncated=True)
    return out


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
