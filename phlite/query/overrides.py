"""PostHog's filters_override (a dashboard's filters) applied to a query node (pure): its date range replaces
the node's, its property filters are ANDed to the node's (docs/insights.md "Saved insights and dashboards").
"""

from phlite import errors

DASHBOARD_FILTERS = {"date_from", "date_to", "properties", "explicitDate"}


def clean_filters(value, attr="filters"):
    """A DashboardFilter as stored and applied: {date_from, date_to, explicitDate, properties}; a 400 naming
    `attr` for anything else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.BadRequest(f"'{attr}' must be an object.", attr=attr)
    extra = sorted(k for k, v in value.items() if k not in DASHBOARD_FILTERS and v not in (None, [], {}))
    if extra:
        raise errors.BadRequest(f"Filter {extra[0]!r} of '{attr}' is not supported (phlite applies date_from, "
                                "date_to and properties).", attr=attr)
    out = {k: value[k] for k in DASHBOARD_FILTERS if value.get(k) is not None}
    for k in ("date_from", "date_to"):
        if k in out and not isinstance(out[k], str):
            raise errors.BadRequest(f"'{attr}.{k}' must be a date string.", attr=attr)
    if "properties" in out and not isinstance(out["properties"], (list, dict)):
        raise errors.BadRequest(f"'{attr}.properties' must be a list of property filters.", attr=attr)
    if "explicitDate" in out and not isinstance(out["explicitDate"], bool):
        raise errors.BadRequest(f"'{attr}.explicitDate' must be true or false.", attr=attr)
    return out


def _merge_properties(own, extra):
    if not extra:
        return own
    if not own:
        return extra
    if isinstance(own, list) and isinstance(extra, list):
        return own + extra
    group = (lambda p: p if isinstance(p, dict) else {"type": "AND", "values": p})
    return {"type": "AND", "values": [group(own), group(extra)]}


def with_filters(source, filters):
    """The query node with a dashboard's filters applied (PostHog's filters_override): its date range
    replaces the node's, its property filters are ANDed to the node's."""
    if not filters:
        return source
    node = dict(source)
    dates = {k: filters[k] for k in ("date_from", "date_to", "explicitDate") if k in filters}
    kind = node.get("kind")
    if kind == "EventsQuery":
        if "date_from" in dates:
            node["after"] = dates["date_from"]
        if "date_to" in dates:
            node["before"] = dates["date_to"]
    elif kind == "HogQLQuery":
        if dates:
            hogql_filters = dict(node.get("filters") or {})
            hogql_filters["dateRange"] = {**(hogql_filters.get("dateRange") or {}), **dates}
            node["filters"] = hogql_filters
        return node  # property filters inside HogQL's {filters} are not run (docs/insights.md "HogQLQuery")
    elif dates:
        node["dateRange"] = {**(node.get("dateRange") or {}), **dates}
    if filters.get("properties"):
        node["properties"] = _merge_properties(node.get("properties"), filters["properties"])
    return node


