"""The insight forms as data: the fields of the Trends, Funnels, Retention and Web pages <-> the query nodes
the query API takes (docs/console.md "Insights"). Pure: `get(name)` reads a submitted field.

Every page is a GET form, so an insight is a link; adding or removing a series is a submit button that
shows the form again with one more or one fewer row, so no script is needed.
"""

from phlite.console.forms import value_from_text, value_to_text

MAX_SERIES = 10  # series of a trend, steps of a funnel
MATHS = [("total", "Total count"), ("dau", "Unique users"), ("weekly_active", "Weekly active users"),
         ("monthly_active", "Monthly active users"), ("unique_session", "Unique sessions"),
         ("sum", "Sum of a property"), ("avg", "Average of a property"), ("min", "Minimum of a property"),
         ("max", "Maximum of a property"), ("median", "Median of a property"), ("p90", "90th percentile of a property"),
         ("p99", "99th percentile of a property")]
PROPERTY_MATHS = {"sum", "avg", "min", "max", "median", "p90", "p99"}
INTERVALS = [("hour", "Hour"), ("day", "Day"), ("week", "Week"), ("month", "Month")]
DISPLAYS = [("ActionsLineGraph", "Line"), ("ActionsBar", "Bar"), ("ActionsBarValue", "Total value")]
DATE_PRESETS = [("-24h", "Last 24 hours"), ("-7d", "Last 7 days"), ("-14d", "Last 14 days"),
                ("-30d", "Last 30 days"), ("-90d", "Last 90 days"), ("-180d", "Last 180 days"),
                ("-1y", "Last year"), ("all", "All time")]
# The operators the query runners read (docs/insights.md "Property filters").
FILTER_OPS = [("exact", "equals"), ("is_not", "doesn't equal"), ("icontains", "contains"),
              ("not_icontains", "doesn't contain"), ("regex", "matches regex"), ("not_regex", "doesn't match regex"),
              ("gt", "greater than"), ("gte", "at least"), ("lt", "less than"), ("lte", "at most"),
              ("is_set", "is set"), ("is_not_set", "is not set")]
ORDERS = [("ordered", "Sequential"), ("strict", "Strict order"), ("unordered", "Any order")]
WINDOW_UNITS = [("minute", "minutes"), ("hour", "hours"), ("day", "days"), ("week", "weeks"), ("month", "months")]
RETENTION_TYPES = [("retention_first_time", "First time"), ("retention_recurring", "Recurring")]
PERIODS = [("Day", "Day"), ("Week", "Week"), ("Month", "Month")]
MAX_TEXT = 400  # an event name, a property key or value typed in a field


def _text(get, name, default=""):
    return (get(name) or default).strip()[:MAX_TEXT]


def _choice(value, choices, default):
    return value if value in {c for c, _ in choices} else default


def _int(text, default, lo, hi):
    try:
        return max(lo, min(hi, int(text)))
    except (TypeError, ValueError):
        return default


def _rows(get, prefix, action, default_events, minimum=1):
    """Rows s0, s1, ... present in the form; `action` may add one or remove row i."""
    count = 0
    while count < MAX_SERIES and get(f"{prefix}{count}.event") is not None:
        count += 1
    indexes = list(range(count))
    if action.startswith("remove:"):
        try:
            indexes.remove(int(action.split(":", 1)[1]))
        except ValueError:
            pass
    rows = [{"event": _text(get, f"{prefix}{i}.event"), "math": get(f"{prefix}{i}.math") or "total",
             "prop": _text(get, f"{prefix}{i}.prop")} for i in indexes]
    if count == 0:
        rows = [{"event": e, "math": "total", "prop": ""} for e in default_events]
    if action == "add" and len(rows) < MAX_SERIES:
        rows.append({"event": rows[-1]["event"] if rows else "$pageview", "math": "total", "prop": ""})
    while len(rows) < minimum:
        rows.append({"event": "", "math": "total", "prop": ""})
    return rows


