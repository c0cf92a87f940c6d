"""The HogQLQuery kind: request validation, compile, execute through the store, the response.

Shapes follow PostHog's HogQLQuery and HogQLQueryResponse (docs/insights.md "HogQLQuery").
"""

import uuid

from phlite import errors
from phlite.query import functions as fn
from phlite.query.dates import ms_literal, parse_date
from phlite.query.filters import to_hogql
from phlite.query.hogql import Context, HogQLError, compile_query
from phlite.query.tables import ANY, BOOL, DATE, DT, FLOAT, INT, STORE_TABLES, STR

FUNCTIONS = (fn.SCALARS, fn.AGGREGATES)
HOGQL_FIELDS = {"kind", "query", "values", "filters", "modifiers", "name", "variables", "explain", "response",
                "tags", "connectionId", "sendRawQuery", "version"}
FILTER_FIELDS = {"dateRange", "properties", "filterTestAccounts"}


def _ch_type(typ, tz):
    return {DT: f"DateTime64(6, '{tz}')", DATE: "Date", STR: "Nullable(String)", INT: "Int64",
            FLOAT: "Float64", BOOL: "UInt8", ANY: "Nullable(String)"}.get(typ, "String")


def check_fields(node, allowed, where):
    extra = sorted(set(node) - allowed)
    if extra:
        raise errors.BadRequest(f"{where}: unknown field {extra[0]!r}.", code="invalid", attr=extra[0])


def filters_hogql(filters, project, now_ms):
    """HogQLFilters as a HogQL expression for `{filters}` (timestamp >= from AND timestamp < to)."""
    if not filters:
        return None
    if not isinstance(filters, dict):
        raise errors.BadRequest("'filters' must be an object.", code="invalid", attr="filters")
    check_fields(filters, FILTER_FIELDS, "filters")
    tz = project["timezone"]
    parts = []
    date_range = filters.get("dateRange") or {}
    start = parse_date(date_range.get("date_from"), now_ms, tz, "date_from")
    end = parse_date(date_range.get("date_to"), now_ms, tz, "date_to")
    if start is not None:
        parts.append(f"timestamp >= {ms_literal(start, tz)}")
    if end is not None:
        parts.append(f"timestamp < {ms_literal(end, tz)}")
    props = to_hogql(filters.get("properties"))
    if props:
        parts.append(props)
    return " AND ".join(parts) or None


def context(project, now_ms, **kw):
    return Context(project_id=project["id"], timezone=project["timezone"], week_start_day=project["week_start_day"],
                   now_ms=now_ms, materialized=project.get("materialized") or {}, **kw)


def execute(store, ctx, text, timeout_s):
    """Compile HogQL text for ctx's project and run it: (Compiled, raw rows; DateTimes as epoch ms)."""
    compiled = compile_query(text, ctx)
    max_rows = compiled.limit + 1 if compiled.limit is not None else ctx.max_rows
    _names, rows = store.run_read_query(compiled.sql, functions=FUNCTIONS, tables=STORE_TABLES,
                                        timeout_s=timeout_s, max_rows=max_rows)
    return compiled, rows


def execute_sql(store, sql, timeout_s, max_rows):
    """Rows of SQL a runner wrote itself over STORE_TABLES (tables.py builds it, for one project)."""
    return store.run_read_query(sql, functions=FUNCTIONS, tables=STORE_TABLES, timeout_s=timeout_s,
                                max_rows=max_rows)[1]


def run_hogql(store, project, node, now_ms, timeout_s):
    check_fields(node, HOGQL_FIELDS, "HogQLQuery")
    text = node.get("query")
    if not isinstance(text, str):
        raise HogQLError("HogQLQuery needs a 'query' string.", attr="query")
    values = node.get("values") or {}
    if not isinstance(values, dict):
        raise HogQLError("'values' must be an object.", attr="values")
    tz = project["timezone"]
    ctx = context(project, now_ms, values=values, filters_hogql=filters_hogql(node.get("filters"), project, now_ms))
    compiled, rows = execute(store, ctx, text, timeout_s)
    has_more = None
    if compiled.limit is not None:
        has_more = len(rows) > compiled.limit
        rows = rows[:compiled.limit]
    results = [_row(r, compiled.types, tz) for r in rows]
    return {
        "results": results,
        "columns": compiled.columns,
        "types": [[c, _ch_type(t, tz)] for c, t in zip(compiled.columns, compiled.types)],
        "hasMore": has_more,
        "limit": compiled.limit,
        "offset": 0 if compiled.limit is not None else None,
        "hogql": compiled.hogql,
        "clickhouse": None,
        "query": text,
        "timings": [],
        "error": None,
        "modifiers": node.get("modifiers") or {},
        "explain": None,
        "metadata": None,
    }


def _row(row, types, tz):
    out = list(row)
    for i, t in enumerate(types):
        v = out[i]
        if t == DT and isinstance(v, int):
            out[i] = fn.format_datetime(v, tz)
        elif isinstance(v, bytes):
            out[i] = str(uuid.UUID(bytes=v)) if len(v) == 16 else v.hex()
    return out
