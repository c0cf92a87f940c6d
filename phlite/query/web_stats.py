"""WebStatsTableQuery: visitors, views and bounce rate per page, entry page, referrer, UTM value, browser, OS,
device type..., each a [current, previous] pair, in PostHog's row and column shapes
(docs/insights.md "WebStatsTableQuery").

One scan gives the sessions (their start, bounce and entry/exit values, read from all of their events,
unfiltered, as PostHog's sessions table is) and, for a session-level breakdown, their matching pageviews
and screens; an event-level breakdown adds a second, of the matching pageviews and screens grouped by
session and value. A group counts in the period that holds its session's start.
"""

from phlite import errors
from phlite.query import dates
from phlite.query.filters import to_hogql
from phlite.query.runner import context, execute
from phlite.query.trends import INSIGHT_MAX_ROWS
from phlite.query.web import ACTOR, BOUNCE_SECONDS, LOOKBACK_MS, WEB_FIELDS

FIELDS = WEB_FIELDS | {"breakdownBy", "includeBounceRate", "includeScrollDepth", "includeAvgTimeOnPage", "limit",
                       "offset", "orderBy"}
VIEW = "event IN ('$pageview', '$screen')"
# breakdownBy -> (HogQL expressions read from each counted event, whether a row of those values counts).
_ONE = (lambda vs: vs[0] is not None)
_HOST = "extract(properties.{}, '^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#:]*)')"
EVENT_LEVEL = {
    "Page": (["properties.$pathname"], _ONE), "Browser": (["properties.$browser"], _ONE),
    "OS": (["properties.$os"], _ONE), "DeviceType": (["properties.$device_type"], _ONE),
    "Country": (["properties.$geoip_country_code"], _ONE), "ScreenName": (["properties.$screen_name"], _ONE),
    # hours east of UTC: the browser's getTimezoneOffset() is minutes west
    "Timezone": (["-toFloat(properties.$timezone_offset) / 60"], _ONE),
    # tuples, as PostHog's: both sides set and non-zero; a region or city needs its second part
    "Viewport": (["toInt(properties.$viewport_width)", "toInt(properties.$viewport_height)"],
                 lambda vs: bool(vs[0]) and bool(vs[1])),
    "Region": (["properties.$geoip_country_code", "properties.$geoip_subdivision_1_code",
                "properties.$geoip_subdivision_1_name"], lambda vs: vs[1] is not None),
    "City": (["properties.$geoip_country_code", "properties.$geoip_city_name"], lambda vs: vs[1] is not None),
    # the page before: the previous pageview's path, else the referrer's path on the same host, else the referrer
    "PreviousPage": ([f"multiIf(properties.$prev_pageview_pathname IS NOT NULL, properties.$prev_pageview_pathname,"
                      f" {_HOST.format('$current_url')} != '' AND {_HOST.format('$current_url')} = "
                      f"{_HOST.format('$referrer')}, extract(properties.$referrer, '^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*"
                      f"([^?#]*)'), properties.$referrer)"], _ONE),
    # grouped by the language part of "en-US"; the row is named after the region most of its groups have
    "Language": (["properties.$browser_language"], _ONE),
}
# breakdownBy -> (the session's first or last pageview, the property read there).
SESSION_LEVEL = {"InitialPage": ("entry", "$pathname"), "ExitPage": ("exit", "$pathname"),
                 "InitialReferringDomain": ("entry", "$referring_domain"),
                 "InitialUTMSource": ("entry", "utm_source"), "InitialUTMMedium": ("entry", "utm_medium"),
                 "InitialUTMCampaign": ("entry", "utm_campaign"), "InitialUTMTerm": ("entry", "utm_term"),
                 "InitialUTMContent": ("entry", "utm_content"),
                 "InitialUTMSourceMediumCampaign": ("entry", None),
                 "InitialReferringURL": ("entry", "$referrer"),  # without its query string and fragment
                 # the session's last outbound link click (posthog-js's autocapture sets the property)
                 "ExitClick": ("last set", "$external_click_url")}
