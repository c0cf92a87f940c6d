"""RetentionQuery: of the persons who did the target event in period k, how many did the returning
event in period k + j (docs/insights.md "RetentionQuery")."""

from phlite import errors
from phlite.query import dates
from phlite.query import functions as fn
from phlite.query.filters import literal, to_hogql
from phlite.query.rollup import aligned, rollup_context
from phlite.query.runner import context, execute
from phlite.query.trends import INSIGHT_MAX_ROWS

RETENTION_FIELDS = {"kind", "retentionFilter", "dateRange", "properties", "filterTestAccounts", "breakdownFilter",
                    "aggregation_group_type_index", "samplingFactor", "modifiers", "response", "version", "tags",
                    "dataColorTheme"}
PERIODS = {"Hour": "hour", "Day": "day", "Week": "week", "Month": "month"}
# The person after merges (its row id), or the distinct id of an event without one: counted, never shown.
ACTOR = "__actor"


def bad(detail, attr=None):
    return errors.BadRequest(detail, code="invalid", attr=attr)


def _entity(e, default="$pageview"):
    e = e or {"id": default, "type": "events"}
    if e.get("type", "events") != "events":
        raise bad("Only event entities are supported in retention (no actions yet).", "retentionFilter")
    parts = []
    event = e.get("id", default)
    if event is not None:
        parts.append(f"event = {literal(event)}")
    f = to_hogql(e.get("properties"))
    if f:
        parts.append(f)
    return " AND ".join(parts) or "true"


def _filtered(e):
    return bool(e and to_hogql(e.get("properties")))


def run_retention(store, project, node, now_ms, timeout_s):
    extra = sorted(set(node) - RETENTION_FIELDS)
    if extra:
        raise bad(f"RetentionQuery: unknown field {extra[0]!r}.", extra[0])
    rf = node.get("retentionFilter") or {}
    if (node.get("breakdownFilter") or {}).get("breakdown"):
        raise bad("Retention breakdowns are not supported yet.", "breakdownFilter")
    period = rf.get("period") or "Day"
    unit = PERIODS.get(period)
    if unit is None:
        raise bad(f"Unknown period {period!r}: use Hour, Day, Week or Month.", "period")
    # The schema's default is 8; PostHog's runner falls back to 7 only for an explicit null.
    total = rf.get("totalIntervals", 8)
    total = 7 if total is None else int(total)
    if not 1 <= total <= 400:
        raise bad("'totalIntervals' must be between 1 and 400.", "totalIntervals")
    kind = rf.get("retentionType") or "retention_recurring"
    if kind not in ("retention_recurring", "retention_first_time", "retention_first_ever_occurrence"):
        raise bad(f"Unknown retentionType {kind!r}.", "retentionType")
    tz, ws = project["timezone"], project["week_start_day"]
    dr = node.get("dateRange") or {}
    to = dates.parse_date(dr.get("date_to"), now_ms, tz, "date_to") if dr.get("date_to") else now_ms
    end = fn.add_interval(fn.start_of(to, unit, tz, ws), 1, unit, tz)  # exclusive
    if dr.get("date_from") and dr["date_from"] != "all":
        start = fn.start_of(dates.parse_date(dr["date_from"], now_ms, tz, "date_from"), unit, tz, ws)
    else:
        start = fn.add_interval(end, -total, unit, tz)
    starts = []
    b = start
    while b < end and len(starts) <= 400:
        starts.append(b)
        b = fn.add_interval(b, 1, unit, tz)
    index = {b: i for i, b in enumerate(starts)}
    bucket = {"hour": "toStartOfHour", "day": "toStartOfDay", "week": "toStartOfWeek",
              "month": "toStartOfMonth"}[unit]
    glob = to_hogql(node.get("properties"))
    target = _entity(rf.get("targetEntity"))
    returning = _entity(rf.get("returningEntity"))
    window = f"timestamp >= {dates.ms_literal(start, tz)} AND timestamp < {dates.ms_literal(end, tz)}"
    ctx = context(project, now_ms, max_rows=INSIGHT_MAX_ROWS)
    # Persons per period of events without property filters: the hourly roll-up holds that, exactly,
    # when the periods start on UTC hours (phlite/query/rollup.py).
    if not glob and not _filtered(rf.get("targetEntity")) and not _filtered(rf.get("returningEntity")) \
            and aligned([*starts, end]):
        # first-time retention reads every actor's first event, from all of history
        first = start if kind == "retention_recurring" else -(1 << 62)
        ctx = rollup_context(store, ctx, first, end - 1) or ctx
    answers = {}

    def q(text):
        # The same question twice (a returning event that is the target event) is read once.
        if text not in answers:
            answers[text] = execute(store, ctx, text + f" LIMIT {INSIGHT_MAX_ROWS}", timeout_s)[1]
        return answers[text]

    g = f" AND {glob}" if glob else ""
    cohorts = {}  # period index -> actors
    if kind == "retention_recurring":
        for a, b in q(f"SELECT {ACTOR} AS a, {bucket}(timestamp) AS b FROM events WHERE {target} AND {window}{g}"
                      " GROUP BY a, b"):
            if b in index:
                cohorts.setdefault(index[b], set()).add(a)
    else:
        # First time looks at all history: the actor's first matching event (first ever: first event at all,
        # which must then match).
        first_event = (rf.get("targetEntity") or {}).get("id", "$pageview")
        cond = f"{target}{g}" if kind == "retention_first_time" else f"event = {literal(first_event)}"
        text = f"SELECT {ACTOR} AS a, min(timestamp) AS t FROM events WHERE {cond} GROUP BY a"
        firsts = q(text)
        if kind == "retention_first_ever_occurrence":
            ok = {a for a, in q(f"SELECT DISTINCT {ACTOR} AS a FROM events WHERE {target}{g} AND {window}")}
            firsts = [(a, t) for a, t in firsts if a in ok]
        for a, t in firsts:
            b = fn.start_of(t, unit, tz, ws)
            if b in index:
                cohorts.setdefault(index[b], set()).add(a)
    returns = {}
    for a, b in q(f"SELECT {ACTOR} AS a, {bucket}(timestamp) AS b FROM events WHERE {returning} AND {window}{g}"
                  " GROUP BY a, b"):
        if b in index:
            returns.setdefault(index[b], set()).add(a)
    results = []
    for k, b in enumerate(starts):
        members = cohorts.get(k, set())
        values = []
        for j in range(total):
            if j == 0:
                count = len(members)
            else:
                count = len(members & returns.get(k + j, set())) if k + j < len(starts) else 0
            values.append({"count": float(count), "label": f"{period} {j}"})
        results.append({"date": dates.iso(b, tz), "label": f"{period} {k}", "values": values})
    return {"results": results, "hogql": None, "timings": [], "error": None, "modifiers": node.get("modifiers") or {}}
