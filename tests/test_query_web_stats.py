"""WebStatsTableQuery against a plain-Python reading of the same generated sessions
(docs/insights.md "WebStatsTableQuery"): every breakdown, the previous period, bounce rate (per entry page
for pages), filters, identify merges, a project timezone with sessions on both sides of midnight, order and
pagination, and PostHog's row shape."""

import random
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from support import InProcessServer, Project, assert_error, ev, send
from phlite.config import Config

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)
TZ = ZoneInfo("America/New_York")
PAGES = ["/", "/pricing", "/docs", "/blog"]
VIEWS = ("$pageview", "$screen")
# The window of `-7d` in the project's zone, and the period before it.
LO = datetime.combine((NOW.astimezone(TZ) - timedelta(days=7)).date(), datetime.min.time(), TZ)
HI = datetime.combine(NOW.astimezone(TZ).date() + timedelta(days=1), datetime.min.time(), TZ) - timedelta(
    milliseconds=1)
PREV_LO = LO - (HI - LO + timedelta(milliseconds=1))


def generate(seed=5):
    rnd = random.Random(seed)
    events = []

    def session(sid, did, t, n, pages=None, names=None):
        entry = {"$referring_domain": rnd.choice(["$direct", "google.com", "news.ycombinator.com", None]),
                 "utm_source": rnd.choice([None, None, "newsletter", "twitter"]),
                 "utm_medium": rnd.choice([None, "email", "social"]),
                 "utm_campaign": rnd.choice([None, "launch"])}
        device = {"$browser": rnd.choice(["Chrome", "Firefox", "Safari"]), "$os": rnd.choice(["Mac OS X", "Windows"]),
                  "$device_type": rnd.choice(["Desktop", "Mobile", None]),
                  "$geoip_country_code": rnd.choice(["DE", "US", None]), "$timezone_offset": rnd.choice([300, -60, -330]),
                  "$viewport_width": rnd.choice([1920, 390, 0]), "$viewport_height": rnd.choice([1080, 844])}
        device["$browser_language"] = rnd.choice(["en-US", "en-US", "en-GB", "de-DE", "de", "fr-FR"])
        device.update(rnd.choice([{"$geoip_subdivision_1_code": "BY", "$geoip_subdivision_1_name": "Bavaria",
                                   "$geoip_city_name": "Munich"},
                                  {"$geoip_subdivision_1_code": "CA", "$geoip_city_name": "San Francisco"}, {}]))
        for k in range(n):
            name = names[k] if names else rnd.choice(
                ["$pageview", "$pageview", "$pageview", "$autocapture", "click", "$screen"])
            props = {"$session_id": sid, **{k2: v for k2, v in device.items() if v is not None}}
            page = pages[k] if pages else rnd.choice(PAGES)
            props["$pathname"] = page
            if name == "$screen":
                props["$screen_name"] = page.strip("/") or "home"
            props.update({k2: v for k2, v in entry.items() if v is not None})
            props["$current_url"] = f"https://example.com{page}"
            referrer = rnd.choice(["$direct", "https://google.com/search?q=x", "https://example.com/docs",
                                   "https://example.com", None])
            if referrer:
                props["$referrer"] = referrer
            if k and rnd.random() < 0.5:
                props["$prev_pageview_pathname"] = rnd.choice(PAGES)
            if name == "$autocapture" and rnd.random() < 0.5:
                props["$external_click_url"] = rnd.choice(["https://github.com/x", "https://docs.python.org/"])
            events.append(ev(name, did, t.isoformat(), **props))
            t += timedelta(seconds=rnd.choice([1, 3, 8, 40]))

    for s in range(160):
        u = rnd.randrange(40)
        did = f"anon{u}" if rnd.random() < 0.5 else f"user{u}"
        session(f"s{s}", did, NOW - timedelta(days=rnd.uniform(0, 16)), rnd.randrange(1, 6))
    # Sessions a minute either side of the window's start (midnight in New York, 05:00 UTC).
    session("edge-before", "user1", LO - timedelta(minutes=1), 2, ["/edge", "/edge"], ["$pageview"] * 2)
    session("edge-after", "user2", LO + timedelta(minutes=1), 1, ["/edge"], ["$pageview"])
    events.append(ev("$pageview", "user3", NOW.isoformat(), **{"$pathname": "/no-session"}))
    # Half the anonymous ids are merged into their user: one person, one visitor.
    for u in range(0, 40, 2):
        events.append(ev("$identify", f"user{u}", (NOW - timedelta(days=20)).isoformat(), **{"$anon_distinct_id": f"anon{u}"}))
    return events


