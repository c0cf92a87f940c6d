"""What each insight page shows, from the query runner's answer: series with their colours and labels,
chart geometry, tables (docs/console.md "Insights"). Pure: the responses come in, as the query API
returns them, so the page shows exactly what `POST /query/` answers for the same query."""

import orjson

from phlite.console import charts
from phlite.console.charts import breakdown_label

MAX_SQL_ROWS = 1000  # rows of a SQL result drawn in the page; the rest are counted, not shown
MAX_CELL = 2000  # characters of one SQL result value shown (a property blob can be megabytes)
# A page draws at most this many points (series x intervals), and its table at most MAX_CELLS values:
# 10 series x 51 breakdown values x 2 periods x 8,760 hours would be a page of hundreds of megabytes.
MAX_POINTS = 40_000
MAX_CELLS = 20_000
WEB_TILES = {"visitors": "Visitors", "views": "Page views", "sessions": "Sessions",
             "session duration": "Session duration", "bounce rate": "Bounce rate"}
# (WebStatsTableQuery breakdownBy, the table's title, its first column)
WEB_TABLES = [("Page", "Top pages", "Path"), ("InitialPage", "Entry pages", "Path"),
              ("ExitPage", "Exit pages", "Path"), ("InitialReferringDomain", "Referrers", "Referring domain"),
              ("InitialUTMSource", "UTM sources", "utm_source"), ("InitialUTMMedium", "UTM mediums", "utm_medium"),
              ("InitialUTMCampaign", "UTM campaigns", "utm_campaign"), ("Browser", "Browsers", "Browser"),
              ("OS", "Operating systems", "OS"), ("DeviceType", "Device types", "Device type"),
              ("Country", "Countries", "Country")]  # $geoip_country_code as clients send it: phlite has no GeoIP
WEB_TABLE_NAMES = {by: (title, first) for by, title, first in WEB_TABLES}
# The tables with a bounce rate column (of sessions entering there). Not exit pages: PostHog's exit paths
# table asks no bounce rate, and a session's bounce belongs to where it entered.
WEB_BOUNCE = {"Page", "InitialPage"}


MATH_LABELS = {"dau": "unique users", "weekly_active": "weekly active", "monthly_active": "monthly active",
               "unique_session": "unique sessions", "sum": "sum", "avg": "average", "min": "minimum",
               "max": "maximum", "median": "median", "p75": "p75", "p90": "p90", "p95": "p95", "p99": "p99"}


def _series_label(r, many):
    """A series as the legend names it: its custom name, else its event, with the math when it is not a
    plain count and there are several series (two "$pageview" lines need telling apart)."""
    action = r.get("action") or {}
    base = action.get("custom_name") or action.get("name") or r.get("label") or "All events"
    math = action.get("math") or "total"
    if many and not action.get("custom_name") and math in MATH_LABELS:
        prop = f" of {action['math_property']}" if action.get("math_property") else ""
        base = f"{base} ({MATH_LABELS[math]}{prop})"
    if "breakdown_value" in r:
        value = breakdown_label(r["breakdown_value"])
        return f"{base} · {value}" if many else value
    return base


def trends(response, form, size=charts.W_H):
    """{series: [{label, color, data, total, previous, labels}], labels, chart | bars, total_mode}."""
    results = response["results"]
    many = len({(r.get("action") or {}).get("order") for r in results}) > 1
    colors, series = {}, []
    for r in results:
        previous = r.get("compare_label") == "previous"
        key = ((r.get("action") or {}).get("order"), repr(r.get("breakdown_value")))
        if key not in colors:
            colors[key] = len(colors)
        label = _series_label(r, many)
        total = r["aggregated_value"] if "aggregated_value" in r else r.get("count", 0)
        series.append({"label": label + (" (previous)" if previous else ""), "color": colors[key],
                       "data": r.get("data") or [], "total": total, "previous": previous,
                       "labels": r.get("labels") or []})
    current = [s for s in series if not s["previous"]]
    labels = current[0]["labels"] if current else []
    view = {"series": series, "labels": labels, "total_mode": form["display"] == "ActionsBarValue",
            "has_more": bool(response.get("hasMore")), "too_many": None,
            "table_intervals": len(series) * len(labels) <= MAX_CELLS}
    if not view["total_mode"] and len(series) * len(labels) > MAX_POINTS:
        view["too_many"] = (f"{len(series):,} series of {len(labels):,} intervals are too many points to draw:"
                            " choose a larger interval, a shorter range or fewer breakdown values.")
        view["total_mode"] = True  # the totals still show, as bars
    if view["total_mode"]:
        view["bars"] = charts.value_bars([{"label": s["label"], "value": s["total"], "color": s["color"]}
                                          for s in series])
    else:
        view["chart"] = charts.time_chart(labels, series, "bar" if form["display"] == "ActionsBar" else "line",
                                          size=size)
    return view


def funnels(response, size=charts.W_H):
    """{groups: [{label, color, counts, conversion}], steps (table rows without a breakdown), chart}."""
    results = response["results"]
    if results and isinstance(results[0], list):
        lists = results
        labels = [breakdown_label((steps[0].get("breakdown_value") or [None])) for steps in lists if steps]
    else:
        lists = [results] if results else []
        labels = ["All users"]
    groups = []
    for i, steps in enumerate(lists):
        counts = [s["count"] for s in steps]
        first = counts[0] if counts else 0
        groups.append({"label": labels[i], "color": i, "counts": counts,
                       "conversion": 100 * counts[-1] / first if first else 0.0,
                       "median": steps[-1].get("median_conversion_time") if steps else None})
    names = [s.get("custom_name") or s["name"] for s in lists[0]] if lists else []
    return {"groups": groups, "breakdown": len(lists) > 1 or labels != ["All users"],
            "steps": charts.funnel_steps(lists[0]) if len(lists) == 1 else [],
            "chart": charts.funnel_chart(groups, names, size), "names": names}


