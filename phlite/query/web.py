"""WebOverviewQuery: visitors, views, sessions, session duration and bounce rate, with the previous
period (docs/insights.md "WebOverviewQuery").

Sessions are `$session_id`s of `$pageview`/`$screen` events, attributed to the period holding their
first event; a session's duration and bounce read all its events.
"""

from phlite import errors
from phlite.query import dates
from phlite.query import functions as fn
from phlite.query.filters import to_hogql
from phlite.query.rollup import aligned, rollup_context
from phlite.query.hogql import compile_query
from phlite.query.runner import FUNCTIONS, context
from phlite.query.tables import STORE_TABLES, session_hour_sql, web_metrics_sql
from phlite.query.trends import INSIGHT_MAX_ROWS

WEB_FIELDS = {"kind", "dateRange", "properties", "compareFilter", "filterTestAccounts", "conversionGoal",
              "modifiers", "response", "version", "sampling", "useSessionsTable", "includeRevenue", "tags",
              "doPathCleaning"}
# The person after merges (its row id), or the distinct id of an event without one: counted, never shown.
ACTOR = "__actor"
BOUNCE_SECONDS = 10  # PostHog's bounceRateDurationSeconds default
LOOKBACK_MS = 24 * 3_600_000  # a session's events before the window, to find where it started


def _sessions_sql(store, ctx, tz, lo, hi, props):
    """SQL of (s, first, last, views, autocaptures, visitor) per session with a pageview or screen in
    [lo, hi], over its events from LOOKBACK_MS before lo to hi."""
    read_lo = lo - LOOKBACK_MS
    if not props and ctx.materialized.get("$session_id") == "mp_session_id" and aligned((lo, hi + 1)):
        # Every hour of [read_lo, hi] lies wholly inside it: the roll-up answers (phlite/query/rollup.py).
        rolled = rollup_context(store, ctx, read_lo, hi)
        if rolled is not None:
            return session_hour_sql(ctx.project_id, read_lo, hi + 1, rolled.rollup_marked)
    where = ["$session_id IS NOT NULL", f"timestamp >= {dates.ms_literal(read_lo, tz)}",
             f"timestamp <= {dates.ms_literal(hi, tz)}"]
    if props:
        where.append(props)
    # Sessions that start before lo are dropped (web_metrics_sql), so the views of those kept lie in [lo, hi].
    text = (f"SELECT $session_id AS s, min(timestamp) AS first, max(timestamp) AS last,"
            f" countIf(event IN ('$pageview', '$screen')) AS views,"
            f" countIf(event = '$autocapture') AS autocaptures,"
            f" min(if(event IN ('$pageview', '$screen'), distinct_id, NULL)) AS visitor"
            f" FROM events WHERE {' AND '.join(where)} GROUP BY s HAVING views > 0 LIMIT {INSIGHT_MAX_ROWS}")
    return compile_query(text, ctx).sql


def _metrics(store, ctx, tz, lo, hi, props, timeout_s):
    sql = web_metrics_sql(ctx.project_id, _sessions_sql(store, ctx, tz, lo, hi, props), lo, BOUNCE_SECONDS)
    _names, [row] = store.run_read_query(sql, functions=FUNCTIONS, tables=STORE_TABLES, timeout_s=timeout_s,
                                         max_rows=1)
    return dict(zip(("visitors", "views", "sessions", "session duration", "bounce rate"), row))


def _change(value, previous):
    if value is None or previous in (None, 0):
        return None
    return round(100 * (value - previous) / previous)


def run_web_overview(store, project, node, now_ms, timeout_s):
    extra = sorted(set(node) - WEB_FIELDS)
    if extra:
        raise errors.BadRequest(f"WebOverviewQuery: unknown field {extra[0]!r}.", code="invalid", attr=extra[0])
    if node.get("conversionGoal"):
        raise errors.BadRequest("Conversion goals are not supported yet.", code="invalid", attr="conversionGoal")
    tz = project["timezone"]
    start, end, lower = dates.resolve_range(node.get("dateRange"), "day", now_ms, tz, project["week_start_day"])
    if start is None:
        raise errors.BadRequest("WebOverviewQuery needs a date_from.", code="invalid", attr="date_from")
    ctx = context(project, now_ms, max_rows=INSIGHT_MAX_ROWS)
    props = to_hogql(node.get("properties"))
    current = _metrics(store, ctx, tz, lower, end, props, timeout_s)
    previous = None
    if (node.get("compareFilter") or {}).get("compare"):
        length = end - lower + 1
        previous = _metrics(store, ctx, tz, lower - length, lower - 1, props, timeout_s)
    kinds = {"visitors": "unit", "views": "unit", "sessions": "unit", "session duration": "duration_s",
             "bounce rate": "percentage"}
    results = []
    for key, kind in kinds.items():
        value = current[key]
        prev = previous[key] if previous else None
        results.append({"key": key, "kind": kind, "isIncreaseBad": True if key == "bounce rate" else None,
                        "value": value, "previous": prev, "changeFromPreviousPct": _change(value, prev)})
    fmt = "%Y-%m-%d %H:%M:%S"
    return {"results": results, "samplingRate": {"numerator": 1}, "usedPreAggregatedTables": False,
            "dateFrom": fn.to_local(lower, tz).strftime(fmt), "dateTo": fn.to_local(end, tz).strftime(fmt),
            "hogql": None, "timings": [], "error": None, "modifiers": node.get("modifiers") or {}}