def _filter(get):
    f = {"type": "person" if get("p.type") == "person" else "event", "key": _text(get, "p.key"),
         "op": _choice(get("p.op"), FILTER_OPS, "exact"), "value": (get("p.value") or "")[:MAX_TEXT]}
    return f


def filter_node(f):
    """The form's one property filter as the `properties` list of a query ([] when no key)."""
    if not f["key"]:
        return []
    return [{"key": f["key"], "type": f["type"], "operator": f["op"], "value": value_from_text(f["op"], f["value"])}]


def filter_form(properties):
    p = next((p for p in properties or [] if isinstance(p, dict) and p.get("type", "event") in ("event", "person")),
             None)
    if p is None:
        return {"type": "event", "key": "", "op": "exact", "value": ""}
    value = "" if p.get("operator") in ("is_set", "is_not_set") else value_to_text(p.get("value"))
    return {"type": p.get("type", "event"), "key": str(p.get("key", "")), "op": p.get("operator") or "exact",
            "value": value}


def _dates(get, default_from="-7d"):
    return {"date_from": _text(get, "date_from") or default_from, "date_to": _text(get, "date_to")}


def _date_range(form):
    dr = {"date_from": form["date_from"]}
    if form["date_to"]:
        dr["date_to"] = form["date_to"]
    return dr


# --- Trends ------------------------------------------------------------------------------------------


def trends_form(get):
    """The Trends page's fields, completed with defaults."""
    action = get("action") or ""
    series = _rows(get, "s", action, ["$pageview"])
    for s in series:
        s["math"] = _choice(s["math"], MATHS, "total")
    return {
        "series": series, **_dates(get),
        "interval": _choice(get("interval"), INTERVALS, "day"),
        "display": _choice(get("display"), DISPLAYS, "ActionsLineGraph"),
        "breakdown": _text(get, "breakdown"),
        "breakdown_type": "person" if get("breakdown_type") == "person" else "event",
        "breakdown_limit": _int(get("breakdown_limit"), 10, 1, 50),
        "compare": bool(get("compare")),
        "filter": _filter(get),
    }


def trends_problems(form):
    """{field: message} of what the runner would refuse, said beside the field."""
    out = {}
    for i, s in enumerate(form["series"]):
        if s["math"] in PROPERTY_MATHS and not s["prop"]:
            out[f"s{i}.prop"] = "This math needs a property (e.g. price)."
    return out


def trends_node(form):
    series = []
    for s in form["series"]:
        node = {"kind": "EventsNode", "event": s["event"] or None, "math": s["math"]}
        if s["event"]:
            node["name"] = s["event"]
        if s["math"] in PROPERTY_MATHS:
            node["math_property"] = s["prop"]
        series.append(node)
    node = {"kind": "TrendsQuery", "series": series, "interval": form["interval"], "dateRange": _date_range(form),
            "properties": filter_node(form["filter"]), "trendsFilter": {"display": form["display"]}}
    if form["breakdown"]:
        node["breakdownFilter"] = {"breakdown": form["breakdown"], "breakdown_type": form["breakdown_type"],
                                   "breakdown_limit": form["breakdown_limit"]}
    if form["compare"]:
        node["compareFilter"] = {"compare": True}
    return node


def trends_form_from_node(node):
    """A saved TrendsQuery back into the page's fields (what the page cannot show is dropped)."""
    series = [{"event": s.get("event") or "", "math": _choice(s.get("math") or "total", MATHS, "total"),
               "prop": s.get("math_property") or ""} for s in node.get("series") or []][:MAX_SERIES]
    bf = node.get("breakdownFilter") or {}
    dr = node.get("dateRange") or {}
    return {
        "series": series or [{"event": "$pageview", "math": "total", "prop": ""}],
        "date_from": dr.get("date_from") or "-7d", "date_to": dr.get("date_to") or "",
        "interval": _choice(node.get("interval"), INTERVALS, "day"),
        "display": _choice((node.get("trendsFilter") or {}).get("display"), DISPLAYS, "ActionsLineGraph"),
        "breakdown": bf.get("breakdown") if isinstance(bf.get("breakdown"), str) else "",
        "breakdown_type": "person" if bf.get("breakdown_type") == "person" else "event",
        "breakdown_limit": _int(bf.get("breakdown_limit"), 10, 1, 50),
        "compare": bool((node.get("compareFilter") or {}).get("compare")),
        "filter": filter_form(node.get("properties")),
    }


