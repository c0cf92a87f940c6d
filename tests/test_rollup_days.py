"""The daily roll-up `actor_day` (docs/insights.md "Roll-ups"): exactly the stored events grouped by project,
event, day in the project's zone and person after merges, through late events, merges, deleted persons and
a change of zone; and daily, weekly and monthly trends read from it give the answers computed here in plain
Python from the events sent, before and after each recount."""

import sqlite3
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from support import Clock, InProcessServer, Project, ev, person, send
from phlite.config import Config
from phlite.query.functions import local_day
from phlite.query.hogql import Context
from phlite.query.rollup import day_rollup_context

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)  # 35 days back crosses New York's DST change


@pytest.fixture
def srv(tmp_path):
    s = InProcessServer(Config(data_dir=tmp_path / "d", retention_interval=0), clock=Clock(NOW.timestamp()))
    yield s
    s.close()


class World:
    """What was sent, and who is whom after the merges sent, kept here without phlite."""

    def __init__(self):
        self.events = []  # (ms, event, distinct id)
        self.parent = {}

    def root(self, d):
        while self.parent.get(d, d) != d:
            d = self.parent[d]
        return d

    def add(self, name, distinct_id, ts, **props):
        self.events.append((int(ts.timestamp() * 1000), name, distinct_id))
        if name == "$identify" and props.get("$anon_distinct_id"):
            self.parent[self.root(props["$anon_distinct_id"])] = self.root(distinct_id)
        return ev(name, distinct_id, ts.isoformat(), **props)

    def forget(self, distinct_ids):
        self.events = [e for e in self.events if e[2] not in distinct_ids]

    def daily(self, tz, event="$pageview", days=31):
        """{local date: (events, distinct persons)} for the last `days` days in zone `tz`."""
        zone = ZoneInfo(tz)
        today = NOW.astimezone(zone).date()
        out = {today - timedelta(days=k): [0, set()] for k in range(days)}
        for ms, name, d in self.events:
            day = datetime.fromtimestamp(ms / 1000, zone).date()
            if name == event and day in out:
                out[day][0] += 1
                out[day][1].add(self.root(d))
        return {day: (n, len(actors)) for day, (n, actors) in sorted(out.items())}


def rollup_and_events(db_path, tz):
    """(the daily roll-up, the same grouping of the events in the file cut into days of `tz` here)."""
    zone = ZoneInfo(tz)
    con = sqlite3.connect(db_path)
    try:
        rolled = sorted(tuple(r) for r in con.execute("SELECT project_id, day, event, actor, n FROM actor_day"))
        mapping = dict(((p, d), pid) for p, d, pid in con.execute(
            "SELECT project_id, distinct_id, person_id FROM person_distinct_id"))
        counts = Counter()
        for p, ms, name, d in con.execute("SELECT project_id, timestamp, event, distinct_id FROM event"):
            local = datetime.fromtimestamp(ms / 1000, zone).date()
            start = int(datetime(local.year, local.month, local.day, tzinfo=zone).timestamp() * 1000)
            counts[(p, start, name, mapping.get((p, d), d))] += 1
    finally:
        con.close()
    return rolled, sorted((*k, n) for k, n in counts.items())


def trends(p, interval="day", display=None, props=None, maths=("total", "dau", "weekly_active", "monthly_active")):
    series = [{"kind": "EventsNode", "event": "$pageview", "math": m, **({"properties": props} if props else {})}
              for m in maths]
    q = {"kind": "TrendsQuery", "series": series, "interval": interval, "dateRange": {"date_from": "-30d"}}
    if display:
        q["trendsFilter"] = {"display": display}
    r = p.api("POST", "/api/projects/@project/query/", {"query": q})
    assert r.status == 200, r.body
    return [(s["action"]["math"], s["days"] if display is None else None, s["data"] if display is None
             else s["aggregated_value"]) for s in r.json()["results"]]


ALWAYS = [{"key": "k", "value": "v", "operator": "exact", "type": "event"}]  # true of every event: reads them


