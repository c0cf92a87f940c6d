"""TrendsQuery: series of counts, uniques and property aggregates per time bucket, with breakdowns
and compare, as PostHog's trends runner answers them (docs/insights.md "TrendsQuery").

Each series is written as HogQL and run through the same compiler as HogQLQuery, so it gets the same
project scoping and limits. Bucketing, zero-filling, ranking breakdown values and WAU/MAU windows are
done here, in Python, over the grouped rows.
"""

from phlite import errors
from phlite.query import dates
from phlite.query import functions as fn
from phlite.query.filters import field, literal, to_hogql
from phlite.query.rollup import aligned, day_rollup_context, rollup_context
from phlite.query.tables import ROLLUP_DIMS, day_counts_sql
from phlite.query.runner import context, execute, execute_sql

NULL_BV = "$$_posthog_breakdown_null_$$"
OTHER_BV = "$$_posthog_breakdown_other_$$"
COUNT_MATHS = {"total", "dau", "weekly_active", "monthly_active", "unique_session"}
ROLLUP_MATHS = {"total", "dau", "weekly_active", "monthly_active"}  # what the hourly roll-up can count
PROPERTY_MATHS = {"sum": "sum", "avg": "avg", "min": "min", "max": "max", "median": "quantile(0.5)",
                  "p75": "quantile(0.75)", "p90": "quantile(0.9)", "p95": "quantile(0.95)", "p99": "quantile(0.99)"}
TOTAL_DISPLAYS = {"BoldNumber", "ActionsPie", "ActionsBarValue", "ActionsTable", "WorldMap"}
ACTIVE_DAYS = {"weekly_active": 7, "monthly_active": 30}
TRENDS_FIELDS = {"kind", "series", "interval", "dateRange", "properties", "filterTestAccounts", "compareFilter",
                 "breakdownFilter", "trendsFilter", "aggregation_group_type_index", "samplingFactor", "modifiers",
                 "response", "version", "dataColorTheme", "conversionGoal", "tags"}
BUCKET_FN = {"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay",
             "week": "toStartOfWeek", "month": "toStartOfMonth"}
# The person after merges (its row id), or the distinct id of an event without one: counted, never shown.
ACTOR = "__actor"
INSIGHT_MAX_ROWS = 5_000_000


def bad(detail, attr=None):
    return errors.BadRequest(detail, code="invalid", attr=attr)


def _t(ms, tz):
    return dates.ms_literal(ms, tz)


