"""PostHog property-filter objects (`?properties=` of the events API) -> one SQL condition on the
event's stored JSON properties (docs/protocol.md "Events API: property filters"). SQL only here and in
the store; raises errors.BadRequest naming what it cannot read."""

from phlite import errors

MAX_FILTERS = 50
MAX_DEPTH = 5
OPERATORS = ("exact", "is_not", "icontains", "not_icontains", "gt", "gte", "lt", "lte", "is_set", "is_not_set")
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _bad(detail):
    return errors.BadRequest(detail, attr="properties")


def _text(value):
    # The text form both sides are compared in: JSON booleans as true/false, numbers and strings as text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise _bad("A property filter value must be a string, a number, a boolean or a list of them.")


def _like(value):
    escaped = _text(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filter(f, params):
    if not isinstance(f, dict):
        raise _bad("Each property filter must be an object {\"key\", \"value\", \"operator\", \"type\"}.")
    if f.get("type", "event") != "event":
        raise _bad(f"Only event property filters are supported here, not type {f.get('type')!r}.")
    key, op, value = f.get("key"), f.get("operator") or "exact", f.get("value")
    if not isinstance(key, str) or not key or '"' in key:
        raise _bad("A property filter needs a `key` (a property name without '\"').")
    if op not in OPERATORS:
        raise _bad(f"Unsupported property filter operator {op!r}; supported: {', '.join(OPERATORS)}.")
    path = f'$."{key}"'
    kind = "json_type(properties, ?)"
    text = (f"(CASE {kind} WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'"
            " ELSE CAST(json_extract(properties, ?) AS TEXT) END)")
    if op in ("is_set", "is_not_set"):
        params.append(path)
        return f"COALESCE({kind}, 'null') {'!=' if op == 'is_set' else '='} 'null'"
    values = value if isinstance(value, list) else [value]
    if not values or value is None:
        raise _bad(f"Property filter on {key!r} needs a `value`.")
    if op in ("exact", "is_not"):
        texts = [_text(v) for v in values]
        params.extend([path, path, *texts])
        cond = f"{text} IN ({', '.join('?' * len(texts))})"
        return cond if op == "exact" else f"COALESCE(NOT {cond}, 1)"
    if op in ("icontains", "not_icontains"):
        conds = []
        for v in values:
            params.extend([path, path, _like(v)])
            conds.append(f"{text} LIKE ? ESCAPE '\\'")
        cond = "(" + " OR ".join(conds) + ")"
        return cond if op == "icontains" else f"COALESCE(NOT {cond}, 1)"
    try:
        number = float(values[0])
    except (TypeError, ValueError):
        raise _bad(f"Operator {op!r} needs a numeric value.") from None
    params.extend([path, path, number])
    return (f"({kind} IN ('integer', 'real') AND json_extract(properties, ?) {_COMPARE[op]} ?)")


def _group(node, params, depth, count):
    if depth > MAX_DEPTH:
        raise _bad(f"Property groups may nest at most {MAX_DEPTH} levels.")
    if isinstance(node, list):
        kind, values = "AND", node
    elif isinstance(node, dict) and node.get("type") in ("AND", "OR") and isinstance(node.get("values"), list):
        kind, values = node["type"], node["values"]
    else:
        count[0] += 1
        if count[0] > MAX_FILTERS:
            raise _bad(f"At most {MAX_FILTERS} property filters.")
        return _filter(node, params)
    if not values:
        return "1"
    return "(" + f" {kind} ".join(_group(v, params, depth + 1, count) for v in values) + ")"


def property_condition(filters) -> tuple[str, list]:
    """A list of filters (all must match) or a group {"type": "AND"|"OR", "values": [...]} -> (SQL, params)."""
    params: list = []
    return _group(filters, params, 0, [0]), params
