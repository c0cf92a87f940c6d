"""How the flags server reads a JSON value as text or as a number (docs/flags-protocol.md "Flags: how values are read").

The server is Rust (serde_json): a string is itself, anything else is its compact JSON, and numbers
parse with Rust's f64 grammar. Matching that byte for byte decides icontains/exact/gt results.
"""

import json
import math
import re

# Rust's `str::parse::<f64>` grammar: no whitespace, no underscores, inf/infinity/nan in any case.
_RUST_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)


def _float_repr(value: float) -> str:
    """serde_json's float text (ryu): "5.0", "1e16", "1e-7", "0.00001"; NaN/inf serialise as null."""
    if not math.isfinite(value):
        return "null"
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exponent_text = text.split("e")
    exponent = int(exponent_text)
    if exponent == -5:
        # Python switches to exponents one digit earlier than ryu does.
        sign = "-" if mantissa.startswith("-") else ""
        digits = mantissa.lstrip("-").replace(".", "")
        return f"{sign}0.0000{digits}"
    return f"{mantissa}e{exponent}"


def json_text(value) -> str:
    """str(x) of docs/flags-protocol.md "Flags: how values are read": a string as is, else compact JSON with sorted keys (serde_json's Map)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json_item(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(f"{_json_str(str(k))}:{_json_item(v)}" for k, v in items) + "}"
    return _json_str(str(value))


def _json_item(value) -> str:
    return _json_str(value) if isinstance(value, str) else json_text(value)


def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def to_number(value) -> float | None:
    """The f64 the server reads from a value (number, or numeric text), else None."""
    if value is True or value is False:
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    text = json_text(value)
    if _RUST_FLOAT.fullmatch(text) is None:
        return None
    return float(text)
