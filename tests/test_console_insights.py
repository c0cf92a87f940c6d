"""The insight pages over real HTTP (docs/console.md "Insights"): what each page shows equals what
`POST /api/projects/<id>/query/` answers for the same query over the same events, the forms work without
script, refused queries are shown beside the form, and hostile captured values stay text."""

import html
import re
from urllib.parse import parse_qsl, urlencode

import pytest

from insights_data import send_all, traffic
from support import console_user, ev, send

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def shop(server):
    """One project with a few hundred visitors over 60 days (so compare has a previous period)."""
    from support import Project

    project = Project(server, name="shop")
    # One session with hostile UTM and country values, which the web page's tables must show as text.
    hostile = [{"event": "$pageview", "distinct_id": "hostile-visitor", "properties": {
        "$session_id": "hostile-session", "$pathname": "/", "$browser": "Chrome", "$os": "Linux",
        "$device_type": "Desktop", "$referring_domain": "$direct", "utm_source": "newsletter", "utm_medium": HOSTILE,
        "utm_campaign": HOSTILE, "$geoip_country_code": HOSTILE}}]
    send_all(project, traffic(150, days=60, seed=3, extra=hostile))
    return project


@pytest.fixture(scope="module")
def member(server):
    return console_user(server, "member")


def query(project, node):
    r = project.api("POST", "/api/projects/@project/query/", {"query": node})
    assert r.status == 200, r.body
    return r.json()


def page(client, project, sub, **params):
    return client.text(f"/project/{project.id}/{sub}?" + urlencode(params))


def rows(body, row_class):
    """[(name text, [data-value numbers])] of the table rows with that class."""
    out = []
    for tr in re.findall(rf'<tr class="{row_class}">(.*?)</tr>', body, re.S):
        name = re.search(r'<td class="name"[^>]*>(.*?)</td>', tr, re.S)
        label = html.unescape(re.sub(r"<[^>]+>", "", name.group(1)).strip()) if name else None
        out.append((label, [float(v) for v in re.findall(r'data-value="([^"]*)"', tr)]))
    return out


def test_trends_page_shows_the_query_apis_series(shop, member):
    body = page(member, shop, "insights/trends", **{"s0.event": "$pageview", "s0.math": "dau",
                                                     "s1.event": "purchase", "s1.math": "sum", "s1.prop": "price",
                                                     "date_from": "-30d", "compare": "1"})
    api = query(shop, {"kind": "TrendsQuery", "interval": "day", "dateRange": {"date_from": "-30d"},
                       "compareFilter": {"compare": True},
                       "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"},
                                  {"kind": "EventsNode", "event": "purchase", "math": "sum",
                                   "math_property": "price"}]})["results"]
    shown = rows(body, "serie-row")
    assert [s[0] for s in shown] == ["$pageview (unique users)", "purchase (sum of price)",
                                     "$pageview (unique users) (previous)", "purchase (sum of price) (previous)"]
    assert [s[1] for s in shown] == [[r["count"], *r["data"]] for r in api]
    assert sum(api[0]["data"]) > 0 and sum(api[2]["data"]) > 0  # both periods have data: the test can fail
    # The chart: one line per series (previous periods dashed), one hover title per point.
    assert body.count('<path class="series c') == 4 and body.count('class="series c0 dashed"') == 1
    assert body.count('<circle class="dot') == 4 * len(api[0]["data"])
    assert "Computed in" in body


