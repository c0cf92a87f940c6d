"""FunnelsQuery and RetentionQuery against plain-Python computations over generated events: merges,
window edges, strict and unordered orders, exclusions, breakdowns, retention periods and week starts
(docs/insights.md "FunnelsQuery", docs/insights.md "RetentionQuery")."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from support import InProcessServer, Project, ev, send
from phlite.config import Config

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)
STEPS = ["view", "cart", "buy"]


def generate(seed=3, users=60):
    rnd = random.Random(seed)
    events, merges = [], {}
    for u in range(users):
        did = f"u{u}"
        t = NOW - timedelta(days=rnd.uniform(1, 25))
        for _ in range(rnd.randrange(2, 14)):
            t += timedelta(hours=rnd.choice([1, 2, 5, 20, 30, 100, 200]))
            if t > NOW:
                break
            name = rnd.choice(STEPS + ["other"])
            events.append(ev(name, did if rnd.random() < 0.7 or u % 4 else f"anon{u}", t.isoformat(),
                             **{"$browser": rnd.choice(["Chrome", "Safari", "Firefox"])}))
        if u % 4 == 0:
            merges[f"anon{u}"] = did
            events.append(ev("$identify", did, (NOW - timedelta(days=30)).isoformat(),
                             **{"$anon_distinct_id": f"anon{u}"}))
    return events, merges


EVENTS, MERGES = generate()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    srv = InProcessServer(Config(data_dir=tmp_path_factory.mktemp("funnels")), clock=lambda: NOW.timestamp())
    p = Project(srv, "funnels")
    send(p, *EVENTS)
    p.srv_ = srv
    yield p
    srv.close()


def query(project, q):
    r = project.api("POST", "/api/projects/@project/query/", {"query": q})
    assert r.status == 200, r.body
    return r.json()


def ts(e):
    return datetime.fromisoformat(e["timestamp"]).timestamp()


def by_actor(lo, hi):
    out = {}
    for e in sorted(EVENTS, key=ts):
        if lo <= ts(e) <= hi:
            out.setdefault(MERGES.get(e["distinct_id"], e["distinct_id"]), []).append(e)
    return out


def expected_funnel(steps, window_s, lo, hi, strict=False):
    """Plain reading of a funnel: per entry (a step-1 event) the earliest chain of later steps within
    the window from the entry (an event at the same instant counts as later: ties convert); a person's
    result is the first entry that gets furthest."""
    counts = [0] * len(steps)
    gaps = [[] for _ in steps]
    for evs in by_actor(lo, hi).values():
        best = []
        for i, e in enumerate(evs):
            if e["event"] != steps[0]:
                continue
            times = [ts(e)]
            later = sorted((f for j, f in enumerate(evs) if j != i and ts(f) >= ts(e)),
                           key=lambda f: (ts(f), STEPS.index(f["event"]) if f["event"] in STEPS else 9))
            for f in later:
                if ts(f) - times[0] > window_s or len(times) == len(steps):
                    break
                if f["event"] == steps[len(times)]:
                    times.append(ts(f))
                elif strict:
                    break
            if len(times) > len(best):
                best = times
        for k in range(len(best)):
            counts[k] += 1
            if k and best[k] - best[k - 1] > 0:
                gaps[k].append(best[k] - best[k - 1])
    return counts, gaps


def funnel(project, **ff):
    breakdown = ff.pop("breakdown", None)
    q = {"kind": "FunnelsQuery", "series": [{"kind": "EventsNode", "event": s} for s in STEPS],
         "dateRange": {"date_from": "-30d"}, "funnelsFilter": ff}
    if breakdown:
        q["breakdownFilter"] = {"breakdown": breakdown}
    return query(project, q)["results"]


RANGE = ((NOW - timedelta(days=30)).replace(hour=0, minute=0, second=0).timestamp(),
         NOW.replace(hour=23, minute=59, second=59, microsecond=999000).timestamp())


@pytest.mark.parametrize("window,unit,seconds", [(14, "day", 14 * 86400), (1, "day", 86400), (30, "hour", 108000),
                                                 (5, "hour", 5 * 3600)])
def test_ordered_funnel_matches_python(project, window, unit, seconds):
    steps = funnel(project, funnelWindowInterval=window, funnelWindowIntervalUnit=unit)
    counts, gaps = expected_funnel(STEPS, seconds, *RANGE)
    assert [s["count"] for s in steps] == counts
    assert [s["name"] for s in steps] == STEPS and steps[0]["average_conversion_time"] is None
    assert all(steps[k]["average_conversion_time"] > 0 for k in (1, 2) if gaps[k])


def test_conversion_times_come_from_the_latest_entry(tmp_path):
    # PostHog keeps, per step, the most recent attempt that reached it: view, view, cart converts from
    # the second view; zero-second gaps are left out of the averages.
    srv = InProcessServer(Config(data_dir=tmp_path / "times"), clock=lambda: NOW.timestamp())
    try:
        p = Project(srv)
        t0 = NOW - timedelta(days=3)
        send(p, ev("view", "a", t0.isoformat()), ev("view", "a", (t0 + timedelta(seconds=100)).isoformat()),
             ev("cart", "a", (t0 + timedelta(seconds=160)).isoformat()),
             ev("view", "b", t0.isoformat()), ev("cart", "b", (t0 + timedelta(seconds=20)).isoformat()),
             ev("view", "c", t0.isoformat()), ev("cart", "c", t0.isoformat()))
        steps = query(p, {"kind": "FunnelsQuery", "series": [{"kind": "EventsNode", "event": "view"},
                                                             {"kind": "EventsNode", "event": "cart"}]})["results"]
        assert [s["count"] for s in steps] == [3, 3]
        assert steps[1]["average_conversion_time"] == pytest.approx(40.0)  # (60 + 20) / 2; c's 0 s left out
        assert steps[1]["median_conversion_time"] == pytest.approx(40.0)
    finally:
        srv.close()


def test_step_attribution_takes_the_winning_attempts_event(tmp_path):
    # Breakdown by the value at step 1 of the attempt that counts: a person with only first steps is
    # counted at their first one; one who converts, at the latest entry before converting.
    srv = InProcessServer(Config(data_dir=tmp_path / "attr"), clock=lambda: NOW.timestamp())
    try:
        p = Project(srv)
        t0 = NOW - timedelta(days=3)
        at = [(t0 + timedelta(seconds=s)).isoformat() for s in range(4)]
        send(p, ev("view", "a", at[0], **{"$browser": "Chrome"}), ev("view", "a", at[1], **{"$browser": "Firefox"}),
             ev("view", "a", at[2], **{"$browser": "Opera"}),
             ev("view", "b", at[0], **{"$browser": "Safari"}), ev("view", "b", at[1], **{"$browser": "Edge"}),
             ev("cart", "b", at[2], **{"$browser": "Edge"}),
             ev("cart", "c", at[0], **{"$browser": "Brave"}), ev("view", "c", at[0], **{"$browser": "Vivaldi"}))
        q = {"kind": "FunnelsQuery", "dateRange": {"date_from": "-7d"},
             "series": [{"kind": "EventsNode", "event": "view"}, {"kind": "EventsNode", "event": "cart"}],
             "breakdownFilter": {"breakdown": "$browser"},
             "funnelsFilter": {"breakdownAttributionType": "step", "breakdownAttributionValue": 0}}
        by_value = {r[0]["breakdown_value"][0]: [s["count"] for s in r] for r in query(p, q)["results"]}
        # c's view and cart tie: the view goes first, and the attempt converts at once.
        assert by_value == {"Chrome": [1, 0], "Edge": [1, 1], "Vivaldi": [1, 1]}
    finally:
        srv.close()


def test_strict_funnel_matches_python(project):
    steps = funnel(project, funnelOrderType="strict")
    counts, _ = expected_funnel(STEPS, 14 * 86400, *RANGE, strict=True)
    assert [s["count"] for s in steps] == counts


def test_window_edge_is_inclusive(tmp_path):
    srv = InProcessServer(Config(data_dir=tmp_path / "edge"), clock=lambda: NOW.timestamp())
    try:
        p = Project(srv)
        t0 = NOW - timedelta(days=3)
        send(p, ev("view", "a", t0.isoformat()), ev("cart", "a", (t0 + timedelta(hours=1)).isoformat()),
             ev("view", "b", t0.isoformat()), ev("cart", "b", (t0 + timedelta(hours=1, seconds=1)).isoformat()),
             ev("cart", "c", t0.isoformat()), ev("view", "c", t0.isoformat()))  # a tie converts
        q = {"kind": "FunnelsQuery", "series": [{"kind": "EventsNode", "event": "view"},
                                                {"kind": "EventsNode", "event": "cart"}],
             "funnelsFilter": {"funnelWindowInterval": 1, "funnelWindowIntervalUnit": "hour"}}
        steps = query(p, q)["results"]
        assert [s["count"] for s in steps] == [3, 2]  # a at exactly 1 h converts, b at 1 h 1 s does not
        q["funnelsFilter"]["exclusions"] = [{"kind": "EventsNode", "event": "oops", "funnelFromStep": 0,
                                             "funnelToStep": 1}]
        send(p, ev("oops", "a", (t0 + timedelta(minutes=30)).isoformat()))
        assert [s["count"] for s in query(p, q)["results"]] == [2, 1]  # a is out of the funnel entirely
    finally:
        srv.close()


def test_unordered_funnel(project):
    steps = funnel(project, funnelOrderType="unordered")
    assert [s["name"] for s in steps] == ["Completed 1 step", "Completed 2 steps", "Completed 3 steps"]
    # Any order: per person, the most distinct steps within 14 days of one of their step events.
    want = [0, 0, 0]
    for evs in by_actor(*RANGE).values():
        best = 0
        for i, e in enumerate(evs):
            if e["event"] in STEPS:
                best = max(best, len({f["event"] for f in evs[i:] if f["event"] in STEPS
                                      and ts(f) - ts(e) <= 14 * 86400}))
        for k in range(best):
            want[k] += 1
    assert [s["count"] for s in steps] == want


def test_funnel_breakdown_first_touch(project):
    results = funnel(project, breakdown="$browser")
    assert isinstance(results[0], list)
    total = [sum(r[k]["count"] for r in results) for k in range(3)]
    counts, _ = expected_funnel(STEPS, 14 * 86400, *RANGE)
    assert total == counts
    for r in results:
        assert r[0]["breakdown_value"] == r[0]["breakdown"] and len(r[0]["breakdown_value"]) == 1
    assert [r[-1]["count"] for r in results] == sorted((r[-1]["count"] for r in results), reverse=True)


# --- retention ---------------------------------------------------------------------------------------


def expected_retention(target, returning, period_days, n, first_time=False, week_start=None):
    if week_start is None:
        end = (NOW.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1))
    else:
        today = NOW.date()
        back = (today.weekday() + 1) % 7 if week_start == 0 else today.weekday()
        end = datetime.combine(today - timedelta(days=back), datetime.min.time(), timezone.utc) + timedelta(days=7)
    starts = [end - timedelta(days=period_days * (n - k)) for k in range(n)]

    def idx(t):
        for k, s in enumerate(starts):
            if s <= t < s + timedelta(days=period_days):
                return k
        return None

    cohorts, returns = {}, {}
    firsts = {}
    for e in sorted(EVENTS, key=ts):
        a = MERGES.get(e["distinct_id"], e["distinct_id"])
        t = datetime.fromisoformat(e["timestamp"])
        if e["event"] == target:
            firsts.setdefault(a, t)
            if not first_time and idx(t) is not None:
                cohorts.setdefault(idx(t), set()).add(a)
        if e["event"] == returning and idx(t) is not None:
            returns.setdefault(idx(t), set()).add(a)
    if first_time:
        for a, t in firsts.items():
            if idx(t) is not None:
                cohorts.setdefault(idx(t), set()).add(a)
    return [[len(cohorts.get(k, set())) if j == 0 else
             (len(cohorts.get(k, set()) & returns.get(k + j, set())) if k + j < n else 0) for j in range(n)]
            for k in range(n)], starts


@pytest.mark.parametrize("kind", ["retention_recurring", "retention_first_time"])
def test_daily_retention_matches_python(project, kind):
    body = query(project, {"kind": "RetentionQuery", "retentionFilter": {
        "targetEntity": {"id": "view", "type": "events"}, "returningEntity": {"id": "cart", "type": "events"},
        "retentionType": kind, "period": "Day", "totalIntervals": 10}})
    want, starts = expected_retention("view", "cart", 1, 10, first_time=kind == "retention_first_time")
    assert [[v["count"] for v in r["values"]] for r in body["results"]] == want
    assert body["results"][0]["date"] == starts[0].isoformat().replace("+00:00", "Z")
    assert body["results"][2]["label"] == "Day 2" and body["results"][0]["values"][3]["label"] == "Day 3"


@pytest.mark.parametrize("week_start", [0, 1])
def test_weekly_retention_follows_the_week_start(project, week_start):
    project.srv_.store.update_project(project.id, week_start_day=week_start)
    try:
        body = query(project, {"kind": "RetentionQuery", "retentionFilter": {
            "targetEntity": {"id": "view", "type": "events"}, "returningEntity": {"id": "buy", "type": "events"},
            "period": "Week", "totalIntervals": 4}})
    finally:
        project.srv_.store.update_project(project.id, week_start_day=0)
    want, starts = expected_retention("view", "buy", 7, 4, week_start=week_start)
    assert [[v["count"] for v in r["values"]] for r in body["results"]] == want
    assert [r["date"][:10] for r in body["results"]] == [s.date().isoformat() for s in starts]
