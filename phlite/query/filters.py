"""PostHog property filters ({key, value, operator, type}) as HogQL expressions (pure).

Keys and values are written as HogQL string literals, never spliced as names, so a filter cannot change
the shape of the query it is put into (docs/insights.md "Property filters").
"""

from phlite import errors


def literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def field(key, type_="event"):
    """The HogQL expression reading property `key` of an event or its person."""
    if not isinstance(key, str) or not key:
        raise errors.BadRequest("A property filter needs a 'key' string.", code="invalid", attr="properties")
    if type_ == "person":
        return f"person.properties[{literal(key)}]"
    if type_ in ("event", None):
        return f"properties[{literal(key)}]"
    raise errors.BadRequest(f"Property filters of type {type_!r} are not supported.", code="invalid",
                            attr="properties")


def _values(value):
    if isinstance(value, list):
        return value
    return [value]


def _number(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v)
    try:
        return repr(float(v))
    except (TypeError, ValueError):
        raise errors.BadRequest(f"Expected a number, not {v!r}.", code="invalid", attr="properties") from None


def one(f):
    """One filter -> a HogQL boolean expression."""
    if not isinstance(f, dict):
        raise errors.BadRequest("Each property filter must be an object.", code="invalid", attr="properties")
    type_ = f.get("type", "event")
    if type_ == "hogql":
        key = f.get("key")
        if not isinstance(key, str) or not key.strip():
            raise errors.BadRequest("A hogql filter needs a 'key' expression.", code="invalid", attr="properties")
        return f"({key})"
    x = field(f.get("key"), type_)
    op = f.get("operator") or "exact"
    value = f.get("value")
    values = _values(value)
    if op in ("exact", "in"):
        if not values:
            return "true"
        if len(values) == 1:
            return f"{x} = {literal(_text(values[0]))}"
        return f"{x} IN ({', '.join(literal(_text(v)) for v in values)})"
    if op in ("is_not", "not_in"):
        if not values:
            return "true"
        return "(" + " AND ".join(f"{x} != {literal(_text(v))}" for v in values) + ")"
    if op in ("icontains", "not_icontains"):
        like = " OR ".join(f"toString({x}) ILIKE {literal('%' + _text(v) + '%')}" for v in values) or "false"
        return f"({like})" if op == "icontains" else f"coalesce(NOT ({like}), true)"
    if op in ("regex", "not_regex"):
        test = " OR ".join(f"coalesce(match(toString({x}), {literal(_text(v))}), false)" for v in values) or "false"
        return f"({test})" if op == "regex" else f"(NOT ({test}))"
    if op in ("gt", "gte", "lt", "lte"):
        sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        return f"toFloat({x}) {sign} {_number(values[0] if values else None)}"
    if op == "is_set":
        return f"{x} IS NOT NULL"
    if op == "is_not_set":
        return f"{x} IS NULL"
    if op in ("is_date_before", "is_date_after", "is_date_exact"):
        sign = {"is_date_before": "<", "is_date_after": ">", "is_date_exact": "="}[op]
        return f"toDateTime({x}) {sign} toDateTime({literal(_text(values[0] if values else ''))})"
    raise errors.BadRequest(f"Unsupported property filter operator {op!r}.", code="invalid", attr="properties")


def _text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def to_hogql(properties):
    """A list (ANDed) or a {type: AND|OR, values: [...]} group of filters -> HogQL, or None for none."""
    if not properties:
        return None
    if isinstance(properties, dict):
        kind = properties.get("type", "AND")
        if kind not in ("AND", "OR"):
            raise errors.BadRequest("A property group's type must be AND or OR.", code="invalid", attr="properties")
        parts = [p for p in (_group_item(v) for v in properties.get("values") or []) if p]
        if not parts:
            return None
        return "(" + f" {kind} ".join(parts) + ")"
    if not isinstance(properties, list):
        raise errors.BadRequest("'properties' must be a list or a group.", code="invalid", attr="properties")
    parts = [one(f) for f in properties]
    return "(" + " AND ".join(parts) + ")" if parts else None


def _group_item(v):
    if isinstance(v, dict) and "values" in v and v.get("type") in ("AND", "OR"):
        return to_hogql(v)
    return one(v)