def test_trends_breakdown_bar_and_total_value(shop, member):
    body = page(member, shop, "insights/trends", **{"s0.event": "$pageview", "date_from": "-30d",
                                                     "breakdown": "$browser", "breakdown_limit": "2",
                                                     "display": "ActionsBar"})
    api = query(shop, {"kind": "TrendsQuery", "dateRange": {"date_from": "-30d"},
                       "series": [{"kind": "EventsNode", "event": "$pageview"}],
                       "breakdownFilter": {"breakdown": "$browser", "breakdown_limit": 2},
                       "trendsFilter": {"display": "ActionsBar"}})
    shown = rows(body, "serie-row")
    assert [s[0] for s in shown] == ["Chrome", "Safari", "Other"]
    assert [s[1] for s in shown] == [[r["count"], *r["data"]] for r in api["results"]]
    assert api["hasMore"] and "the rest are under “Other”" in body
    assert body.count('<rect class="bar c') == sum(1 for r in api["results"] for v in r["data"] if v)
    body = page(member, shop, "insights/trends", **{"s0.event": "$pageview", "s0.math": "dau", "date_from": "-30d",
                                                     "breakdown": "$os", "display": "ActionsBarValue"})
    api = query(shop, {"kind": "TrendsQuery", "dateRange": {"date_from": "-30d"},
                       "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
                       "breakdownFilter": {"breakdown": "$os", "breakdown_limit": 10},
                       "trendsFilter": {"display": "ActionsBarValue"}})
    assert rows(body, "serie-row") == [(r["breakdown_value"], [r["aggregated_value"]]) for r in api["results"]]


def test_trends_form_adds_and_removes_series_and_says_what_is_missing(shop, member):
    body = page(member, shop, "insights/trends", **{"s0.event": "$pageview", "s1.event": "purchase",
                                                     "action": "add"})
    assert 's2.event' in body and 's3.event' not in body
    body = page(member, shop, "insights/trends", **{"s0.event": "$pageview", "s1.event": "purchase",
                                                     "s2.event": "signed up", "action": "remove:0"})
    assert 'name="s0.event" value="purchase"' in body and 'name="s1.event" value="signed up"' in body
    assert 's2.event' not in body
    body = page(member, shop, "insights/trends", **{"s0.event": "purchase", "s0.math": "sum"})
    assert "This math needs a property" in body and 'id="result"' not in body
    body = page(member, shop, "insights/trends", **{"s0.event": "x", "date_from": "yesterday-ish"})
    assert 'class="query-error"' in body and "date_from" in body  # the runner's message, beside the form


def test_funnel_page_shows_the_query_apis_steps(shop, member):
    params = {"s0.event": "$pageview", "s1.event": "signed up", "s2.event": "purchase", "date_from": "-30d"}
    body = page(member, shop, "insights/funnels", **params)
    node = {"kind": "FunnelsQuery", "dateRange": {"date_from": "-30d"},
            "series": [{"kind": "EventsNode", "event": e} for e in ("$pageview", "signed up", "purchase")],
            "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day"}}
    api = query(shop, node)["results"]
    counts = [float(c) for c in re.findall(r'<td class="num count" data-value="([^"]*)"', body)]
    assert counts == [s["count"] for s in api] and counts[2] > 0
    first = api[0]["count"]
    assert f"{100 * api[1]['count'] / first:.1f}".rstrip("0").rstrip(".") + "%" in body
    assert body.count('<rect class="bar c0"') == 3
    body = page(member, shop, "insights/funnels", **params, breakdown="$browser")
    api = query(shop, {**node, "breakdownFilter": {"breakdown": "$browser"}})["results"]
    shown = rows(body, "group-row")
    assert [s[0] for s in shown] == [steps[0]["breakdown_value"][0] for steps in api]
    assert [s[1] for s in shown] == [[s["count"] for s in steps] for steps in api]
    # A funnel needs an event per step: said beside the empty step, no query run.
    body = page(member, shop, "insights/funnels", **{"s0.event": "$pageview", "s1.event": ""})
    assert "Name the event of this step." in body and 'id="result"' not in body


def test_retention_page_is_the_triangle_of_the_query_api(shop, member):
    body = page(member, shop, "insights/retention", period="Week", intervals="6")
    api = query(shop, {"kind": "RetentionQuery", "retentionFilter": {
        "targetEntity": {"id": "$pageview", "type": "events"}, "returningEntity": {"id": "$pageview", "type": "events"},
        "retentionType": "retention_first_time", "period": "Week", "totalIntervals": 6}})["results"]
    shown = rows(body, "cohort-row")
    assert len(shown) == 6
    for (_, values), cohort in zip(shown, api):
        n = len(api) - api.index(cohort)  # the triangle: later cohorts have fewer periods
        assert values == [cohort["values"][0]["count"]] + [v["count"] for v in cohort["values"][:n]]
    assert sum(v[0] for _, v in shown) > 0
    assert body.count('<td class="out">') == sum(range(6))
    assert '<path class="series c0"' in body  # the mean curve