def check(p, world, tz, daily_used):
    """Every trend read as it comes agrees with the events read one by one, and the daily series with
    the plain count; `daily_used`: whether the daily roll-up answers (else it must decline)."""
    ctx = Context(project_id=p.id, timezone=tz, now_ms=int(NOW.timestamp() * 1000))
    lo = local_day(int((NOW - timedelta(days=30)).timestamp() * 1000), tz)[0]
    hi = local_day(int(NOW.timestamp() * 1000), tz)[1] - 1
    assert (day_rollup_context(p.srv.store, ctx, lo, hi, local_day) is not None) == daily_used
    daily = trends(p)
    want = world.daily(tz)
    assert [tuple(d) for _m, _d, d in daily[:2]] == [tuple(n for n, _u in want.values()),
                                                     tuple(u for _n, u in want.values())]
    assert sum(daily[0][2]) > 100 and max(daily[1][2]) > 5
    assert daily == trends(p, props=ALWAYS)
    for interval in ("week", "month"):
        assert trends(p, interval) == trends(p, interval, props=ALWAYS), interval
    assert trends(p, display="BoldNumber") == trends(p, display="BoldNumber", props=ALWAYS)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_daily_rollup_follows_events_merges_deletes_and_zone_changes(srv, tz):
    p = Project(srv, "days")
    srv.store.update_project(p.id, timezone=tz)
    w = World()
    events = []
    for i in range(600):  # 20 users over 35 days, some days more than once, with anonymous ids first
        ts = NOW - timedelta(days=35) + timedelta(minutes=83 * i + (i * 17) % 61)
        user = f"u{(i * 7) % 20}"
        who = f"a{(i * 7) % 20}" if i < 200 and i % 3 else user
        events.append(w.add("$pageview" if i % 5 else "buy", who, ts, k="v"))
    for j in range(0, 20, 2):  # half the anonymous ids identified, days after their first events
        events.append(w.add("$identify", f"u{j}", NOW - timedelta(days=20, hours=j), **{"$anon_distinct_id": f"a{j}"}))
    send(p, *events)
    assert srv.app.ingestion.rollups.run_pending() > 0
    rolled, want = rollup_and_events(srv.store.path, tz)
    today = local_day(int(NOW.timestamp() * 1000), tz)[0]  # not over: not counted yet
    assert rolled == [r for r in want if r[1] < today] and len({r[1] for r in rolled}) >= 34
    aligned = tz != "Asia/Kolkata"  # there days start at half hours: the hourly roll-up cannot cut them
    check(p, w, tz, aligned)

    # late events into counted days, a merge of an id with past events into another person, today's events
    late = [w.add("$pageview", "late-1", NOW - timedelta(days=3, hours=2), k="v"),
            w.add("$pageview", "a1", NOW - timedelta(days=4), k="v"),
            w.add("$identify", "u3", NOW - timedelta(days=2), **{"$anon_distinct_id": "a1"}),
            w.add("$pageview", "u5", NOW - timedelta(minutes=5), k="v")]
    send(p, *late)
    check(p, w, tz, aligned)  # marked days read through the hourly roll-up
    srv.app.ingestion.rollups.run_pending()
    rolled, want = rollup_and_events(srv.store.path, tz)
    assert [r for r in rolled if r[1] < today] == [r for r in want if r[1] < today]
    check(p, w, tz, aligned)

    # a person deleted with their events
    gone = person(p, "u3")
    assert p.api("DELETE", f"/api/projects/@project/persons/{gone['uuid']}/?delete_events=true").status == 204
    w.forget(set(gone["distinct_ids"]))
    check(p, w, tz, False)  # their days (most of the window) wait for their recount: the hourly roll-up
    srv.app.ingestion.rollups.run_pending()
    check(p, w, tz, aligned)
    rolled, want = rollup_and_events(srv.store.path, tz)
    assert [r for r in rolled if r[1] < today] == [r for r in want if r[1] < today]

    # another zone: the days are cut again, and not read until they are
    other = "Asia/Tokyo" if tz != "Asia/Tokyo" else "UTC"
    srv.store.update_project(p.id, timezone=other)
    check(p, w, other, False)
    srv.app.ingestion.rollups.run_pending()
    check(p, w, other, True)
    rolled, want = rollup_and_events(srv.store.path, other)
    today = local_day(int(NOW.timestamp() * 1000), other)[0]
    assert [r for r in rolled if r[1] < today] == [r for r in want if r[1] < today]


def test_a_deleted_project_leaves_no_daily_rollup(srv):
    p, q = Project(srv, "gone"), Project(srv, "kept")
    for proj in (p, q):
        send(proj, *[ev("$pageview", f"u{i}", (NOW - timedelta(days=i % 4, hours=i)).isoformat()) for i in range(20)])
    srv.app.ingestion.rollups.run_pending()
    assert p.api("DELETE", "/api/projects/@project/").status in (202, 204)
    srv.app.deleter.run_pending()
    srv.app.ingestion.rollups.run_pending()
    con = sqlite3.connect(srv.store.path)
    try:
        left = {t: [r[0] for r in con.execute(f"SELECT DISTINCT {'id' if t == 'project' else 'project_id'} FROM {t}")]
                for t in ("actor_day", "day_dirty", "actor_day_zone", "project")}
    finally:
        con.close()
    # (the kept project's today is marked: counted once it is over)
    assert left == {"actor_day": [q.id], "day_dirty": [q.id], "actor_day_zone": [q.id], "project": [q.id]}


def test_only_trends_read_the_daily_rollup():
    from phlite.query.hogql import compile_query

    ctx = Context(project_id=3, rollup=True, rollup_days=())
    sql = compile_query("SELECT sum(__n), count(DISTINCT __actor) FROM events", ctx).sql
    assert "FROM actor_day a" in sql and "a.project_id = 3" in sql and "UNION" not in sql
    # days not counted yet come through the hourly roll-up, with its hours not counted yet from the events
    day = 86_400_000 * 20_000
    ctx = Context(project_id=3, rollup=True, rollup_days=((day, day + 86_400_000),), rollup_marked=(day + 3_600_000,))
    sql = compile_query("SELECT sum(__n) FROM events", ctx).sql
    assert f"a.day NOT IN ({day})" in sql and "FROM event_hour h" in sql and f"h.hour NOT IN ({day + 3_600_000})" in sql
    assert "actor_day" not in compile_query("SELECT count() FROM events", Context(project_id=3)).sql
