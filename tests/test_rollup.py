"""The hourly roll-ups (docs/insights.md "Roll-ups"): `event_hour`, exactly the stored events grouped by
project, event, UTC hour and distinct id, and `session_hour`, by project, UTC hour and session, through
every way events arrive and leave; and the insights that read them give the answers of the events in every
kind of time zone."""

import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from support import Clock, InProcessServer, Project, ev, person, send
from phlite.config import Config
from phlite.query.hogql import Context, compile_query
from phlite.query.rollup import aligned

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)
HOUR = 3_600_000


@pytest.fixture
def srv(tmp_path):
    s = InProcessServer(Config(data_dir=tmp_path / "d", retention_interval=0), clock=Clock(NOW.timestamp()))
    yield s
    s.close()


def _read(db_path, *queries):
    con = sqlite3.connect(db_path)
    try:
        return tuple(con.execute(q).fetchall() for q in queries)
    finally:
        con.close()


def grouped(db_path):
    """(the roll-up, the same grouping computed from the events), read from the SQLite file."""
    return _read(db_path,
                 "SELECT project_id, event, hour, distinct_id, nullif(browser, x''), nullif(os, x''),"
                 " nullif(device_type, x''), n FROM event_hour ORDER BY 1, 2, 3, 4, 5, 6, 7",
                 f"SELECT project_id, event, timestamp - timestamp % {HOUR} AS h, distinct_id,"
                 " properties ->> '$.$browser', properties ->> '$.$os', properties ->> '$.$device_type',"
                 " count(*) FROM event GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7")


def grouped_sessions(db_path):
    """(`session_hour`, the same computed from the events), read from the SQLite file."""
    return _read(db_path,
                 "SELECT project_id, hour, session_id, first, last, views, autocaptures, visitor"
                 " FROM session_hour ORDER BY 1, 2, 3",
                 f"SELECT project_id, timestamp - timestamp % {HOUR} AS h, json_extract(properties, '$.$session_id') AS s,"
                 " min(timestamp), max(timestamp), sum(event IN ('$pageview', '$screen')), sum(event = '$autocapture'),"
                 " min(CASE WHEN event IN ('$pageview', '$screen') THEN distinct_id END)"
                 " FROM event WHERE s IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")


def marked(db_path):
    return _read(db_path, "SELECT project_id, hour FROM rollup_dirty ORDER BY 1, 2")[0]