def test_web_page_tiles_are_the_overview_query(shop, member):
    lazy = page(member, shop, "web", date_from="-14d")
    assert lazy.count('hx-trigger="load"') == 11 and "tables=1" in lazy  # tables load after the numbers
    body = page(member, shop, "web", date_from="-14d", tables="1")  # all inline, as without script
    api = query(shop, {"kind": "WebOverviewQuery", "dateRange": {"date_from": "-14d"}, "properties": [],
                       "compareFilter": {"compare": True}})["results"]
    tiles = dict(re.findall(r'<div class="card tile" data-key="([^"]+)">\s*<span>[^<]*</span>\s*<span class="n">([^<]*)<',
                            body))
    by_key = {r["key"]: r for r in api}
    assert tiles["visitors"] == f"{by_key['visitors']['value']:,}" and by_key["visitors"]["value"] > 0
    assert tiles["views"] == f"{by_key['views']['value']:,}"
    assert tiles["sessions"] == f"{by_key['sessions']['value']:,}"
    pct = by_key["bounce rate"]["value"]
    assert tiles["bounce rate"] == f"{pct:.1f}".rstrip("0").rstrip(".") + "%"
    change = by_key["visitors"]["changeFromPreviousPct"]
    assert change is not None and f"{change:+d}%" in body
    assert body.count('<path class="series c') == 2  # visitors and views per day
    # The tables: each is the WebStatsTableQuery answer for its breakdown (visitors, views[, bounce rate]).
    # Exit pages have no bounce column: PostHog asks none there (a session's bounce is its entry page's).
    assert re.findall(r'<div class="web-table" data-by="([^"]+)">', body) == [
        "Page", "InitialPage", "ExitPage", "InitialReferringDomain", "InitialUTMSource", "InitialUTMMedium",
        "InitialUTMCampaign", "Browser", "OS", "DeviceType", "Country"]
    for by in ("Page", "InitialPage", "ExitPage", "InitialReferringDomain", "InitialUTMMedium", "InitialUTMCampaign",
               "Browser", "Country"):
        bounce = by in ("Page", "InitialPage")
        node = {"kind": "WebStatsTableQuery", "breakdownBy": by, "dateRange": {"date_from": "-14d"}, "properties": [],
                "limit": 10, "compareFilter": {"compare": True}}
        if bounce:
            node["includeBounceRate"] = True
        answer = query(shop, node)
        section = re.search(rf'<div class="web-table" data-by="{by}">(.*?)</table>', body, re.S).group(1)
        heads = re.findall(r"<th[^>]*>([^<]*)</th>", section)
        assert heads[1:] == (["Visitors", "Views", "Bounce"] if bounce else ["Visitors", "Views"]), (by, heads)
        shown = [[html.unescape(label), [float(v) for v in re.findall(r'data-value="([^"]*)"', tr)]]
                 for tr, label in re.findall(r'(<tr><td class="name wrap"><span class="label">([^<]*)</span>.*?</tr>)',
                                             section, re.S)]
        width = 3 if bounce else 2
        fragment = page(member, shop, "web/table", by=by, date_from="-14d", compare="1")
        assert section in fragment  # the same table, alone
        assert len(shown) == len(answer["results"]) > 1, by
        for (label, values), row in zip(shown, answer["results"]):
            assert label == ("(none)" if row[0] is None else row[0]), (by, label)
            assert values == [cell[0] for cell in row[1:1 + width]], (by, label)
        if by in ("InitialUTMMedium", "InitialUTMCampaign", "Country"):
            # the hostile session's value: a row of its own, escaped (the label regex above reads no tag)
            assert HOSTILE in [label for label, _ in shown] and HOSTILE in [row[0] for row in answer["results"]]
            assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in section and "<script>window" not in section
    assert "<script>window" not in body and "<img src=x" not in body