class Trends:
    def __init__(self, store, project, node, now_ms, timeout_s):
        extra = sorted(set(node) - TRENDS_FIELDS)
        if extra:
            raise bad(f"TrendsQuery: unknown field {extra[0]!r}.", extra[0])
        self.store, self.project, self.node = store, project, node
        self.now_ms, self.timeout_s = now_ms, timeout_s
        self.tz, self.ws = project["timezone"], project["week_start_day"]
        # Grouped rows (buckets x breakdown values, or days x actors for WAU/MAU) are read whole.
        self.ctx = context(project, now_ms, max_rows=INSIGHT_MAX_ROWS)
        self.interval = node.get("interval") or "day"
        if self.interval not in dates.INTERVALS:
            raise bad(f"Unknown interval {self.interval!r}: use one of {', '.join(dates.INTERVALS)}.", "interval")
        self.series = node.get("series")
        if not isinstance(self.series, list) or not self.series:
            raise bad("TrendsQuery needs a non-empty 'series' list.", "series")
        display = (node.get("trendsFilter") or {}).get("display") or "ActionsLineGraph"
        self.total_mode = display in TOTAL_DISPLAYS
        self.display = display
        self.global_filter = to_hogql(node.get("properties"))
        bf = node.get("breakdownFilter") or {}
        self.breakdown = None
        self.rollup_breakdown = False
        if bf.get("breakdown") not in (None, "", []):
            kind = bf.get("breakdown_type") or "event"
            key = bf["breakdown"]
            if kind == "hogql":
                expr = f"toString({key})"
            elif kind in ("event", "person"):
                expr = f"toString({field(key, kind)})"
            else:
                raise bad(f"Breakdowns of type {kind!r} are not supported.", "breakdown_type")
            self.breakdown = (f"if(({expr}) IS NULL OR ({expr}) = '', {literal(NULL_BV)}, {expr})",
                              int(bf.get("breakdown_limit") or 25))
            # An event property the roll-up is keyed by, read from its materialized column: the roll-up
            # can answer the breakdown (and its "other" bucket, the same expression folded).
            col = ROLLUP_DIMS.get(key, (None,))[0] if kind == "event" and isinstance(key, str) else None
            self.rollup_breakdown = col is not None and self.ctx.materialized.get(key) == col
        self.hogql = None

    # the window

    def periods(self):
        start, end, lower = dates.resolve_range(self.node.get("dateRange"), self.interval, self.now_ms, self.tz,
                                                self.ws)
        if start is None:  # "all": from the project's first event
            first = self.query("SELECT min(timestamp) FROM events")[0][0]
            start = first if first is not None else fn.start_of(self.now_ms, "day", self.tz)
            start = fn.start_of(start, "day" if self.interval != "hour" else "hour", self.tz)
            lower = fn.start_of(start, self.interval, self.tz, self.ws) if self.interval in ("day", "month") \
                else start
            compare = False
        else:
            compare = bool((self.node.get("compareFilter") or {}).get("compare"))
        out = [("current", start, end, lower)]
        if compare:
            compare_to = (self.node.get("compareFilter") or {}).get("compare_to")
            if compare_to:
                shift = self.now_ms - dates.parse_date(compare_to, self.now_ms, self.tz, "compare_to")
                out.append(("previous", start - shift, end - shift, lower - shift))
            else:
                length = end - start
                p_end = start - 1
                p_start = p_end - length
                if self.interval != "hour" and self.interval != "minute":
                    p_start = fn.start_of(p_start + 1, "day", self.tz)
                p_lower = fn.start_of(p_start, self.interval, self.tz, self.ws) \
                    if self.interval in ("day", "month") else p_start
                out.append(("previous", p_start, p_end, p_lower))
        return out

    def query(self, text, ctx=None):
        if self.hogql is None:
            self.hogql = text
        return execute(self.store, ctx or self.ctx, text, self.timeout_s)[1]

    def rollup_ctx(self, serie, bv, first, end, starts):
        """The context reading a roll-up for this series (phlite/query/rollup.py), or None: it must count
        events or persons of one event (or all) with no filter and no breakdown but one by a ROLLUP_DIMS
        property, and its window [first, end] and bucket starts `starts` must fall on UTC hours. With no
        breakdown and buckets of whole days in the project's zone, the daily roll-up is read."""
        if bv and not self.rollup_breakdown:
            return None
        if self.global_filter or to_hogql(serie.get("properties")) or to_hogql(serie.get("fixedProperties")):
            return None
        if (serie.get("math") or "total") not in ROLLUP_MATHS or self.interval == "minute":
            return None
        edges = [first, end + 1, *starts]
        if not bv and all(fn.start_of(e, "day", self.tz) == e for e in edges):
            daily = day_rollup_context(self.store, self.ctx, first, end, fn.local_day)
            if daily is not None:
                return daily
        if not aligned(edges):
            return None
        return rollup_context(self.store, self.ctx, first, end, dims=bool(bv))

    # one series

    def where(self, serie, lower, end):
        parts = [f"timestamp >= {_t(lower, self.tz)}", f"timestamp <= {_t(end, self.tz)}"]
        if serie.get("event") is not None:
            parts.append(f"event = {literal(serie['event'])}")
        for f in (self.global_filter, to_hogql(serie.get("properties")), to_hogql(serie.get("fixedProperties"))):
            if f:
                parts.append(f)
        return " AND ".join(parts)

    def value_expr(self, serie, rollup=False):
        math = serie.get("math") or "total"
        if math == "total":
            return "sum(__n)" if rollup else "count()"
        if math in ("dau", "weekly_active", "monthly_active"):
            return f"count(DISTINCT {ACTOR})"
        if math == "unique_session":
            return "count(DISTINCT $session_id)"
        if math in PROPERTY_MATHS:
            prop = serie.get("math_property")
            if not prop:
                raise bad(f"math {math!r} needs a 'math_property'.", "math_property")
            kind = "person" if serie.get("math_property_type") == "person_properties" else "event"
            return f"ifNull({PROPERTY_MATHS[math]}(toFloat({field(prop, kind)})), 0)"
        raise bad(f"Unsupported math {math!r}.", "math")

    def run_series(self, serie, start, end, lower, bv_expr=None):
        """{breakdown value or None: {bucket ms or None: value}}"""
        math = serie.get("math") or "total"
        bv = bv_expr or (self.breakdown[0] if self.breakdown else None)
        active = ACTIVE_DAYS.get(math)
        if active and (self.total_mode or self.interval in ("minute", "hour", "day")
                       or (math == "monthly_active" and self.interval == "week")):
            return self.run_active(serie, start, end, lower, bv, active)
        starts = [] if self.total_mode else dates.buckets(start, end, self.interval, self.tz, self.ws)
        rollup = self.rollup_ctx(serie, bv, lower, end, starts)
        value = self.value_expr(serie, rollup is not None)
        cols, group = [], []
        if not self.total_mode:
            cols.append(f"{BUCKET_FN[self.interval]}(timestamp) AS b")
            group.append("b")
        if bv:
            cols.append(f"{bv} AS bv")
            group.append("bv")
        cols.append(f"{value} AS v")
        text = f"SELECT {', '.join(cols)} FROM events WHERE {self.where(serie, lower, end)}"
        if group:
            text += f" GROUP BY {', '.join(group)}"
        text += f" LIMIT {INSIGHT_MAX_ROWS}"
        if rollup is not None and rollup.rollup_days is not None and self.interval == "day" and not self.total_mode \
                and serie.get("event") is not None and math in ("total", "dau") and not bv:
            self.hogql = self.hogql or text  # what the answer means, whichever tables give it
            daily = self.run_days(serie, lower, end, rollup)
            if daily is not None:
                return daily
        out = {}
        for row in self.query(text, rollup):
            b = row[0] if not self.total_mode else None
            key = row[-2] if bv else None
            out.setdefault(key, {})[b] = row[-1]
        return out

    def run_days(self, serie, lower, end, rollup):
        """A daily `total` or `dau` of one event, read straight from the daily roll-up's rows; the days it
        cannot trust yet (rollup.rollup_days) from the hourly roll-up, as the series' own query. None: those
        days' hours are too many for the hourly roll-up (then the caller reads the events)."""
        skip = rollup.rollup_days
        pick = 1 if (serie.get("math") or "total") == "total" else 2
        sql = day_counts_sql(self.ctx.project_id, serie["event"], lower, end, [d for d, _e in skip])
        out = {row[0]: row[pick] for row in execute_sql(self.store, sql, self.timeout_s, INSIGHT_MAX_ROWS)}
        if skip:
            hourly = rollup_context(self.store, self.ctx, skip[0][0], end)
            if hourly is None:
                return None
            text = (f"SELECT toStartOfDay(timestamp) AS b, {self.value_expr(serie, True)} AS v FROM events"
                    f" WHERE {self.where(serie, skip[0][0], end)} GROUP BY b LIMIT {INSIGHT_MAX_ROWS}")
            days = {d for d, _e in skip}
            out.update((b, v) for b, v in self.query(text, hourly) if b in days)
        return {None: out}

    def run_active(self, serie, start, end, lower, bv, days):
        """WAU/MAU: per bucket, distinct actors with an event in the `days` days ending with the bucket."""
        if self.total_mode:
            lo = fn.add_interval(end + 1, -days, "day", self.tz)
            bucket_ends = {None: end + 1}
        else:
            starts = dates.buckets(start, end, self.interval, self.tz, self.ws)
            bucket_ends = {b: fn.add_interval(b, 1, self.interval, self.tz) for b in starts}
            lo = fn.add_interval(min(bucket_ends.values()), -days, "day", self.tz)
        first = min(lo, lower)
        cols = ["toStartOfDay(timestamp) AS d"] + ([f"{bv} AS bv"] if bv else []) + [f"{ACTOR} AS a"]
        text = (f"SELECT {', '.join(cols)} FROM events WHERE {self.where(serie, first, end)}"
                f" GROUP BY {', '.join(['d', 'bv', 'a'] if bv else ['d', 'a'])} LIMIT {INSIGHT_MAX_ROWS}")
        # The days are the buckets here, and the windows are made of days.
        rollup = self.rollup_ctx(serie, bv, first, end, dates.buckets(first, end, "day", self.tz, self.ws))
        by_key = {}
        for row in self.query(text, rollup):
            key = row[1] if bv else None
            by_key.setdefault(key, {}).setdefault(row[0], set()).add(row[-1])
        self._active_sets = by_key
        self._active_windows = {b: (fn.add_interval(e, -days, "day", self.tz), e) for b, e in bucket_ends.items()}
        return {key: self._active_counts(day_sets) for key, day_sets in by_key.items()}

    def _active_counts(self, day_sets):
        out = {}
        for b, (lo, hi) in self._active_windows.items():
            seen = set()
            for d, actors in day_sets.items():
                if lo <= d < hi:
                    seen |= actors
            out[b] = len(seen)
        return out

    # the answer

    def run(self):
        results, has_more = [], False
        periods = self.periods()
        for period, start, end, lower in periods:
            starts = [] if self.total_mode else dates.buckets(start, end, self.interval, self.tz, self.ws)
            for order, serie in enumerate(self.series):
                if not isinstance(serie, dict) or serie.get("kind", "EventsNode") != "EventsNode":
                    raise bad("Only EventsNode series are supported (no actions yet).", "series")
                values = self.run_series(serie, start, end, lower)
                keys = list(values)
                if self.breakdown:
                    totals = {k: sum(float(v or 0) for v in values[k].values()) for k in keys}
                    keys.sort(key=lambda k: (k == NULL_BV, -totals[k], k))
                    limit = self.breakdown[1]
                    if len(keys) > limit:
                        has_more = True
                        top = keys[:limit]
                        values = self.merge_other(serie, start, end, lower, values, top)
                        keys = top + [OTHER_BV]
                elif not keys:
                    keys = [None]
                for key in keys:
                    r = self.result(serie, order, starts, values.get(key, {}), key, start, end, period,
                                    len(periods) > 1)
                    if self.breakdown and key in ("", None) and r["count"] == 0:
                        continue
                    results.append(r)
        return results, has_more, periods[0]

    def merge_other(self, serie, start, end, lower, values, top):
        math = serie.get("math") or "total"
        if math in ACTIVE_DAYS and getattr(self, "_active_sets", None) is not None:
            merged = {}
            for key, day_sets in self._active_sets.items():
                if key in top:
                    continue
                for d, actors in day_sets.items():
                    merged.setdefault(d, set()).update(actors)
            out = {k: values[k] for k in top}
            out[OTHER_BV] = self._active_counts(merged)
            return out
        # Distinct counts and quantiles cannot be summed: ask again with the rest folded into one value.
        bv = self.breakdown[0]
        folded = f"if(({bv}) IN ({', '.join(literal(k) for k in top)}), {bv}, {literal(OTHER_BV)})"
        return self.run_series(serie, start, end, lower, bv_expr=folded)

    def result(self, serie, order, starts, values, key, start, end, period, compare):
        math = serie.get("math") or "total"
        event = serie.get("event")
        name = event if event is not None else "All events"
        floats = self.breakdown is not None or math not in COUNT_MATHS
        conv = float if floats else (lambda v: int(v or 0))
        action = {"id": event, "type": "events", "order": order, "name": serie.get("name") or name,
                  "custom_name": serie.get("custom_name"), "math": math, "math_property": serie.get("math_property"),
                  "math_hogql": serie.get("math_hogql"), "math_group_type_index": serie.get("math_group_type_index"),
                  "properties": {}, "days": [dates.iso(b, self.tz) for b in starts]}
        r = {
            "action": action,
            "label": name,
            "filter": {"insight": "TRENDS", "interval": self.interval, "date_from": dates.iso(start, self.tz),
                       "date_to": dates.iso(end, self.tz), "display": self.display},
            "days": [dates.day_text(b, self.interval, self.tz) for b in starts],
            "labels": [dates.label(b, self.interval, self.tz, start, end) for b in starts],
        }
        if self.total_mode:
            r.update({"data": [], "count": 0, "aggregated_value": conv(values.get(None, 0) or 0)})
        else:
            data = [conv(values.get(b, 0) or 0) for b in starts]
            r.update({"data": data, "count": float(sum(data))})
        if self.breakdown:
            r["breakdown_value"] = key
            r["label"] = key if len(self.series) == 1 else f"{name} - {key}"
        if compare:
            r["compare"] = True
            r["compare_label"] = period
        return r


def run_trends(store, project, node, now_ms, timeout_s):
    t = Trends(store, project, node, now_ms, timeout_s)
    results, has_more, (_p, start, end, _l) = t.run()
    return {
        "results": results,
        "hasMore": has_more,
        "hogql": t.hogql,
        "timings": [],
        "error": None,
        "modifiers": node.get("modifiers") or {},
        "resolved_date_range": {"date_from": dates.iso(start, t.tz), "date_to": dates.iso(end, t.tz)},
    }