def retention(response):
    table = charts.retention_table(response["results"])
    curve = [{"label": "Mean retention", "data": [round(m, 1) for m in table["means"]], "color": 0}]
    table["chart"] = charts.time_chart(table["periods"], curve, "line", suffix="%")
    return table


def _tile_value(kind, value):
    if kind == "duration_s":
        return charts.duration(value)
    if kind == "percentage":
        return charts.percent(value)
    return charts.number(value)


def web_tiles(response):
    out = []
    for r in response["results"]:
        out.append({"key": r["key"], "label": WEB_TILES.get(r["key"], r["key"]),
                    "value": _tile_value(r["kind"], r["value"]),
                    "previous": None if r.get("previous") is None else _tile_value(r["kind"], r["previous"]),
                    "change": charts.change(r["value"], r.get("previous"), bool(r.get("isIncreaseBad")))})
    return out


def web_chart(response):
    series = [{"label": (r.get("action") or {}).get("custom_name") or r["label"], "data": r["data"], "color": i,
               "labels": r["labels"]} for i, r in enumerate(response["results"])]
    labels = series[0]["labels"] if series else []
    return {"series": series, "chart": charts.time_chart(labels, series, "line")}


def _cell(value, name):
    current, previous = (value[0], value[1]) if isinstance(value, list) and len(value) == 2 else (value, None)
    fraction = name.endswith("rate") or name.endswith("percentage")
    text = charts.percent(100 * current) if fraction and isinstance(current, (int, float)) else (
        charts.number(current) if isinstance(current, (int, float)) or current is None else str(current))
    return {"text": text, "value": current,
            "change": charts.change(current, previous, name.endswith("bounce_rate"))
            if isinstance(current, (int, float)) and isinstance(previous, (int, float)) else None}


def web_table(response, first_column):
    """A WebStatsTableQuery answer as {columns, rows: [{label, cells}]}; the metric cells are [current, previous]."""
    names = [c.removeprefix("context.columns.") for c in response.get("columns") or []]
    keep = [i for i, n in enumerate(names) if i and n in ("visitors", "views", "bounce_rate")]
    titles = {"visitors": "Visitors", "views": "Views", "bounce_rate": "Bounce"}
    rows = []
    for row in response["results"]:
        rows.append({"label": breakdown_label(row[0]) if row[0] is not None else "(none)",
                     "cells": [_cell(row[i], names[i]) for i in keep if i < len(row)]})
    top = max((r["cells"][0]["value"] or 0 for r in rows if r["cells"]), default=0) or 1
    for r in rows:
        r["pct"] = round(100 * (r["cells"][0]["value"] or 0) / top, 1) if r["cells"] else 0
    return {"columns": [first_column] + [titles[names[i]] for i in keep], "rows": rows}


def sql_cell(value):
    """A HogQL result value as text, and whether it is NULL (shown muted)."""
    if value is None:
        return {"text": "null", "null": True}
    if isinstance(value, (dict, list)):
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return {"text": text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…", "null": False}


def sql(response):
    rows = response.get("results") or []
    types = dict((c, t) for c, t in response.get("types") or [])
    return {"columns": [{"name": c, "type": types.get(c, "")} for c in response.get("columns") or []],
            "rows": [[sql_cell(v) for v in r] for r in rows[:MAX_SQL_ROWS]],
            "count": len(rows), "shown": min(len(rows), MAX_SQL_ROWS), "has_more": bool(response.get("hasMore"))}


WRAPPERS = {"InsightVizNode", "DataTableNode", "DataVisualizationNode"}  # PostHog's saved-query wrappers
KIND_LABELS = {"TrendsQuery": "Trends", "FunnelsQuery": "Funnel", "RetentionQuery": "Retention",
               "HogQLQuery": "SQL", "WebOverviewQuery": "Web overview", "WebStatsTableQuery": "Web table",
               "EventsQuery": "Events"}
TILE_SQL_ROWS = 10


def source_of(query):
    """The query node a saved insight runs (a wrapper's `source`), or None."""
    if not isinstance(query, dict):
        return None
    source = query.get("source") if query.get("kind") in WRAPPERS else query
    return source if isinstance(source, dict) else None


def kind_label(query):
    source = source_of(query)
    return KIND_LABELS.get((source or {}).get("kind"), (source or {}).get("kind") or "–")


def tile(insight, trends_form):
    """What a dashboard tile draws from a saved insight's kept result: {kind, ...the page's view}; kind None
    when there is no result yet (or no view for its query kind). `trends_form(node)` reads a trend's display."""
    source = source_of(insight.get("query")) or {}
    kind = source.get("kind")
    result = insight.get("result")
    if result is None:
        return {"kind": None, "why": "No result yet: open it, or refresh the dashboard."}
    response = {"results": result, "columns": insight.get("columns"), "types": insight.get("types"),
                "hasMore": insight.get("hasMore")}
    if kind == "TrendsQuery":
        return {"kind": "trends", **trends(response, trends_form(source), charts.TILE)}
    if kind == "FunnelsQuery":
        return {"kind": "funnels", **funnels(response, charts.TILE)}
    if kind == "RetentionQuery":
        return {"kind": "retention", **retention(response)}
    if kind == "HogQLQuery":
        view = sql({**response, "results": result[:TILE_SQL_ROWS]})
        return {"kind": "sql", **view, "count": len(result)}
    if kind == "WebOverviewQuery":
        return {"kind": "web", "tiles": web_tiles(response)}
    return {"kind": None, "why": f"The console draws no {kind} tile; the API has its result."}
