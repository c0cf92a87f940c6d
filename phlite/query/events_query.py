"""EventsQuery: the events table of PostHog's UI (docs/insights.md "EventsQuery").

The `select` entries are HogQL expressions; `*` and `person` are whole objects, built here from their
fields. An aggregate among them turns on GROUP BY over the other columns, as PostHog does.
"""

import orjson
from sqlglot import exp

from phlite import errors
from phlite.query import dates
from phlite.query import functions as fn
from phlite.query.filters import literal, to_hogql
from phlite.query.hogql import MAX_LIMIT, parse
from phlite.query.runner import context, execute
from phlite.query.tables import DT

EVENTS_FIELDS = {"kind", "select", "where", "properties", "fixedProperties", "event", "events", "personId", "after",
                 "before", "orderBy", "limit", "offset", "filterTestAccounts", "modifiers", "response", "version",
                 "source", "actionId", "tags"}
STAR = ["uuid", "event", "properties", "timestamp", "team_id", "distinct_id", "elements_chain", "created_at"]
PERSON = ["person_id", "person.created_at", "person.properties", "distinct_id"]
AGGREGATES = (exp.AggFunc, exp.CountIf, exp.CombinedAggFunc, exp.AnonymousAggFunc, exp.Quantile)


def bad(detail, attr=None):
    return errors.BadRequest(detail, code="invalid", attr=attr)


def _is_aggregate(text):
    tree, _ = parse(f"SELECT {text}")
    return any(isinstance(n, AGGREGATES) for n in tree.expressions[0].walk())


def run_events(store, project, node, now_ms, timeout_s):
    extra = sorted(set(node) - EVENTS_FIELDS)
    if extra:
        raise bad(f"EventsQuery: unknown field {extra[0]!r}.", extra[0])
    tz = project["timezone"]
    select = node.get("select") or ["*"]
    if not isinstance(select, list) or not all(isinstance(s, str) and s.strip() for s in select):
        raise bad("'select' must be a list of HogQL expressions.", "select")
    cols, spans, aggregated, plain = [], [], False, []
    for s in select:
        key = s.strip()
        if key == "*":
            spans.append(("*", len(cols), len(STAR)))
            cols += STAR
        elif key == "person":
            spans.append(("person", len(cols), len(PERSON)))
            cols += PERSON
        else:
            agg = _is_aggregate(key)
            aggregated |= agg
            if not agg:
                plain.append(len(cols) + 1)
            spans.append(("expr", len(cols), 1))
            cols.append(f"({key}\n)")  # the newline ends a "-- Label" comment
    where = []
    after = node.get("after", "-24h")
    lo = dates.parse_date(after, now_ms, tz, "after") if after != "all" else None
    if lo is not None:
        where.append(f"timestamp > {dates.ms_literal(lo, tz)}")
    before = node.get("before")
    hi = dates.parse_date(before, now_ms, tz, "before") if before else now_ms + 5000
    where.append(f"timestamp < {dates.ms_literal(hi, tz)}")
    if node.get("event"):
        where.append(f"event = {literal(node['event'])}")
    if node.get("events"):
        where.append(f"event IN ({', '.join(literal(e) for e in node['events'])})")
    if node.get("personId"):
        where.append(f"person_id = {literal(node['personId'])}")
    for f in (to_hogql(node.get("properties")), to_hogql(node.get("fixedProperties"))):
        if f:
            where.append(f)
    having = []
    for w in node.get("where") or []:
        if not isinstance(w, str):
            raise bad("'where' must be a list of HogQL expressions.", "where")
        (having if _is_aggregate(w) else where).append(f"({w}\n)")
    limit = node.get("limit") or 100
    offset = node.get("offset") or 0
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT or not isinstance(offset, int) or offset < 0:
        raise bad(f"'limit' must be 1..{MAX_LIMIT} and 'offset' >= 0.", "limit")
    order = node.get("orderBy")
    if not order:
        lowered = [s.strip() for s in select]
        if "count()" in lowered:
            order = ["count() DESC"]
        elif aggregated:
            order = [next(f"{s} DESC" for s in lowered if s not in ("*", "person") and _is_aggregate(s))]
        elif "timestamp" in lowered or "*" in lowered:
            order = ["timestamp DESC"]
        else:
            order = [f"{lowered[0] if lowered[0] not in ('*', 'person') else 'timestamp'} ASC"]
    text = f"SELECT {', '.join(cols)} FROM events WHERE {' AND '.join(where)}"
    if aggregated and plain:
        text += " GROUP BY " + ", ".join(map(str, plain))
    if having:
        text += " HAVING " + " AND ".join(having)
    text += f" ORDER BY {', '.join(order)} LIMIT {limit + 1} OFFSET {offset}"
    compiled, rows = execute(store, context(project, now_ms), text, timeout_s)
    has_more = len(rows) > limit
    rows = rows[:limit]
    results = []
    for row in rows:
        out = []
        for kind, i, n in spans:
            if kind == "*":
                v = dict(zip(STAR, row[i:i + n]))
                v["properties"] = orjson.loads(v["properties"]) if v["properties"] else {}
                v["timestamp"] = fn.format_datetime(v["timestamp"], tz)
                v["created_at"] = fn.format_datetime(v["created_at"], tz)
                out.append(v)
            elif kind == "person":
                pid, created, props, did = row[i:i + n]
                if pid is None:
                    out.append({"distinct_id": did})
                else:
                    out.append({"uuid": pid, "created_at": fn.format_datetime(created, tz),
                                "properties": orjson.loads(props) if props else {}, "distinct_id": did})
            else:
                v = row[i]
                out.append(fn.format_datetime(v, tz) if compiled.types[i] == DT and isinstance(v, int) else v)
        results.append(out)
    types = []
    for kind, i, n in spans:
        types.append("Tuple(...)" if kind != "expr" else
                     {DT: f"DateTime64(6, '{tz}')"}.get(compiled.types[i], "String"))
    return {
        "results": results,
        "columns": select,
        "types": types,
        "hogql": text,
        "hasMore": has_more,
        "limit": limit,
        "offset": offset,
        "timings": [],
        "error": None,
        "modifiers": node.get("modifiers") or {},
    }
