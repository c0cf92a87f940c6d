"""TrendsQuery against a plain-Python computation over the same generated events: totals, uniques
after merges, WAU/MAU windows, property maths, breakdowns with "other", compare, time zones, week
starts and zero-filled buckets (docs/insights.md "TrendsQuery")."""

import random
import statistics
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from support import InProcessServer, Project, ev, send
from phlite.config import Config

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)  # a Wednesday
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge", "Opera", None]


def generate(seed=7, n=600):
    rnd = random.Random(seed)
    events, merges = [], {}
    for i in range(n):
        user = rnd.randrange(40)
        did = f"anon-{user}" if user % 3 == 0 and rnd.random() < 0.5 else f"user-{user}"
        ts = NOW - timedelta(days=rnd.uniform(0, 40))
        props = {"$session_id": f"s-{user}-{rnd.randrange(3)}", "amount": rnd.randrange(1, 100)}
        b = rnd.choice(BROWSERS)
        if b:
            props["$browser"] = b
        events.append(ev(rnd.choice(["$pageview", "$pageview", "buy"]), did, ts.isoformat(), **props))
    # Users 0, 3, 6... browsed anonymously and were identified at the end: one person each.
    for user in range(0, 40, 3):
        events.append(ev("$identify", f"user-{user}", (NOW - timedelta(days=41)).isoformat(),
                         **{"$anon_distinct_id": f"anon-{user}"}))
        merges[f"anon-{user}"] = f"user-{user}"
    return events, merges


EVENTS, MERGES = generate()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = InProcessServer(Config(data_dir=tmp_path_factory.mktemp("trends")), clock=lambda: NOW.timestamp())
    yield s
    s.close()


@pytest.fixture(scope="module")
def project(srv):
    p = Project(srv, "trends")
    send(p, *EVENTS)
    return p


def trends(project, **q):
    r = project.api("POST", "/api/projects/@project/query/", {"query": {"kind": "TrendsQuery", **q}})
    assert r.status == 200, r.body
    return r.json()


# --- the independent computation --------------------------------------------------------------


def parse(e):
    return datetime.fromisoformat(e["timestamp"])


def actor(e):
    return MERGES.get(e["distinct_id"], e["distinct_id"])


def day_buckets(tz, start_days_ago=7):
    z = ZoneInfo(tz)
    today = NOW.astimezone(z).date()
    return [today - timedelta(days=k) for k in range(start_days_ago, -1, -1)]


def local_day(e, tz):
    return parse(e).astimezone(ZoneInfo(tz)).date()


def expected_daily(event, math, tz="UTC", prop=None, browser=..., days=7):
    out = []
    for d in day_buckets(tz, days):
        evs = [e for e in EVENTS if e["event"] == event and local_day(e, tz) == d
               and (browser is ... or e["properties"].get("$browser") == browser)]
        if math == "total":
            out.append(len(evs))
        elif math == "dau":
            out.append(len({actor(e) for e in evs}))
        elif math == "unique_session":
            out.append(len({e["properties"]["$session_id"] for e in evs}))
        elif math == "weekly_active":
            window = [e for e in EVENTS if e["event"] == event and d - timedelta(days=6) <= local_day(e, tz) <= d]
            out.append(len({actor(e) for e in window}))
        else:
            vals = [float(e["properties"][prop]) for e in evs]
            if not vals:
                out.append(0.0)
            elif math == "sum":
                out.append(sum(vals))
            elif math == "avg":
                out.append(statistics.fmean(vals))
            elif math == "max":
                out.append(max(vals))
            elif math == "median":
                out.append(statistics.quantiles(vals, n=2, method="inclusive")[0] if len(vals) > 1 else vals[0])
    return out


@pytest.mark.parametrize("math", ["total", "dau", "unique_session", "weekly_active"])
@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_daily_series_match_python(srv, project, math, tz):
    srv.store.update_project(project.id, timezone=tz)
    try:
        body = trends(project, series=[{"kind": "EventsNode", "event": "$pageview", "math": math}])
    finally:
        srv.store.update_project(project.id, timezone="UTC")
    [r] = body["results"]
    assert r["days"] == [d.isoformat() for d in day_buckets(tz)]  # -7d default: 8 zero-filled days
    assert r["data"] == expected_daily("$pageview", math, tz)
    assert r["count"] == float(sum(r["data"]))
    assert body["timezone"] == tz


@pytest.mark.parametrize("math", ["sum", "avg", "max", "median"])
def test_property_maths_match_python(project, math):
    body = trends(project, series=[{"kind": "EventsNode", "event": "buy", "math": math, "math_property": "amount"}])
    got = body["results"][0]["data"]
    assert got == pytest.approx(expected_daily("buy", math, prop="amount"))