EVENTS = generate()


def person_of(did):
    n = int(did.removeprefix("anon").removeprefix("user"))
    return f"user{n}" if did.startswith("user") or n % 2 == 0 else did


def ts(e):
    return datetime.fromisoformat(e["timestamp"])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    srv = InProcessServer(Config(data_dir=tmp_path_factory.mktemp("webstats")), clock=lambda: NOW.timestamp())
    p = Project(srv, "webstats")
    srv.store.update_project(p.id, timezone="America/New_York")
    send(p, *EVENTS)
    yield p
    srv.close()


EVENT_PROP = {"Page": "$pathname", "Browser": "$browser", "OS": "$os", "DeviceType": "$device_type",
              "ScreenName": "$screen_name", "Country": "$geoip_country_code", "Timezone": "$timezone_offset"}
ENTRY_PROP = {"InitialPage": "$pathname", "InitialReferringDomain": "$referring_domain",
              "InitialUTMSource": "utm_source", "InitialUTMMedium": "utm_medium", "InitialUTMCampaign": "utm_campaign",
              "InitialUTMTerm": "utm_term", "InitialReferringURL": "$referrer"}


def matches(e, filters):
    return all(e["properties"].get(f["key"]) == f["value"] for f in filters)


def expected(by, compare=True, filters=()):
    """{breakdown value: {"visitors": [cur, prev], "views": [...], "bounce_rate": [...]}}, computed directly."""
    sessions = {}
    for e in EVENTS:
        sid = e["properties"].get("$session_id")
        if sid:
            sessions.setdefault(sid, []).append(e)
    span_lo = PREV_LO if compare else LO
    cells = {}
    entry_bounces = {}
    for evs in sessions.values():
        evs.sort(key=ts)
        start = ts(evs[0])
        if not span_lo <= start <= HI:
            continue
        p = 0 if start >= LO else 1
        views = [e for e in evs if e["event"] in VIEWS and ts(e) <= HI]
        duration = int((ts(evs[-1]) - start).total_seconds())
        bounce = None if not views else not (
            len(views) > 1 or any(e["event"] == "$autocapture" for e in evs) or duration >= 10)
        counted = [e for e in views if span_lo <= ts(e) and matches(e, filters)]
        groups = {}
        for e in counted:
            if by == "Timezone":
                value = -e["properties"]["$timezone_offset"] / 60
            elif by == "Viewport":
                w, h = e["properties"]["$viewport_width"], e["properties"]["$viewport_height"]
                value = (w, h) if w and h else None
            elif by in ("Region", "City"):
                keys = ("$geoip_country_code", "$geoip_subdivision_1_code", "$geoip_subdivision_1_name") \
                    if by == "Region" else ("$geoip_country_code", "$geoip_city_name")
                value = tuple(e["properties"].get(k) for k in keys)
                value = value if value[1] is not None else None
            elif by == "Language":
                value = e["properties"]["$browser_language"]
            elif by == "PreviousPage":
                props = e["properties"]
                host = (lambda url: re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#:]*)", url or ""))
                here, there = host(props.get("$current_url")), host(props.get("$referrer"))
                if props.get("$prev_pageview_pathname") is not None:
                    value = props["$prev_pageview_pathname"]
                elif here and there and here.group(1) and here.group(1) == there.group(1):
                    value = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*([^?#]*)", props["$referrer"]).group(1)
                else:
                    value = props.get("$referrer")
            elif by == "ExitClick":
                clicks = [x for x in evs if x["properties"].get("$external_click_url") and ts(x) <= HI]
                value = clicks[-1]["properties"]["$external_click_url"] if clicks else None
            elif by in EVENT_PROP:
                value = e["properties"].get(EVENT_PROP[by])
            elif by == "ExitPage":
                value = views[-1]["properties"].get("$pathname")
            elif by == "InitialUTMSourceMediumCampaign":
                first = views[0]["properties"]
                source = first.get("utm_source") or (
                    "referrer:" + first["$referring_domain"] if first.get("$referring_domain") else "(none)")
                value = f"{source} / {first.get('utm_medium') or '(none)'} / {first.get('utm_campaign') or '(none)'}"
            else:
                value = views[0]["properties"].get(ENTRY_PROP[by])
                if by == "InitialReferringURL" and value:
                    value = re.sub(r"[?#].*", "", value)
            groups.setdefault(value, []).append(e)
        for value, group in groups.items():
            if value is None and not by.startswith("InitialUTM"):
                continue
            cell = cells.setdefault(value, [[set(), 0, []], [set(), 0, []]])[p]
            cell[0].add(person_of(group[0]["distinct_id"]))
            cell[1] += len(group)
            cell[2].append(bounce)
        unfiltered_path = [f for f in filters if f["key"] != "$pathname"]
        if by == "Page" and any(matches(e, unfiltered_path) for e in views if span_lo <= ts(e)):
            entry_bounces.setdefault(views[0]["properties"]["$pathname"], ([], []))[p].append(bounce)

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    if by == "Language":  # by language, named after the region most (session, value) groups have
        merged, regions = {}, {}
        for value, pair in cells.items():
            lang, _, region = value.partition("-")
            regions.setdefault(lang, {}).setdefault(region, 0)
            regions[lang][region] += len(pair[0][2]) + len(pair[1][2])
            into = merged.setdefault(lang, [[set(), 0, []], [set(), 0, []]])
            for p in (0, 1):
                into[p][0] |= pair[p][0]
                into[p][1] += pair[p][1]
                into[p][2] += pair[p][2]
        top = {lang: sorted(r.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for lang, r in regions.items()}
        cells = {f"{lang}-{top[lang]}": pair for lang, pair in merged.items()}
    out = {}
    for value, pair in cells.items():
        bounces = entry_bounces.get(value, ([], [])) if by == "Page" else (pair[0][2], pair[1][2])
        row = {"visitors": [len(pair[0][0]), len(pair[1][0])], "views": [pair[0][1], pair[1][1]],
               "bounce_rate": [mean(bounces[0]), mean(bounces[1])]}
        if not compare:
            row = {k: [v[0], None] for k, v in row.items()}
        out[value] = row
    return out


def run(project, **node):
    body = {"kind": "WebStatsTableQuery", "dateRange": {"date_from": "-7d"}, "properties": [],
            "includeBounceRate": True, **node}
    r = project.api("POST", "/api/projects/@project/query/", {"query": body})
    assert r.status == 200, r.body
    return r.json()


def rows_by_value(body):
    cols = body["columns"]
    return {tuple(row[0]) if isinstance(row[0], list) else row[0]:
            {c.removeprefix("context.columns."): row[i] for i, c in enumerate(cols)} for row in body["results"]}


def check(body, want):
    got = rows_by_value(body)
    assert set(got) == set(want)
    for value, row in want.items():
        assert got[value]["visitors"] == row["visitors"], value
        assert got[value]["views"] == row["views"], value
        assert got[value]["bounce_rate"] == pytest.approx(row["bounce_rate"]), value


@pytest.mark.parametrize("by", ["Page", "InitialPage", "ExitPage", "InitialReferringDomain", "InitialUTMSource",
                                "InitialUTMMedium", "InitialUTMTerm", "InitialUTMSourceMediumCampaign", "Browser", "OS",
                                "DeviceType", "ScreenName", "Country", "Timezone", "Viewport", "Region", "City", "Language", "PreviousPage", "ExitClick",
                                "InitialReferringURL"])
def test_each_breakdown_with_the_previous_period(project, by):
    body = run(project, breakdownBy=by, compareFilter={"compare": True})
    want = expected(by)
    assert want, by
    check(body, want)


def test_shape_order_and_the_window_edge(project):
    body = run(project, breakdownBy="Page")
    assert body["columns"] == ["context.columns.breakdown_value", "context.columns.visitors",
                               "context.columns.views", "context.columns.bounce_rate",
                               "context.columns.ui_fill_fraction", "context.columns.cross_sell"]
    assert [t[0] for t in body["types"]] == body["columns"]
    assert body["hasMore"] is False and body["limit"] == 100 and body["offset"] == 0
    check(body, expected("Page", compare=False))
    rows = body["results"]
    assert all(len(r) == 6 and r[5] == "" and r[1][1] is None for r in rows)
    # Visitors, then views, descending; then the value.
    keys = [(-r[1][0], -r[2][0], r[0]) for r in rows]
    assert keys == sorted(keys)
    total = sum(r[1][0] for r in rows)
    assert [r[4] for r in rows] == pytest.approx([r[1][0] / total for r in rows])
    # The session a minute after New York's midnight counts; the one a minute before does not.
    edge = rows_by_value(body)["/edge"]
    assert edge["views"] == [1, None] and edge["visitors"] == [1, None]
    assert "/no-session" not in rows_by_value(body)


def test_filters_limit_offset_and_order(project):
    chrome = [{"key": "$browser", "value": "Chrome", "operator": "exact", "type": "event"}]
    check(run(project, breakdownBy="Page", properties=chrome, compareFilter={"compare": True}),
          expected("Page", filters=chrome))
    # A $pathname filter narrows the counted views but not the sessions behind a page's bounce rate.
    docs = [{"key": "$pathname", "value": "/docs", "operator": "exact", "type": "event"}]
    check(run(project, breakdownBy="Page", properties=docs, compareFilter={"compare": True}),
          expected("Page", filters=docs))
    full = run(project, breakdownBy="InitialReferringDomain", orderBy=["Views", "ASC"])
    views = [r[2][0] for r in full["results"]]
    assert views == sorted(views)
    page = run(project, breakdownBy="InitialReferringDomain", orderBy=["Views", "ASC"], limit=2, offset=1)
    assert page["results"] == full["results"][1:3] and page["hasMore"] is (len(full["results"]) > 3)
    assert page["limit"] == 2 and page["offset"] == 1
    no_bounce = run(project, breakdownBy="Browser", includeBounceRate=False)
    assert "context.columns.bounce_rate" not in no_bounce["columns"] and len(no_bounce["results"][0]) == 5


@pytest.mark.parametrize("node, attr", [
    ({"breakdownBy": "InitialChannelType"}, "breakdownBy"),
    ({"breakdownBy": None}, "breakdownBy"),
    ({"breakdownBy": "Page", "bogus": 1}, "bogus"),
    ({"breakdownBy": "Page", "orderBy": ["Sessions", "DESC"]}, "orderBy"),
    ({"breakdownBy": "Page", "limit": -1}, "limit"),
    ({"breakdownBy": "Page", "includeScrollDepth": True}, "includeScrollDepth"),
    ({"breakdownBy": "Page", "properties": [{"key": "$browser", "type": "session", "value": "x"}]}, "properties"),
])
def test_bad_requests_name_the_field(project, node, attr):
    r = project.api("POST", "/api/projects/@project/query/", {"query": {
        "kind": "WebStatsTableQuery", "dateRange": {"date_from": "-7d"}, "properties": [], **node}})
    assert_error(r, 400, attr=attr)