KEEP_NULL = {"InitialUTMSource", "InitialUTMMedium", "InitialUTMCampaign", "InitialUTMTerm", "InitialUTMContent"}
NULL_DISPLAY = "(none)"
REFERRER_PREFIX = "referrer:"
ORDER_FIELDS = {"Visitors": "visitors", "Views": "views", "BounceRate": "bounce_rate"}
DEFAULT_LIMIT, MAX_LIMIT = 100, 50_000


def _check(node):
    extra = sorted(set(node) - FIELDS)
    if extra:
        raise errors.BadRequest(f"WebStatsTableQuery: unknown field {extra[0]!r}.", code="invalid", attr=extra[0])
    by = node.get("breakdownBy")
    if by not in EVENT_LEVEL and by not in SESSION_LEVEL:
        raise errors.BadRequest(
            f"breakdownBy {by!r} is not supported; phlite breaks down by "
            f"{', '.join(sorted([*EVENT_LEVEL, *SESSION_LEVEL]))}.", code="invalid", attr="breakdownBy")
    for name in ("conversionGoal", "includeScrollDepth", "includeAvgTimeOnPage"):
        if node.get(name):
            raise errors.BadRequest(f"WebStatsTableQuery: {name} is not supported yet.", code="invalid", attr=name)
    for name in ("limit", "offset"):
        v = node.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise errors.BadRequest(f"'{name}' must be a non-negative integer.", code="invalid", attr=name)
    order = node.get("orderBy")
    if order is not None and not (isinstance(order, list) and len(order) == 2 and order[0] in ORDER_FIELDS
                                  and order[1] in ("ASC", "DESC")):
        raise errors.BadRequest(f"'orderBy' must be [one of {', '.join(ORDER_FIELDS)}, \"ASC\" or \"DESC\"].",
                                code="invalid", attr="orderBy")
    return by


def _prop(name):
    # The dotted form (names here are constants of this module), which a materialized column can answer.
    return f"properties.{name}"


def _sessions(store, ctx, tz, lo, hi, picks, counts, timeout_s):
    """{session id: (start ms, is_bounce or None, facts)} of the sessions starting in [lo, hi], from one scan.
    `picks` {name: ("entry" | "exit", property)} puts the value at the session's first or last pageview in
    facts; `counts` {name: HogQL condition} puts how many of its pageviews and screens in [lo, hi] match,
    and for "counted" also "visitor", the person of those."""
    in_span = f"{VIEW} AND timestamp >= {dates.ms_literal(lo, tz)}"
    parts = []
    for name, (which, prop) in picks.items():
        pick = "argMin" if which == "entry" else "argMax"
        among = f"{_prop(prop)} IS NOT NULL" if which == "last set" else VIEW
        parts.append(f", {pick}({_prop(prop)}, if({among}, timestamp, NULL)) AS `{name}`")
    names = list(picks)
    for name, condition in counts.items():
        cond = f"{in_span} AND ({condition})" if condition else in_span
        parts.append(f", countIf({cond}) AS `{name}`")
        names.append(name)
        if name == "counted":
            parts.append(f", min(if({cond}, {ACTOR}, NULL)) AS visitor")
            names.append("visitor")
    text = (f"SELECT $session_id AS s, min(timestamp) AS first, max(timestamp) AS last,"
            f" countIf({VIEW}) AS views, countIf(event = '$autocapture') AS autocaptures{''.join(parts)}"
            f" FROM events WHERE $session_id IS NOT NULL AND timestamp >= {dates.ms_literal(lo - LOOKBACK_MS, tz)}"
            f" AND timestamp <= {dates.ms_literal(hi, tz)} GROUP BY s LIMIT {INSIGHT_MAX_ROWS}")
    out = {}
    for s, first, last, views, autocaptures, *values in execute(store, ctx, text, timeout_s)[1]:
        if first < lo:
            continue
        duration = (last - first) // 1000
        bounce = None if not views else not (views > 1 or autocaptures > 0 or duration >= BOUNCE_SECONDS)
        out[s] = (first, bounce, dict(zip(names, values)))
    return out


