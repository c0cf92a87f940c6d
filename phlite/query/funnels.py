"""FunnelsQuery (steps view): how many persons did step 1, then step 2 within the conversion window,
and so on, with per-step conversion times (docs/insights.md "FunnelsQuery").

The store returns the matching events in time order (one HogQL query), grouped here by person; the walk over them is
plain Python here, following PostHog's rules (window measured from the entry, inclusive; a new entry
starts a new attempt; the first attempt to get furthest wins; exclusions remove the person).
"""

import statistics

from phlite import errors
from phlite.query import dates
from phlite.query.filters import field, literal, to_hogql
from phlite.query.runner import context, execute
from phlite.query.trends import INSIGHT_MAX_ROWS

FUNNEL_FIELDS = {"kind", "series", "dateRange", "properties", "filterTestAccounts", "funnelsFilter", "breakdownFilter",
                 "interval", "aggregation_group_type_index", "samplingFactor", "modifiers", "response", "version",
                 "dataColorTheme", "tags"}
UNIT_MS = {"second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000, "week": 7 * 86_400_000,
           "month": 31 * 86_400_000}  # a funnel's month is 31 days, as PostHog's
# The person after merges (its row id), or the distinct id of an event without one: counted, never shown.
ACTOR = "__actor"


def bad(detail, attr=None):
    return errors.BadRequest(detail, code="invalid", attr=attr)


def _match(serie):
    parts = []
    if serie.get("event") is not None:
        parts.append(f"event = {literal(serie['event'])}")
    f = to_hogql(serie.get("properties"))
    if f:
        parts.append(f)
    return " AND ".join(parts) or "true"


def walk_ordered(events, n, window, strict=False):
    """events: [(ts, step indexes in descending order)] in time order -> the winning attempt's step times.

    holder[k] is the most recent attempt (its step times) that reached step k. Each event's steps are
    tried last first, each extending the attempt that holds the step before, so one event never moves
    one attempt forward twice; at equal timestamps lower steps go first, so a tie can convert."""
    holder = [None] * n
    best = ()
    if any(a[0] == b[0] for a, b in zip(events, events[1:])):
        events = sorted(events, key=lambda e: (e[0], e[1][-1] if e[1] else n))
    for idx, (ts, steps) in enumerate(events):
        changed = set()
        for k in steps:
            if k == 0:
                holder[0] = (ts,)
            else:
                prev = holder[k - 1]
                if prev is None or ts - prev[0] > window:
                    continue
                if holder[k] is not None and holder[k][0] == prev[0]:
                    continue  # this attempt already reached step k: it keeps its first time
                holder[k] = prev + (ts,)
            changed.add(k)
            if len(holder[k]) > len(best):
                best = holder[k]
        if strict:
            tie = (idx + 1 < len(events) and events[idx + 1][0] == ts) or (idx and events[idx - 1][0] == ts)
            if not tie:
                # Strict order: any other event in between breaks every attempt it did not extend.
                for k in range(n):
                    if k not in changed:
                        holder[k] = None
        if len(best) == n:
            break
    return list(best)


def walk_unordered(events, n, window):
    best = []
    for idx, (entry, steps) in enumerate(events):
        if not steps:
            continue
        first = {}
        for ts, s in events[idx:]:
            if ts - entry > window:
                break
            for k in s:
                first.setdefault(k, ts)
        times = sorted(first.values())
        if len(times) > len(best):
            best = times
        if len(best) == n:
            break
    return best


def spoiled(times, exclusions, n, window):
    for ts, (lo, hi) in exclusions:
        if len(times) > lo and times[0] <= ts:
            end = times[hi] if len(times) > hi else times[0] + window
            if times[lo] <= ts <= end:
                return True
    return False


