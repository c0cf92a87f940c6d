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
from phlite.query.runner import FUNCTIONS, context, execute
from phlite.query.tables import STORE_TABLES, session_hour_sql
from phlite.query.trends import INSIGHT_MAX_ROWS

WEB_FIELDS = {"kind", "dateRange", "properties", "compareFilter", "filterTestAccounts", "conversionGoal",
              "modifiers", "response", "version", "sampling", "useSessionsTable", "includeRevenue", "tags",
              "doPathCleaning"}
# The person after merges (its row id), or the distinct id of an event without one: counted, never shown.
ACTOR = "__actor"
BOUNCE_SECONDS = 10  # PostHog's bounceRateDurationSeconds default
LOOKBACK_MS = 24 * 3_600_000  # a session's events before the window, to find where it started


def _session_rows(store, ctx, tz, lo, hi, props, timeout_s):
    """(session, first, last, views, autocaptures, least pageview distinct id) of the sessions with a
    pageview or screen in [lo, hi], over their events from LOOKBACK_MS before lo to hi."""
    read_lo = lo - LOOKBACK_MS
    if not props and ctx.materialized.get("$session_id") == "mp_session_id" and aligned((lo, hi + 1)):
        # Every hour of [read_lo, hi] lies wholly inside it: the roll-up answers (phlite/query/rollup.py).
        rolled = rollup_context(store, ctx, read_lo, hi)
        if rolled is not None:
            return store.run_read_query(session_hour_sql(ctx.project_id, read_lo, hi + 1, rolled.rollup_marked),
                                        functions=FUNCTIONS, tables=STORE_TABLES, timeout_s=timeout_s,
                                        max_rows=INSIGHT_MAX_ROWS)[1]
    where = ["$session_id IS NOT NULL", f"timestamp >= {dates.ms_literal(read_lo, tz)}",
             f"timestamp <= {dates.ms_literal(hi, tz)}"]
    if props:
        where.append(props)
    # Sessions that start before lo are dropped by the caller, so the views of those kept all lie in [lo, hi].
    text = (f"SELECT $session_id AS s, min(timestamp) AS first, max(timestamp) AS last,"
            f" countIf(event IN ('$pageview', '$screen')) AS views,"
            f" countIf(event = '$autocapture') AS autocaptures,"
            f" min(if(event IN ('$pageview', '$screen'), distinct_id, NULL)) AS visitor"
            f" FROM events WHERE {' AND '.join(where)} GROUP BY s HAVING views > 0 LIMIT {INSIGHT_MAX_ROWS}")
    return execute(store, ctx, text, timeout_s)[1]


def _sessions(store, ctx, tz, lo, hi, props, timeout_s):
    rows = [r for r in _session_rows(store, ctx, tz, lo, hi, props, timeout_s) if r[1] >= lo]
    # A session's visitor is the person (after merges) of the least distinct id of its pageviews, looked up
    # once per session rather than joined to every event (PostHog takes any person of the session).
    persons = store.person_ids_for(ctx.project_id, {r[5] for r in rows})
    out = []
    for s, first, last, views, autocaptures, distinct_id in rows:
        visitor = persons.get(distinct_id, distinct_id)
        duration = (last - first) // 1000
        bounce = not (views > 1 or autocaptures > 0 or duration >= BOUNCE_SECONDS)
        out.append((visitor, views, duration, bounce))
    return out


def _metrics(sessions):
    bounces = [b for *_, b in sessions if b is not None]
    return {
        "visitors": len({v for v, *_ in sessions if v is not None}),
        "views": sum(s[1] for s in sessions),
        "sessions": len(sessions),
        "session duration": (sum(s[2] for s in sessions) / len(sessions)) if sessions else None,
        "bounce rate": (100 * sum(bounces) / len(bounces)) if bounces else None,
    }


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
    current = _metrics(_sessions(store, ctx, tz, lower, end, props, timeout_s))
    previous = None
    if (node.get("compareFilter") or {}).get("compare"):
        length = end - lower + 1
        previous = _metrics(_sessions(store, ctx, tz, lower - length, lower - 1, props, timeout_s))
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