def _groups(store, ctx, tz, lo, hi, props, values, timeout_s):
    """[(session id, (value, ...), visitor, views)]: the matching pageviews and screens in [lo, hi], by
    session and by `values` (HogQL expressions; a tuple breakdown has several)."""
    where = [VIEW, "$session_id IS NOT NULL", f"timestamp >= {dates.ms_literal(lo, tz)}",
             f"timestamp <= {dates.ms_literal(hi, tz)}"]
    if props:
        where.append(props)
    names = [f"v{i}" for i in range(len(values))]
    text = (f"SELECT $session_id AS s, {', '.join(f'{v} AS {n}' for v, n in zip(values, names))},"
            f" min({ACTOR}) AS visitor, count() AS views FROM events WHERE {' AND '.join(where)}"
            f" GROUP BY s, {', '.join(names)} LIMIT {INSIGHT_MAX_ROWS}")
    return [(r[0], tuple(r[1:-2]), r[-2], r[-1]) for r in execute(store, ctx, text, timeout_s)[1]]


def _combined(values):
    """PostHog's "source / medium / campaign": a missing source falls back to the referring domain."""
    source = values.get("utm_source")
    if source is None:
        domain = values.get("referring_domain")
        source = REFERRER_PREFIX + domain if domain is not None else NULL_DISPLAY
    return " / ".join([source, values.get("utm_medium") or NULL_DISPLAY, values.get("utm_campaign") or NULL_DISPLAY])


def _without_pathname(properties):
    # PostHog leaves $pathname filters out of the bounce rate of pages: it groups sessions by entry path.
    if not isinstance(properties, list):
        return properties
    return [p for p in properties if not (isinstance(p, dict) and p.get("key") == "$pathname"
                                          and p.get("type", "event") == "event")]


class _Cell:
    __slots__ = ("visitors", "views", "bounces")

    def __init__(self):
        self.visitors, self.views, self.bounces = set(), 0, []


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _order_key(row_metrics, field, direction):
    # PostHog's order: the asked column, then visitors, views, each as (current, previous) in that
    # direction, then the breakdown value ascending; NULLs last.
    fields = [field] + [f for f in ("visitors", "views") if f != field]

    def key(item):
        value, metrics = item
        parts = []
        for f in fields:
            for v in metrics.get(f, (None, None)):
                missing = v is None
                parts.append((missing, 0 if missing else (-v if direction == "DESC" else v)))
        return (*parts, value is None, "" if value is None else str(value))

    return sorted(row_metrics.items(), key=key)