# --- Funnels -----------------------------------------------------------------------------------------


def funnels_form(get):
    action = get("action") or ""
    steps = _rows(get, "s", action, ["$pageview", ""], minimum=2)
    return {
        "steps": [{"event": s["event"]} for s in steps], **_dates(get),
        "order": _choice(get("order"), ORDERS, "ordered"),
        "window": _int(get("window"), 14, 1, 10_000),
        "window_unit": _choice(get("window_unit"), WINDOW_UNITS, "day"),
        "breakdown": _text(get, "breakdown"),
        "breakdown_type": "person" if get("breakdown_type") == "person" else "event",
        "filter": _filter(get),
    }


def funnels_problems(form):
    out = {}
    for i, s in enumerate(form["steps"]):
        if not s["event"]:
            out[f"s{i}.event"] = "Name the event of this step."
    return out


def funnels_node(form):
    node = {"kind": "FunnelsQuery",
            "series": [{"kind": "EventsNode", "event": s["event"], "name": s["event"]} for s in form["steps"]],
            "dateRange": _date_range(form), "properties": filter_node(form["filter"]),
            "funnelsFilter": {"funnelOrderType": form["order"], "funnelWindowInterval": form["window"],
                              "funnelWindowIntervalUnit": form["window_unit"]}}
    if form["breakdown"]:
        node["breakdownFilter"] = {"breakdown": form["breakdown"], "breakdown_type": form["breakdown_type"]}
    return node


def funnels_form_from_node(node):
    ff = node.get("funnelsFilter") or {}
    bf = node.get("breakdownFilter") or {}
    dr = node.get("dateRange") or {}
    steps = [{"event": s.get("event") or ""} for s in node.get("series") or []][:MAX_SERIES]
    while len(steps) < 2:
        steps.append({"event": ""})
    return {
        "steps": steps, "date_from": dr.get("date_from") or "-7d", "date_to": dr.get("date_to") or "",
        "order": _choice(ff.get("funnelOrderType"), ORDERS, "ordered"),
        "window": _int(ff.get("funnelWindowInterval"), 14, 1, 10_000),
        "window_unit": _choice(ff.get("funnelWindowIntervalUnit"), WINDOW_UNITS, "day"),
        "breakdown": bf.get("breakdown") if isinstance(bf.get("breakdown"), str) else "",
        "breakdown_type": "person" if bf.get("breakdown_type") == "person" else "event",
        "filter": filter_form(node.get("properties")),
    }


# --- Retention ---------------------------------------------------------------------------------------


def retention_form(get):
    return {
        "target": _text(get, "target") or "$pageview", "returning": _text(get, "returning") or "$pageview",
        "type": _choice(get("type"), RETENTION_TYPES, "retention_first_time"),
        "period": _choice(get("period"), PERIODS, "Day"),
        "intervals": _int(get("intervals"), 8, 2, 31),
        "date_to": _text(get, "date_to"),
        "filter": _filter(get),
    }


def retention_node(form):
    node = {"kind": "RetentionQuery", "properties": filter_node(form["filter"]),
            "retentionFilter": {"targetEntity": {"id": form["target"], "type": "events", "name": form["target"]},
                                "returningEntity": {"id": form["returning"], "type": "events",
                                                    "name": form["returning"]},
                                "retentionType": form["type"], "period": form["period"],
                                "totalIntervals": form["intervals"]}}
    if form["date_to"]:
        node["dateRange"] = {"date_to": form["date_to"]}
    return node