def test_sql_page_results_and_errors(shop, member):
    body = page(member, shop, "sql", q="SELECT event, count() AS n FROM events GROUP BY event ORDER BY n DESC")
    api = query(shop, {"kind": "HogQLQuery",
                       "query": "SELECT event, count() AS n FROM events GROUP BY event ORDER BY n DESC"})
    cells = [html.unescape(c) for c in re.findall(r'<td class="wrap">([^<]*)</td>', body)]
    assert cells == [str(v) for row in api["results"] for v in row] and len(api["results"]) == 4
    assert '<th title="Int64">n</th>' in body
    body = page(member, shop, "sql", q="SELECT nope FROM events")
    assert re.search(r'class="query-error" role="alert">.*Unable to resolve field: nope', body, re.S)
    body = page(member, shop, "sql", q="SELECT * FROM event")  # the store's table, not an exposed one
    assert 'class="query-error"' in body and 'class="sql-results"' not in body
    body = page(member, shop, "sql", q="SELECT NULL AS nothing")
    assert '<td class="wrap null">null</td>' in body


def test_hostile_captured_values_stay_text_on_every_insight_page(server, member):
    from support import Project

    project = Project(server)
    send(project, *[ev(HOSTILE, "h-1", **{"$browser": HOSTILE, "$session_id": "s1", "$pathname": HOSTILE,
                                          HOSTILE: HOSTILE}),
                    ev("$pageview", "h-2", **{"$browser": HOSTILE, "$session_id": "s2"}),
                    ev("$pageview", HOSTILE, **{"$session_id": "s3"})])
    pages = [("insights/trends", {"s0.event": HOSTILE, "breakdown": "$browser"}),
             ("insights/trends", {"s0.event": "", "breakdown": HOSTILE, "display": "ActionsBarValue"}),
             ("insights/trends", {"s0.event": "$pageview", "breakdown": "$browser", "display": "ActionsBar"}),
             ("insights/funnels", {"s0.event": HOSTILE, "s1.event": "$pageview", "breakdown": "$browser"}),
             ("insights/retention", {"target": HOSTILE, "returning": HOSTILE}),
             ("web", {"p.key": HOSTILE, "p.value": HOSTILE}),
             ("sql", {"q": f"SELECT event, properties.$browser, distinct_id FROM events -- {HOSTILE}"}),
             ("sql", {"q": HOSTILE})]
    for sub, params in pages:
        body = page(member, project, sub, **params)
        assert "<script>window" not in body and "<img src=x" not in body, (sub, params)
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body, (sub, params)


def test_insight_pages_need_a_session(server, shop):
    from support import ConsoleClient

    anon = ConsoleClient(server.url)
    for sub in ("insights", "insights/trends", "insights/funnels", "insights/retention", "web", "sql"):
        r = anon.get(f"/project/{shop.id}/{sub}")
        assert r.status == 303 and "/console/login" in r.headers["Location"], sub


def saved_id(location):
    return int(re.search(r"[?&]insight=(\d+)", location).group(1))