def run_funnels(store, project, node, now_ms, timeout_s):
    extra = sorted(set(node) - FUNNEL_FIELDS)
    if extra:
        raise bad(f"FunnelsQuery: unknown field {extra[0]!r}.", extra[0])
    series = node.get("series")
    if not isinstance(series, list) or len(series) < 2:
        raise bad("A funnel needs at least two steps in 'series'.", "series")
    for s in series:
        if not isinstance(s, dict) or s.get("kind", "EventsNode") != "EventsNode":
            raise bad("Only EventsNode steps are supported (no actions yet).", "series")
    ff = node.get("funnelsFilter") or {}
    viz = ff.get("funnelVizType") or "steps"
    if viz != "steps":
        raise bad(f"funnelVizType {viz!r} is not supported yet; phlite answers 'steps'.", "funnelVizType")
    order = ff.get("funnelOrderType") or "ordered"
    if order not in ("ordered", "strict", "unordered"):
        raise bad(f"Unknown funnelOrderType {order!r}.", "funnelOrderType")
    unit = ff.get("funnelWindowIntervalUnit") or "day"
    if unit not in UNIT_MS:
        raise bad(f"Unknown funnelWindowIntervalUnit {unit!r}.", "funnelWindowIntervalUnit")
    window = int(ff.get("funnelWindowInterval") or 14) * UNIT_MS[unit]
    tz = project["timezone"]
    start, end, _lower = dates.resolve_range(node.get("dateRange"), "day", now_ms, tz, project["week_start_day"])
    n = len(series)
    exclusions = ff.get("exclusions") or []
    cols = [f"{ACTOR} AS a", "timestamp"] + [f"({_match(s)}) AS s{i}" for i, s in enumerate(series)]
    cols += [f"({_match(x)}) AS x{i}" for i, x in enumerate(exclusions)]
    bf = node.get("breakdownFilter") or {}
    breakdown = bf.get("breakdown")
    if breakdown not in (None, "", []):
        kind = bf.get("breakdown_type") or "event"
        if kind not in ("event", "person"):
            raise bad(f"Breakdowns of type {kind!r} are not supported in funnels.", "breakdown_type")
        cols.append(f"toString({field(breakdown, kind)}) AS bv")
    else:
        breakdown = None
    where = [f"timestamp <= {dates.ms_literal(end, tz)}"]
    if start is not None:
        where.append(f"timestamp >= {dates.ms_literal(start, tz)}")
    g = to_hogql(node.get("properties"))
    if g:
        where.append(g)
    if order != "strict":
        where.append("(" + " OR ".join(f"({_match(s)})" for s in series + exclusions) + ")")
    # In time order only: grouping by actor in Python is cheaper than SQLite sorting every row by actor.
    text = f"SELECT {', '.join(cols)} FROM events WHERE {' AND '.join(where)} ORDER BY timestamp"
    ctx = context(project, now_ms, max_rows=INSIGHT_MAX_ROWS)
    _compiled, rows = execute(store, ctx, text + f" LIMIT {INSIGHT_MAX_ROWS}", timeout_s)
    # Per actor: the winning attempt's step times and the breakdown value.
    per_value = {}
    attribution = ff.get("breakdownAttributionType") or "first_touch"
    k0 = 2
    # A row's step columns -> (its steps in descending order, the highest or -1): rows share a few shapes.
    shapes = {}
    for a, evs in _by_actor(rows):
        steps, top = [], -1
        for r in evs:
            key = r[k0:k0 + n]
            shape = shapes.get(key)
            if shape is None:
                ks = tuple(k for k in range(n - 1, -1, -1) if key[k])
                shape = shapes[key] = (ks, ks[0] if ks else -1)
            steps.append((r[1], shape[0]))
            if shape[1] > top:
                top = shape[1]
        excl = [(r[1], (x.get("funnelFromStep", 0), x.get("funnelToStep", n - 1)))
                for r in evs for i, x in enumerate(exclusions) if r[k0 + n + i]] if exclusions else []
        if order == "unordered":
            times = walk_unordered(steps, n, window)
        elif top == 0:
            # Only first steps: the first of them is the winning attempt (a later one is no longer).
            times = [next(ts for ts, ks in steps if ks)]
        else:
            times = walk_ordered(steps, n, window, strict=order == "strict")
        if not times or (excl and spoiled(times, excl, n, window)):
            continue
        value = None
        if breakdown:
            values = [r[-1] for r in evs if any(r[k0:k0 + n]) and r[-1] not in (None, "")]
            if attribution == "last_touch":
                value = values[-1] if values else ""
            elif attribution == "step":
                k = int(ff.get("breakdownAttributionValue") or 0)
                at = times[k] if len(times) > k else None
                value = next((r[-1] for r in evs if r[1] == at and r[k0 + k]), "") or "" if at else ""
            else:
                value = values[0] if values else ""
        per_value.setdefault(value, []).append(times)
    if not breakdown:
        return _response(_steps(series, per_value.get(None, []), n, order), node, start, end, tz)
    limit = int(bf.get("breakdown_limit") or 25)
    ranked = sorted(per_value, key=lambda v: -len(per_value[v]))
    if len(ranked) > limit:
        other = [t for v in ranked[limit:] for t in per_value[v]]
        per_value = {v: per_value[v] for v in ranked[:limit]}
        per_value["Other"] = other
    results = [_steps(series, per_value[v], n, order, v) for v in per_value]
    results.sort(key=lambda steps: [-s["count"] for s in reversed(steps)])
    return _response(results, node, start, end, tz)


def _by_actor(rows):
    """(actor, its rows in time order) for rows in time order, actors in SQLite's order (ids, then
    distinct ids), so that ties between breakdown values rank as they always did."""
    groups = {}
    for r in rows:
        group = groups.get(r[0])
        if group is None:
            groups[r[0]] = [r]
        else:
            group.append(r)
    for actor in sorted(groups, key=lambda a: (isinstance(a, str), a)):
        yield actor, groups[actor]


def _steps(series, attempts, n, order, breakdown=None):
    out = []
    for k, s in enumerate(series):
        reached = [t for t in attempts if len(t) > k]
        gaps = [(t[k] - t[k - 1]) / 1000 for t in reached] if k else []
        gaps = [g for g in gaps if g > 0]
        name = s.get("event") if order != "unordered" else f"Completed {k + 1} step{'s' if k else ''}"
        step = {"action_id": s.get("event"), "name": name if name is not None else "All events",
                "custom_name": s.get("custom_name"), "order": k, "people": [], "count": len(reached),
                "type": "events", "average_conversion_time": statistics.fmean(gaps) if gaps else None,
                "median_conversion_time": statistics.median(gaps) if gaps else None}
        if breakdown is not None:
            step["breakdown"] = [breakdown]
            step["breakdown_value"] = [breakdown]
        out.append(step)
    return out


def _response(results, node, start, end, tz):
    return {"results": results, "isUdf": False, "hogql": None, "timings": [], "error": None,
            "modifiers": node.get("modifiers") or {},
            "resolved_date_range": {"date_from": dates.iso(start, tz) if start is not None else None,
                                    "date_to": dates.iso(end, tz)}}