def test_breakdown_top_values_and_other(project):
    body = trends(project, series=[{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
                  dateRange={"date_from": "-30d"},
                  breakdownFilter={"breakdown": "$browser", "breakdown_type": "event", "breakdown_limit": 2})
    got = {r["breakdown_value"]: r["data"] for r in body["results"]}
    days = day_buckets("UTC", 30)

    def dau(pred):
        return [len({actor(e) for e in EVENTS if e["event"] == "$pageview" and local_day(e, "UTC") == d
                     and pred(e["properties"].get("$browser"))}) for d in days]

    totals = {b: sum(dau(lambda x, b=b: x == b)) for b in BROWSERS if b}
    top = sorted(totals, key=lambda b: (-totals[b], b))[:2]
    assert list(got) == top + ["$$_posthog_breakdown_other_$$"]
    for b in top:
        assert got[b] == dau(lambda x, b=b: x == b)
    # "other" counts each person once per day across all the remaining values (and no value).
    assert got["$$_posthog_breakdown_other_$$"] == dau(lambda x: x not in top)
    assert body["hasMore"] is True


def test_breakdown_null_value_and_labels(project):
    body = trends(project, series=[{"kind": "EventsNode", "event": "buy"}],
                  breakdownFilter={"breakdown": "$browser"})
    values = [r["breakdown_value"] for r in body["results"]]
    assert values[-1] == "$$_posthog_breakdown_null_$$" and len(values) == len(set(values))
    for r in body["results"]:
        b = None if r["breakdown_value"].startswith("$$") else r["breakdown_value"]
        assert r["data"] == [float(x) for x in expected_daily("buy", "total", browser=b)]
        assert r["label"] == r["breakdown_value"]


def test_compare_to_previous_period(project):
    body = trends(project, series=[{"kind": "EventsNode", "event": "$pageview"}], compareFilter={"compare": True})
    current, previous = body["results"]
    assert current["compare_label"] == "current" and previous["compare_label"] == "previous"
    assert previous["days"] == [(d - timedelta(days=8)).isoformat() for d in day_buckets("UTC")]
    assert previous["data"] == [sum(1 for e in EVENTS if e["event"] == "$pageview" and local_day(e, "UTC") == d
                                    - timedelta(days=8)) for d in day_buckets("UTC")]


def test_weeks_start_on_the_projects_day(srv, project):
    for ws, first in ((0, "2026-11-01"), (1, "2026-11-02")):
        srv.store.update_project(project.id, week_start_day=ws)
        body = trends(project, series=[{"kind": "EventsNode", "event": "$pageview"}], interval="week",
                      dateRange={"date_from": "2026-11-03", "date_to": "2026-11-30"})
        r = body["results"][0]
        assert r["days"][0] == first
        step = 7
        starts = [datetime.fromisoformat(first).date() + timedelta(days=step * k) for k in range(len(r["days"]))]
        lo = datetime(2026, 11, 3).date()  # the first week counts only from date_from's day
        hi = datetime(2026, 11, 30).date()
        want = [sum(1 for e in EVENTS if e["event"] == "$pageview"
                    and max(s, lo) <= local_day(e, "UTC") <= min(s + timedelta(days=6), hi)) for s in starts]
        assert r["data"] == want
    srv.store.update_project(project.id, week_start_day=0)


def test_month_and_hour_intervals_and_absolute_range(project):
    body = trends(project, series=[{"kind": "EventsNode", "event": "buy"}], interval="month",
                  dateRange={"date_from": "2026-10-15", "date_to": "2026-12-01"})
    r = body["results"][0]
    assert r["days"] == ["2026-10-01", "2026-11-01", "2026-12-01"] and r["labels"][0] == "Oct 2026"
    months = [(2026, 10), (2026, 11), (2026, 12)]
    # A month interval counts from the 1st of date_from's month; date_to is pushed to the end of its day.
    assert r["data"] == [sum(1 for e in EVENTS if e["event"] == "buy" and (parse(e).year, parse(e).month) == m
                             and parse(e).date() <= datetime(2026, 12, 1).date()) for m in months]
    body = trends(project, series=[{"kind": "EventsNode", "event": "$pageview"}], interval="hour",
                  dateRange={"date_from": "-24h"})
    r = body["results"][0]
    assert len(r["days"]) == 25 and r["days"][-1] == "2026-12-02 15:00:00"


def test_property_filters_and_total_value(project):
    body = trends(project, series=[{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
                  properties=[{"key": "$browser", "value": ["Chrome", "Safari"], "operator": "exact"}],
                  trendsFilter={"display": "BoldNumber"}, dateRange={"date_from": "-14d"})
    r = body["results"][0]
    lo = NOW.date() - timedelta(days=14)
    want = len({actor(e) for e in EVENTS if e["event"] == "$pageview" and local_day(e, "UTC") >= lo
                and e["properties"].get("$browser") in ("Chrome", "Safari")})
    assert r["aggregated_value"] == want and r["data"] == []


def test_empty_series_is_zero_filled(project):
    body = trends(project, series=[{"kind": "EventsNode", "event": "never-sent"}])
    assert body["results"][0]["data"] == [0] * 8
    body = trends(project, series=[{"kind": "EventsNode", "event": "never-sent"}],
                  breakdownFilter={"breakdown": "$browser"})
    assert body["results"] == []