def test_save_an_insight_open_it_and_put_it_on_a_dashboard(shop, member):
    pid = shop.id
    params = urlencode({"s0.event": "$pageview", "s0.math": "dau", "date_from": "-30d", "breakdown": "$browser"})
    page(member, shop, "insights/trends", **dict(parse_qsl(params)))  # the page, for the CSRF token
    r = member.post(f"/project/{pid}/insights/save", {"page": "trends", "params": params, "name": "Visitors <b>",
                                                      "mode": "new"})
    assert r.status == 303, r.body
    iid = saved_id(r.headers["Location"])
    # The API sees the same insight, in PostHog's wrapper.
    api = shop.api("GET", f"/api/projects/@project/insights/{iid}/").json()
    assert api["name"] == "Visitors <b>" and api["query"]["kind"] == "InsightVizNode"
    source = api["query"]["source"]
    assert source["series"][0]["math"] == "dau" and source["breakdownFilter"]["breakdown"] == "$browser"
    # Opening it shows its page with its parameters, and says which insight it is.
    r = member.get(f"/project/{pid}/insights/{iid}")
    assert r.status == 303 and "/insights/trends?" in r.headers["Location"]
    body = member.text(r.headers["Location"])
    assert "Visitors &lt;b&gt;" in body and 'value="dau" selected' in body and 'value="$browser"' in body
    assert [s[0] for s in rows(body, "serie-row")][:2] == ["Chrome", "Safari"]
    # Save changes (a bar chart now) keeps the id; "save as new" makes another.
    changed = params + "&display=ActionsBar"
    r = member.post(f"/project/{pid}/insights/save", {"page": "trends", "params": changed, "insight": str(iid),
                                                      "name": "Visitors", "mode": "update"})
    assert saved_id(r.headers["Location"]) == iid
    api = shop.api("GET", f"/api/projects/@project/insights/{iid}/").json()
    assert api["name"] == "Visitors" and api["query"]["source"]["trendsFilter"]["display"] == "ActionsBar"
    # SQL and funnels save too; the list shows all three.
    q = "SELECT event, count() AS n FROM events GROUP BY event ORDER BY n DESC"
    r = member.post(f"/project/{pid}/insights/save", {"page": "sql", "params": urlencode({"q": q}),
                                                      "name": "Events by name"})
    sql_id = saved_id(r.headers["Location"])
    assert "/sql?" in r.headers["Location"]
    r = member.post(f"/project/{pid}/insights/save", {"page": "funnels", "name": "Signup funnel", "params": urlencode(
        {"s0.event": "$pageview", "s1.event": "signed up", "date_from": "-30d"})})
    funnel_id = saved_id(r.headers["Location"])
    listing = member.text(f"/project/{pid}/insights")
    assert listing.count('class="saved-row"') >= 3 and "Signup funnel" in listing and ">SQL<" in listing
    # A dashboard with the three; each tile draws its kept result.
    r = member.post(f"/project/{pid}/dashboards", {"name": "Every morning"})
    assert r.status == 303
    did = int(r.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    for insight in (iid, sql_id, funnel_id):
        assert member.post(f"/project/{pid}/dashboards/{did}", {"action": "add", "insight": str(insight)}).status == 303
    board = member.text(f"/project/{pid}/dashboards/{did}")
    assert board.count('class="dash-tile"') == 3
    assert board.count('<rect class="bar c') > 0 and '<table class="data sql-results">' in board
    assert "funnel-chart" in board
    api = shop.api("GET", f"/api/projects/@project/dashboards/{did}/").json()
    assert sorted(t["insight"]["id"] for t in api["tiles"]) == sorted([iid, sql_id, funnel_id])
    funnel_tile = next(t for t in api["tiles"] if t["insight"]["id"] == funnel_id)
    counts = [s["count"] for s in funnel_tile["insight"]["result"]]
    assert f">{counts[1]:,} · " in board  # the funnel tile's step label is the kept result's count
    # Remove a tile, rename, delete (the insights stay).
    tile_id = funnel_tile["id"]
    member.post(f"/project/{pid}/dashboards/{did}", {"action": f"remove:{tile_id}"})
    member.post(f"/project/{pid}/dashboards/{did}", {"action": "rename", "name": "Mornings"})
    board = member.text(f"/project/{pid}/dashboards/{did}")
    assert board.count('class="dash-tile"') == 2 and "<h1>Mornings" in board
    assert member.post(f"/project/{pid}/dashboards/{did}", {"action": "delete"}).status == 303
    assert member.get(f"/project/{pid}/dashboards/{did}").status == 404
    assert shop.api("GET", f"/api/projects/@project/insights/{funnel_id}/").status == 200
    # Deleting an insight from the list.
    assert member.post(f"/project/{pid}/insights/{funnel_id}/delete", {}).status == 303
    assert shop.api("GET", f"/api/projects/@project/insights/{funnel_id}/").status == 404
    assert "Signup funnel" not in member.text(f"/project/{pid}/insights")


def test_saved_insights_stay_in_their_project(server, shop, member):
    from support import Project

    other = Project(server)
    params = urlencode({"s0.event": "$pageview"})
    page(member, shop, "insights/trends")
    r = member.post(f"/project/{shop.id}/insights/save", {"page": "trends", "params": params, "name": "mine"})
    iid = saved_id(r.headers["Location"])
    assert member.get(f"/project/{other.id}/insights/{iid}").status == 404
    r = member.post(f"/project/{other.id}/insights/save", {"page": "trends", "params": params, "insight": str(iid),
                                                           "mode": "update", "name": "stolen"})
    assert r.status == 404
    assert shop.api("GET", f"/api/projects/@project/insights/{iid}/").json()["name"] == "mine"


def test_odd_parameters_are_pages_not_server_errors(server, shop, member):
    big = "9" * 30
    pid = shop.id
    for sub, params in [
            ("insights/trends", {"s0.math": "evil", "interval": "evil", "display": "x", "breakdown_limit": "-5",
                                 "date_from": "-99999999y"}),
            ("insights/trends", {"action": "remove:abc"}), ("insights/trends", {"action": "remove:999"}),
            ("insights/funnels", {"window": big, "window_unit": "year", "order": "x", "s0.event": "a", "s1.event": "b"}),
            ("insights/retention", {"intervals": "100000", "period": "Hour", "date_to": "garbage"}),
            ("web", {"date_from": "garbage"}), ("web/table", {"by": "Page", "date_from": "x"}),
            ("sql", {"q": "SELECT " + "(" * 400 + "1" + ")" * 400}), ("sql", {"q": "x" * 30_000})]:
        r = member.get(f"/project/{pid}/{sub}?" + urlencode(params))
        assert r.status == 200 and b"went wrong" not in r.body, (sub, params, r.status)
    assert b"too far from today" in member.get(f"/project/{pid}/insights/trends?date_from=-99999999y").body
    assert b"nested too deeply" in member.get(f"/project/{pid}/sql?" + urlencode(
        {"q": "SELECT " + "(" * 400 + "1" + ")" * 400})).body
    for path, fields in [("insights/save", {"page": "trends", "insight": big, "mode": "update"}),
                         ("insights/save", {"page": "trends", "params": "%%%&&&=\x00", "dashboard": big}),
                         (f"dashboards/{big}", {"action": "add", "insight": big}),
                         (f"insights/{big}/delete", {})]:
        r = member.post(f"/project/{pid}/{path}", fields)
        assert r.status in (303, 400, 404) and b"went wrong" not in r.body, (path, r.status)
    assert member.get(f"/project/{pid}/dashboards/{big}").status == 404
    assert member.get(f"/project/{pid}/web/table?by=Nope").status == 404


def test_dashboard_date_range_applies_to_every_tile_and_the_list_searches(shop, member):
    pid = shop.id
    page(member, shop, "insights")
    r = member.post(f"/project/{pid}/dashboards", {"name": "Ranges"})
    did = int(r.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    params = urlencode({"s0.event": "$pageview", "date_from": "-30d", "display": "ActionsBarValue"})
    r = member.post(f"/project/{pid}/insights/save", {"page": "trends", "params": params, "name": "Views, ranged",
                                                      "dashboard": str(did)})
    assert r.status == 303
    def tile_total():
        return rows(member.text(f"/project/{pid}/dashboards/{did}?refresh=1"), "serie-row")[0][1][0]
    month = tile_total()
    assert member.post(f"/project/{pid}/dashboards/{did}", {"action": "dates", "date_from": "-7d"}).status == 303
    api = shop.api("GET", f"/api/projects/@project/dashboards/{did}/").json()
    assert api["filters"]["date_from"] == "-7d"
    week = query(shop, {"kind": "TrendsQuery", "dateRange": {"date_from": "-7d"}, "trendsFilter": {
        "display": "ActionsBarValue"}, "series": [{"kind": "EventsNode", "event": "$pageview"}]})["results"][0]
    assert tile_total() == week["aggregated_value"] < month
    member.post(f"/project/{pid}/dashboards/{did}", {"action": "dates", "date_from": ""})
    assert tile_total() == month
    listing = member.text(f"/project/{pid}/insights?search=ranged")
    assert "Views, ranged" in listing and listing.count('class="saved-row"') == 1
    assert 'class="saved-row"' not in member.text(f"/project/{pid}/insights?search=no-such-name")