def retention_form_from_node(node):
    rf = node.get("retentionFilter") or {}
    return {
        "target": str((rf.get("targetEntity") or {}).get("id") or "$pageview"),
        "returning": str((rf.get("returningEntity") or {}).get("id") or "$pageview"),
        "type": _choice(rf.get("retentionType"), RETENTION_TYPES, "retention_first_time"),
        "period": _choice(rf.get("period"), PERIODS, "Day"),
        "intervals": _int(rf.get("totalIntervals"), 8, 2, 31),
        "date_to": (node.get("dateRange") or {}).get("date_to") or "",
        "filter": filter_form(node.get("properties")),
    }


# --- Web analytics -----------------------------------------------------------------------------------


def web_form(get):
    return {**_dates(get), "compare": get("compare") != "0", "filter": _filter(get)}


def web_overview_node(form):
    return {"kind": "WebOverviewQuery", "dateRange": _date_range(form), "properties": filter_node(form["filter"]),
            "compareFilter": {"compare": form["compare"]}}


def web_visitors_node(form):
    """The chart above the web tables: visitors (unique users) and views of pageviews per day."""
    return {"kind": "TrendsQuery", "interval": "day", "dateRange": _date_range(form),
            "properties": filter_node(form["filter"]),
            "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau", "custom_name": "Visitors"},
                       {"kind": "EventsNode", "event": "$pageview", "math": "total", "custom_name": "Views"}]}


def web_table_node(form, breakdown_by, limit=10, bounce=False):
    node = {"kind": "WebStatsTableQuery", "breakdownBy": breakdown_by, "dateRange": _date_range(form),
            "properties": filter_node(form["filter"]), "limit": limit, "compareFilter": {"compare": form["compare"]}}
    if bounce:
        node["includeBounceRate"] = True
    return node


# --- saved insights ---------------------------------------------------------------------------------

# page kind -> (the query kind it runs, the wrapper PostHog saves it in)
KINDS = {"trends": ("TrendsQuery", "InsightVizNode"), "funnels": ("FunnelsQuery", "InsightVizNode"),
         "retention": ("RetentionQuery", "InsightVizNode"), "sql": ("HogQLQuery", "DataVisualizationNode")}
PAGE_OF = {query_kind: page for page, (query_kind, _) in KINDS.items()}
FORM_OF = {"trends": trends_form, "funnels": funnels_form, "retention": retention_form}
NODE_OF = {"trends": trends_node, "funnels": funnels_node, "retention": retention_node}
FROM_NODE = {"trends": trends_form_from_node, "funnels": funnels_form_from_node,
             "retention": retention_form_from_node}


def to_params(form):
    """A form as the page's query parameters (the inverse of the *_form readers): its link."""
    out = []
    for key, value in form.items():
        if key in ("series", "steps"):
            for i, row in enumerate(value):
                out.extend((f"s{i}.{k}", str(v)) for k, v in row.items() if v not in ("", None))
                if not row.get("event"):
                    out.append((f"s{i}.event", ""))  # the row exists even when its event is empty
        elif key == "filter":
            if value.get("key"):
                out.extend((f"p.{k}", str(v)) for k, v in value.items())
        elif isinstance(value, bool):
            if value:
                out.append((key, "1"))
        elif value not in ("", None):
            out.append((key, str(value)))
    return out


def saved_query(page, get):
    """The query node (in PostHog's wrapper) an insight page saves, from the page's parameters."""
    query_kind, wrapper = KINDS[page]
    if page == "sql":
        source = {"kind": query_kind, "query": (get("q") or "")}
    else:
        source = NODE_OF[page](FORM_OF[page](get))
    return {"kind": wrapper, "source": source}


def page_params(source):
    """(page kind, query parameters) that show a saved insight's query node on its page; None if no page
    draws that kind."""
    page = PAGE_OF.get((source or {}).get("kind"))
    if page is None:
        return None
    if page == "sql":
        return page, [("q", source.get("query") or "")]
    return page, to_params(FROM_NODE[page](source))