def run_web_stats(store, project, node, now_ms, timeout_s):
    by = _check(node)
    tz = project["timezone"]
    start, end, lower = dates.resolve_range(node.get("dateRange"), "day", now_ms, tz, project["week_start_day"])
    if start is None:
        raise errors.BadRequest("WebStatsTableQuery needs a date_from.", code="invalid", attr="date_from")
    compare = bool((node.get("compareFilter") or {}).get("compare"))
    length = end - lower + 1
    span_lo = lower - length if compare else lower
    bounce_rate = node.get("includeBounceRate") is True
    ctx = context(project, now_ms, max_rows=INSIGHT_MAX_ROWS)
    props = to_hogql(node.get("properties"))

    picks, counts = {}, {}
    if by in SESSION_LEVEL:
        which, prop = SESSION_LEVEL[by]
        if prop is None:
            picks = {"utm_source": ("entry", "utm_source"), "utm_medium": ("entry", "utm_medium"),
                     "utm_campaign": ("entry", "utm_campaign"), "referring_domain": ("entry", "$referring_domain")}
        else:
            picks = {"value": (which, prop)}
        counts["counted"] = props  # a session-level value needs no second scan
    if by == "Page" and bounce_rate:
        picks["entry"] = ("entry", "$pathname")
        counts["bounce_counted"] = to_hogql(_without_pathname(node.get("properties")))
    sessions = _sessions(store, ctx, tz, span_lo, end, picks, counts, timeout_s)

    def add(pair, p, visitor, views, bounce):
        cell = pair[p]
        if visitor is not None:
            cell.visitors.add(visitor)
        cell.views += views
        cell.bounces.append(bounce)

    cells: dict = {}
    entry_bounces: dict = {}
    if by in SESSION_LEVEL:
        for first, bounce, facts in sessions.values():
            if not facts["counted"]:
                continue
            v = _combined(facts) if by == "InitialUTMSourceMediumCampaign" else facts["value"]
            if by == "InitialReferringURL" and v is not None:
                v = v.split("?", 1)[0].split("#", 1)[0]
            if v is None and by not in KEEP_NULL:
                continue
            add(cells.setdefault(v, (_Cell(), _Cell())), 0 if first >= lower else 1, facts["visitor"],
                facts["counted"], bounce)
    else:
        exprs, keep = EVENT_LEVEL[by]
        regions: dict = {}
        for s, vs, visitor, views in _groups(store, ctx, tz, span_lo, end, props, exprs, timeout_s):
            session = sessions.get(s)
            if session is None or not keep(vs):
                continue
            v = vs[0] if len(vs) == 1 else vs
            if by == "Language":
                v, _, region = str(v).partition("-")
                counts_of = regions.setdefault(v, {})
                counts_of[region] = counts_of.get(region, 0) + 1
            add(cells.setdefault(v, (_Cell(), _Cell())), 0 if session[0] >= lower else 1, visitor, views, session[1])
        if by == "Language":
            # the most groups, ties to the alphabetically first (ClickHouse's topK is approximate anyway)
            top = {lang: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for lang, c in regions.items()}
            cells = {f"{lang}-{top[lang]}": pair for lang, pair in cells.items()}
        if by == "Page" and bounce_rate:
            # A page's bounce rate is that of the sessions that entered on it.
            for first, bounce, facts in sessions.values():
                if facts["bounce_counted"]:
                    entry_bounces.setdefault(facts["entry"], ([], []))[0 if first >= lower else 1].append(bounce)

    metrics = {}
    for value, pair in cells.items():
        m = {"visitors": tuple(len(c.visitors) for c in pair), "views": tuple(c.views for c in pair)}
        if bounce_rate:
            bounces = entry_bounces.get(value, ([], [])) if by == "Page" else (pair[0].bounces, pair[1].bounces)
            m["bounce_rate"] = tuple(_mean(b) for b in bounces)
        if not compare:
            m = {k: (v[0], None) for k, v in m.items()}
        metrics[value] = m

    order = node.get("orderBy") or ["Visitors", "DESC"]
    field = ORDER_FIELDS[order[0]]
    if field == "bounce_rate" and not bounce_rate:
        field = "visitors"
    ordered = _order_key(metrics, field, order[1])
    total = sum((m[field][0] or 0) for m in metrics.values())

    def fill(m):
        if field == "bounce_rate":
            return m[field][0]
        return m[field][0] / total if total else None

    limit = node.get("limit") or DEFAULT_LIMIT
    limit = min(limit, MAX_LIMIT)
    offset = node.get("offset") or 0
    page = ordered[offset:offset + limit]
    columns = ["context.columns.breakdown_value", "context.columns.visitors", "context.columns.views"]
    types = [["context.columns.breakdown_value", "Nullable(String)"],
             ["context.columns.visitors", "Tuple(UInt64, Nullable(UInt64))"],
             ["context.columns.views", "Tuple(UInt64, Nullable(UInt64))"]]
    if bounce_rate:
        columns.append("context.columns.bounce_rate")
        types.append(["context.columns.bounce_rate", "Tuple(Nullable(Float64), Nullable(Float64))"])
    columns += ["context.columns.ui_fill_fraction", "context.columns.cross_sell"]
    types += [["context.columns.ui_fill_fraction", "Nullable(Float64)"], ["context.columns.cross_sell", "String"]]
    results = []
    for value, m in page:
        row = [list(value) if isinstance(value, tuple) else value, list(m["visitors"]), list(m["views"])]
        if bounce_rate:
            row.append(list(m["bounce_rate"]))
        results += [[*row, fill(m), ""]]
    return {"results": results, "columns": columns, "types": types, "hasMore": len(ordered) > offset + limit,
            "limit": limit, "offset": offset, "samplingRate": {"numerator": 1}, "usedPreAggregatedTables": False,
            "hogql": None, "timings": [], "error": None, "modifiers": node.get("modifiers") or {}}
