"""WebOverviewQuery: visitors, views, sessions, session duration and bounce rate, with the previous
period (docs/insights.md "WebOverviewQuery").

Sessions are `$session_id`s of `$pageview`/`$screen` events, attributed to the period holding their
first event; a session's duration and bounce read all its events.
"""

from phlite import errors
from phlite.query import dates
from phlite.query import functions as fn
from phlite.query.filters import to_hogql
from phlite.query.runner import context, execute
from phlite.query.trends import INSIGHT_MAX_ROWS

WEB_FIELDS = {"kind", "dateRange", "properties", "compareFilter", "filterTestAccounts", "conversionGoal",
              "modifiers", "response", "version", "sampling", "useSessionsTable", "includeRevenue", "tags",
              "doPathCleaning"}
# The person after merges (its row id), or the distinct id of an event without one: counted, never shown.
ACTOR = "__actor"
BOUNCE_SECONDS = 10  # PostHog's bounceRateDurationSeconds default
LOOKBACK_MS = 24 * 3_600_000  # a session's events before the window, to find where it started


def _sessions(store, ctx, tz, lo, hi, props, timeout_s):
    where = ["$session_id IS NOT NULL", f"timestamp >= {dates.ms_literal(lo - LOOKBACK_MS, tz)}",
             f"timestamp <= {dates.ms_literal(hi, tz)}"]
    if props:
        where.append(props)
    text = (f"SELECT $session_id AS s, min(timestamp) AS first, max(timestamp) AS last,"
            f" countIf(event IN ('$pageview', '$screen') AND timestamp >= {dates.ms_literal(lo, tz)}) AS views,"
            f" countIf(event IN ('$pageview', '$screen')) AS all_views,"
            f" countIf(event = '$autocapture') AS autocaptures,"
            f" min(if(event IN ('$pageview', '$screen'), distinct_id, NULL)) AS visitor"
            f" FROM events WHERE {' AND '.join(where)} GROUP BY s LIMIT {INSIGHT_MAX_ROWS}")
    rows = [r for r in execute(store, ctx, text, timeout_s)[1] if r[1] >= lo and r[3]]
    # A session's visitor is the person (after merges) of the least distinct id of its pageviews, looked up
    # once per session rather than joined to every event (PostHog takes any person of the session).
    persons = store.person_ids_for(ctx.project_id, {r[6] for r in rows})
    out = []
    for s, first, last, views, all_views, autocaptures, distinct_id in rows:
        visitor = persons.get(distinct_id, distinct_id)
        duration = (last - first) // 1000
        bounce = None if not all_views else not (all_views > 1 or autocaptures > 0 or duration >= BOUNCE_SECONDS)
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