def test_rollup_follows_inserts_duplicates_and_deletes(srv):
    a, b = Project(srv, "a"), Project(srv, "b")
    t = NOW - timedelta(days=2)
    dup = str(uuid.uuid4())
    # u0 changes browser within an hour, u2 has none: a key each
    events = [ev("$pageview", f"u{i % 3}", (t + timedelta(minutes=25 * i)).isoformat(),
                 **({"$browser": ("Firefox", "Chrome")[i % 2], "$os": "Linux"} if i % 3 < 2 else {}))
              for i in range(12)]
    events += [{**ev("buy", "u1", t.isoformat()), "uuid": dup}]
    events += [ev("$autocapture" if i % 3 else "$screen", f"u{i % 2}", (t + timedelta(minutes=37 * i)).isoformat(),
                  **{"$session_id": f"s{i % 4}"}) for i in range(9)]
    send(a, *events)
    send(a, {**ev("buy", "u1", t.isoformat()), "uuid": dup})  # the same uuid again: stored once
    send(b, *events[:5])
    send(a, ev("$identify", "u1", t.isoformat(), **{"$anon_distinct_id": "anon-1"}),
         ev("$pageview", "anon-1", t.isoformat()))
    # the writer marked the hours it wrote into; the pass recounts them (they are over)
    hours = {(pid, (int(t.timestamp() * 1000) // HOUR + k) * HOUR) for pid in (a.id, b.id) for k in range(6)}
    assert set(marked(srv.store.path)) <= hours and len(marked(srv.store.path)) >= 6
    assert srv.app.ingestion.rollups.run_pending() > 0
    assert marked(srv.store.path) == []
    rollup, want = grouped(srv.store.path)
    assert rollup == want and sum(r[-1] for r in rollup) == 12 + 9 + 1 + 5 + 2
    sessions, want = grouped_sessions(srv.store.path)
    assert sessions == want and {r[2] for r in sessions} == {"s0", "s1", "s2", "s3"}
    # deleting a person with its events: the trigger takes them out at once
    p = person(a, "u1")
    assert a.api("DELETE", f"/api/projects/@project/persons/{p['uuid']}/?delete_events=true").status == 204
    rollup, want = grouped(srv.store.path)
    assert rollup == want and not [r for r in rollup if r[0] == a.id and r[3] in ("u1", "anon-1")]
    assert {r[4] for r in rollup if r[3] == "u0" and r[1] == "$pageview"} == {"Firefox", "Chrome"}
    # a session's first or last time cannot be taken back: its hours are marked (read from the events) and
    # recounted by the next pass
    assert {h for pid, h in marked(srv.store.path) if pid == a.id} and srv.app.ingestion.rollups.run_pending()
    sessions, want = grouped_sessions(srv.store.path)
    assert sessions == want and not [r for r in sessions if r[0] == a.id and r[7] == "u1"]
    # retention deleting old events of one project
    assert a.api("PATCH", "/api/projects/@project/", {"retention_days": 1}).status == 200
    srv.app.deleter.run_pending()
    rollup, want = grouped(srv.store.path)
    assert rollup == want and {r[0] for r in rollup} == {b.id}
    srv.app.ingestion.rollups.run_pending()
    assert grouped_sessions(srv.store.path) == ([], [])


def test_hours_not_recounted_yet_are_read_from_the_events(srv):
    """The current hour (not over), and a late event in an hour already recounted, count at once."""
    p = Project(srv, "late")
    old = NOW - timedelta(days=1, minutes=30)
    send(p, *[ev("$pageview", f"u{i}", (old + timedelta(minutes=i)).isoformat()) for i in range(4)])
    srv.app.ingestion.rollups.run_pending()
    assert marked(srv.store.path) == []

    def series():
        return _trends(p, "UTC", series=[{"kind": "EventsNode", "event": "$pageview", "math": m}
                                         for m in ("total", "dau")], dateRange={"date_from": "-3d"})

    assert [sum(d) for _m, d in series()] == [4, 4]
    send(p, ev("$pageview", "u9", (old + timedelta(minutes=5)).isoformat()),  # late, into a recounted hour
         ev("$pageview", "u1", NOW.isoformat()))  # this hour, not over
    now_hour = int(NOW.timestamp() * 1000) // HOUR * HOUR
    assert {h for _p, h in marked(srv.store.path)} == {int(old.timestamp() * 1000) // HOUR * HOUR, now_hour}
    assert [sum(d) for _m, d in series()] == [6, 6]  # u9 and u0-u3 a day ago, u1 today
    srv.app.ingestion.rollups.run_pending()
    assert marked(srv.store.path) == [(p.id, now_hour)]  # still going on: not recounted
    assert [sum(d) for _m, d in series()] == [6, 6]  # u9 and u0-u3 a day ago, u1 today
    rollup, want = grouped(srv.store.path)
    assert [r for r in rollup if r[2] != now_hour] == [r for r in want if r[2] != now_hour]


def _trends(p, tz, raw=False, **q):
    p.srv.store.update_project(p.id, timezone=tz)
    r = p.api("POST", "/api/projects/@project/query/", {"query": {"kind": "TrendsQuery", **q}})
    assert r.status == 200, r.body
    if raw:  # each series as shown, without the part that names the query (its filters differ)
        return [(s["action"]["math"], s["breakdown_value"], s["label"], s["data"]) for s in r.json()["results"]]
    return [(s["action"]["math"], s["data"]) for s in r.json()["results"]]


# Whole-hour offsets with DST (the roll-up), half- and quarter-hour ones (the events).
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"])
def test_trends_and_retention_agree_with_a_property_filter_that_reads_the_events(srv, tz):
    """The same series with and without an always-true property filter: the first may read the roll-up,
    the second must read the events; both must agree, in zones where day edges are UTC hours and not."""
    p = Project(srv, "z")
    base = NOW - timedelta(days=9)
    events = []
    for i in range(300):
        ts = base + timedelta(minutes=41 * i + (i * 7) % 29)
        for j in range(1 + i % 3):  # sessions of 1-3 events of one person within minutes: a roll-up row each
            dims = {"$browser": ("Chrome", "Safari", "Firefox", "")[(i + j) % 4], "$device_type": "Mobile"} \
                if i % 5 else {"$os": ("iOS", 7)[i % 2]}  # some without, an empty one, a number
            events.append(ev("$pageview" if i % 4 else "buy", f"u{(i * 13) % 17}",
                             (ts + timedelta(minutes=j)).isoformat(), k="v", **dims))
    send(p, *events, ev("$identify", "u2", base.isoformat(), **{"$anon_distinct_id": "u3"}))
    always = [{"key": "k", "value": "v", "operator": "exact", "type": "event"}]
    for recounted in (False, True):
        if recounted:
            srv.app.ingestion.rollups.run_pending()
        _compare(p, tz, always)
    srv.store.update_project(p.id, timezone="UTC")


def _compare(p, tz, always):
    for interval in ("hour", "day", "week"):
        series = [{"kind": "EventsNode", "event": "$pageview", "math": m} for m in ("total", "dau", "weekly_active")]
        filtered = [{**s, "properties": always} for s in series]
        q = {"interval": interval, "dateRange": {"date_from": "-10d"}}
        assert _trends(p, tz, series=series, **q) == _trends(p, tz, series=filtered, **q), interval
        for prop in ("$browser", "$os", "$device_type"):
            for limit in (25, 1):  # 1: the rest folded into "other"
                bd = {"breakdownFilter": {"breakdown": prop, "breakdown_type": "event", "breakdown_limit": limit}}
                got = _trends(p, tz, series=series, **q, **bd, raw=True)
                assert got == _trends(p, tz, series=filtered, **q, **bd, raw=True), (interval, prop, limit)
                assert len(got) > 3

    def retention(props, kind):
        entity = {"id": "$pageview", "type": "events", "properties": props}
        r = p.api("POST", "/api/projects/@project/query/", {"query": {"kind": "RetentionQuery", "retentionFilter": {
            "targetEntity": entity, "returningEntity": entity, "period": "Day", "totalIntervals": 9,
            "retentionType": kind}}})
        assert r.status == 200, r.body
        return r.json()["results"]

    for kind in ("retention_recurring", "retention_first_time", "retention_first_ever_occurrence"):
        assert retention([], kind) == retention(always, kind), kind


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"])
def test_web_overview_agrees_with_the_events(srv, tz):
    """The web overview from `session_hour` (no filter; whole-hour zones) and from the events (an always-true
    filter, or a half-hour zone) agree, before and after the recount: sessions over several hours and over
    midnight, starting before the window, with autocaptures and screens, late events, merged visitors."""
    p = Project(srv, "web")
    base = NOW - timedelta(days=8, hours=3)
    events = []
    for i in range(120):
        start = base + timedelta(minutes=97 * i + (i * 11) % 43)
        for j in range(i % 5):  # 0-4 events a session, some minutes to hours apart
            kind = ("$pageview", "$autocapture", "$pageview", "$screen", "click")[(i + j) % 5]
            events.append(ev(kind, f"u{(i * 7) % 23}", (start + timedelta(minutes=j * (3 + i % 70))).isoformat(),
                             **{"$session_id": f"s{i}", "k": "v"}))
        events.append(ev("$pageview", f"u{i % 5}", start.isoformat(), k="v"))  # no session
    send(p, *events, ev("$identify", "u3", base.isoformat(), **{"$anon_distinct_id": "u4", "k": "v"}))
    srv.store.update_project(p.id, timezone=tz)
    always = [{"key": "k", "value": "v", "operator": "exact", "type": "event"}]

    def overview(props):
        r = p.api("POST", "/api/projects/@project/query/", {"query": {
            "kind": "WebOverviewQuery", "dateRange": {"date_from": "-7d"}, "properties": props,
            "compareFilter": {"compare": True}}})
        assert r.status == 200, r.body
        return [(m["key"], m["value"], m["previous"]) for m in r.json()["results"]]

    want = overview(always)
    assert dict((k, v) for k, v, _ in want)["sessions"] > 30 and all(prev is not None for *_, prev in want)
    assert overview([]) == want  # hours marked: read from the events inside the roll-up query
    srv.app.ingestion.rollups.run_pending()
    now_hour = int(NOW.timestamp() * 1000) // HOUR * HOUR
    assert [h for _p, h in marked(srv.store.path) if h < now_hour] == []  # this hour and later are not over
    assert overview([]) == want
    # a late event extends a session already recounted: its hour is marked again, and it counts at once
    send(p, ev("$pageview", "u1", (base + timedelta(days=2, minutes=1)).isoformat(), **{"$session_id": "s30", "k": "v"}))
    want = overview(always)
    assert overview([]) == want
    srv.app.ingestion.rollups.run_pending()
    assert overview([]) == want
    srv.store.update_project(p.id, timezone="UTC")


def test_only_insight_runners_read_the_rollup():
    ctx = Context(project_id=3)
    assert "event_hour" not in compile_query("SELECT count() FROM events", ctx).sql
    rolled = Context(project_id=3, rollup=True)
    sql = compile_query("SELECT sum(__n), count(DISTINCT __actor) FROM events WHERE event = 'x'", rolled).sql
    assert "FROM event_hour h" in sql and "h.project_id = 3" in sql and "UNION" not in sql
    # hours not recounted yet come from the events, as consecutive ranges
    marked = Context(project_id=3, rollup=True, rollup_marked=(HOUR * 5, HOUR * 7, HOUR * 6, HOUR * 9))
    sql = compile_query("SELECT sum(__n) FROM events", marked).sql
    assert f"h.hour NOT IN ({HOUR * 5}, {HOUR * 6}, {HOUR * 7}, {HOUR * 9})" in sql
    assert f"(e.timestamp >= {HOUR * 5} AND e.timestamp < {HOUR * 8}) OR (e.timestamp >= {HOUR * 9}" in sql
    # a user's HogQL cannot name the table
    with pytest.raises(Exception, match="Unknown table"):
        compile_query("SELECT * FROM event_hour", ctx)


def test_edges_on_utc_hours():
    assert aligned([0, HOUR, 24 * HOUR])
    assert not aligned([0, HOUR // 2])

