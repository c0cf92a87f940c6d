"""Materialized property columns (docs/insights.md "Materialized columns"): the same answers with and
without them, over generated events whose properties are absent, null, empty, non-string or nested;
the backfill of a data dir made before migration m0006, in bounded batches; `python app.py materialize`
end to end beside a running server."""

import random
import sqlite3
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from support import InProcessServer, Project, Subprocess, admin, ev, http, send
from phlite.config import Config
from phlite.store import Store
from phlite.store.db import migrate, open_database
from phlite.store.materialized import value

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)
ODD = [None, "", "null", "Chrome", "Firefox", "Safari", 5, 10.5, 0, True, False, {"a": "é", "b": [1, "x\"y"]},
       ["Chrome"], "5", "Ünïcode \u2603", "a'b\\c"]
MISSING = object()


def odd(rnd):
    v = rnd.choice(ODD + [MISSING] * 3)
    return v


def generate(seed=5, n=600):
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        user = f"u{rnd.randrange(40)}"
        props = {}
        for key in ("$browser", "$pathname", "$session_id", "utm_source", "$os"):
            v = odd(rnd)
            if v is not MISSING:
                props[key] = v
        if rnd.random() < 0.7:
            props["$session_id"] = f"s{rnd.randrange(60)}"
        name = rnd.choice(["$pageview", "$pageview", "signed_up", "purchase", "$autocapture"])
        t = NOW - timedelta(days=rnd.uniform(0, 20), seconds=rnd.randrange(100))
        events.append(ev(name, user, t.isoformat(), **props))
        if i % 50 == 0:  # identify merges: the anonymous u<k> and the identified id become one person
            events.append(ev("$identify", f"id{user}", t.isoformat(), **{"$anon_distinct_id": user}))
    return events


EVENTS = generate()
RANGE = {"date_from": (NOW - timedelta(days=21)).date().isoformat(), "date_to": NOW.date().isoformat()}
STEP = [{"key": "$pathname", "value": ["Chrome", "5"], "operator": "exact", "type": "event"}]
QUERIES = [
    {"kind": "HogQLQuery", "query": "SELECT properties.$browser AS b, count() AS c FROM events GROUP BY b ORDER BY b"},
    {"kind": "HogQLQuery", "query": "SELECT uuid, properties.$browser, properties['$pathname'], $session_id,"
                                    " properties.utm_source IS NULL, properties.$os = 'Safari',"
                                    " properties.$pathname > 3, toString(properties.$browser) != 'Chrome'"
                                    " FROM events ORDER BY timestamp, uuid LIMIT 10000"},
    {"kind": "HogQLQuery", "query": "SELECT properties.$browser AS b, uniq(person_id) FROM events"
                                    " WHERE properties.$pathname IS NOT NULL GROUP BY b ORDER BY b"},
    {"kind": "TrendsQuery", "dateRange": RANGE, "interval": "day",
     "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total"},
                {"kind": "EventsNode", "event": "$pageview", "math": "dau"},
                {"kind": "EventsNode", "event": None, "math": "unique_session"}],
     "breakdownFilter": {"breakdown": "$browser", "breakdown_type": "event", "breakdown_limit": 4}},
    {"kind": "TrendsQuery", "dateRange": RANGE, "interval": "week",
     "series": [{"kind": "EventsNode", "event": None, "math": "weekly_active",
                 "properties": [{"key": "utm_source", "operator": "is_set", "value": "is_set"}]}],
     "properties": [{"key": "$os", "operator": "icontains", "value": "a"}]},
    {"kind": "TrendsQuery", "dateRange": RANGE, "interval": "day",
     "series": [{"kind": "EventsNode", "event": "$pageview", "math": "sum", "math_property": "$pathname"}],
     "properties": [{"key": "$browser", "operator": "is_not", "value": "Chrome"}]},
    {"kind": "FunnelsQuery", "dateRange": RANGE,
     "series": [{"kind": "EventsNode", "event": "$pageview", "properties": STEP},
                {"kind": "EventsNode", "event": "signed_up"}, {"kind": "EventsNode", "event": "purchase"}],
     "breakdownFilter": {"breakdown": "$browser", "breakdown_type": "event"}},
    {"kind": "RetentionQuery", "dateRange": {"date_to": RANGE["date_to"]},
     "retentionFilter": {"targetEntity": {"id": "$pageview", "type": "events",
                                          "properties": [{"key": "$browser", "operator": "is_set", "value": "is_set"}]},
                         "returningEntity": {"id": "$pageview", "type": "events"}, "period": "Week",
                         "totalIntervals": 4}},
    {"kind": "WebOverviewQuery", "dateRange": {"date_from": (NOW - timedelta(days=7)).date().isoformat()},
     "compareFilter": {"compare": True},
     "properties": [{"key": "utm_source", "operator": "is_not_set", "value": "is_not_set"}]},
]


def answers(project):
    out = []
    for q in QUERIES:
        r = project.api("POST", "/api/projects/@project/query/", {"query": q})
        assert r.status == 200, (q, r.body)
        body = r.json()
        out.append(body["results"])
    return out


def db_rows(path, sql):
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    srv = InProcessServer(Config(data_dir=tmp_path_factory.mktemp("mat")), clock=lambda: NOW.timestamp())
    p = Project(srv, "mat")
    send(p, *EVENTS)
    yield p
    srv.close()


def test_the_writer_fills_each_column_with_what_hogql_reads_from_the_json(project):
    rows = db_rows(project.srv.store.path, "SELECT properties, mp_browser, mp_pathname, mp_session_id, mp_utm_source,"
                                           " mp_os FROM event")
    assert len(rows) == len(EVENTS)
    seen = set()
    for props, *cols in rows:
        props = orjson.loads(props)
        assert cols == [value(props, k) for k in ("$browser", "$pathname", "$session_id", "utm_source", "$os")]
        seen.update(type(c).__name__ for c in cols)
    assert seen == {"str", "NoneType"}
    # HogQL's own reading of the JSON (ph_prop) agrees with the Python reading, value for value
    r = project.api("POST", "/api/projects/@project/query/", {"query": {
        "kind": "HogQLQuery", "query": "SELECT JSONExtractRaw(properties, '$browser') FROM events LIMIT 10000"}})
    assert r.status == 200, r.body


def test_queries_answer_the_same_with_and_without_the_columns(project):
    store = project.srv.store
    assert set(store.ready_materialized()) >= {"$browser", "$pathname", "$session_id", "utm_source", "$os"}
    with_columns = answers(project)
    sql = project.api("POST", "/api/projects/@project/query/", {"query": QUERIES[0]}).json()["hogql"]
    assert sql  # the HogQL echoed is the user's, whatever the columns
    con = sqlite3.connect(store.path)
    with con:  # not ready: queries read the JSON again
        con.execute("UPDATE materialized_property SET todo_from = 1, todo_to = (SELECT max(id) FROM event)")
    con.close()
    try:
        assert store.ready_materialized() == {}
        without = answers(project)
    finally:
        with store.db.connection_context():
            store.backfill_materialized()
    assert store.ready_materialized()
    for q, a, b in zip(QUERIES, with_columns, without):
        assert a == b, q
    # and the answers are not empty: the comparison compared something
    assert len(with_columns[0]) >= 10 and any(s["count"] for s in with_columns[3])


def _pre_m0006(path):
    db = open_database(path)
    with db.connection_context():
        migrate(db, upto=5)
    db.close()
    con = sqlite3.connect(path)
    rnd = random.Random(3)
    with con:
        con.execute("INSERT INTO project (id, name, api_token, created_at) VALUES (1, 'old', 'phc_old', 1000)")
        for i in range(23):
            props = {k: v for k in ("$browser", "utm_term", "$host") if (v := odd(rnd)) is not MISSING}
            con.execute("INSERT INTO event (project_id, uuid, event, distinct_id, properties, timestamp, created_at)"
                        " VALUES (1, ?, '$pageview', 'u', ?, ?, 1)",
                        (bytes([i]) * 16, orjson.dumps(props), 1_700_000_000_000 + i))
    con.close()


def test_m0006_backfills_a_data_dir_made_before_it_in_bounded_batches(tmp_path):
    path = tmp_path / "phlite.db"
    _pre_m0006(path)
    store = Store(path)  # migrates, then backfills
    try:
        rows = db_rows(path, "SELECT properties, mp_browser, mp_utm_term, mp_host FROM event ORDER BY id")
        assert len(rows) == 23
        for props, *cols in rows:
            props = orjson.loads(props)
            assert cols == [value(props, k) for k in ("$browser", "utm_term", "$host")]
        assert all(m["ready"] for m in store.list_materialized())
        # Resumable, a batch per transaction: undo, then fill again 5 rows at a time.
        con = sqlite3.connect(path)
        with con:
            con.execute("UPDATE event SET mp_browser = NULL, mp_host = NULL")
            con.execute("UPDATE materialized_property SET todo_from = 1, todo_to = (SELECT max(id) FROM event)")
        con.close()
        batches = []
        with store.db.connection_context():
            assert store.backfill_materialized(batch=5, progress=lambda done, total: batches.append(done)) > 0
        assert batches[:5] == [5, 10, 15, 20, 23]
        assert db_rows(path, "SELECT properties, mp_browser, mp_utm_term, mp_host FROM event ORDER BY id") == rows
    finally:
        store.close()


def test_materialize_command_beside_a_running_server(tmp_path):
    srv = Subprocess(tmp_path)
    try:
        token, key = srv.token, srv.key
        batch = [ev("$pageview", f"u{i % 3}", (NOW - timedelta(hours=i)).isoformat(), plan=v)
                 for i, v in enumerate(["pro", "free", None, 7, {"x": 1}, "pro"])]
        r = http("POST", srv.url + "/batch/", {"api_key": token, "batch": batch})
        assert r.status == 200
        hogql = {"query": {"kind": "HogQLQuery",
                           "query": "SELECT properties.plan AS p, count() AS c FROM events GROUP BY p ORDER BY p"}}
        auth = {"Authorization": f"Bearer {key}"}

        def ask():
            for _ in range(200):  # the writer stores asynchronously in the subprocess: the answer settles
                r = http("POST", srv.url + "/api/projects/1/query/", hogql, auth)
                assert r.status == 200, r.body
                if sum(row[1] for row in r.json()["results"]) == len(batch):
                    return r.json()["results"]
            raise AssertionError("events not stored")

        before = ask()
        out = admin(tmp_path, "materialize", "plan", "--json")
        listed = {m["property"]: m for m in out}
        assert listed["plan"]["ready"] and listed["plan"]["column"] == "mp_plan"
        assert listed["$browser"]["ready"]
        assert ask() == before == [['7', 1], ['free', 1], ['pro', 2], ['{"x":1}', 1], [None, 1]]
        # the running writer fills the new column for events stored after the command
        r = http("POST", srv.url + "/batch/", {"api_key": token, "batch": [ev("$pageview", "late", NOW.isoformat(),
                                                                           plan="team")]})
        assert r.status == 200
        batch.append(None)
        assert ["team", 1] in ask()
        assert db_rows(srv.db, "SELECT mp_plan FROM event WHERE distinct_id = 'late'") == [("team",)]
        assert admin(tmp_path, "materialize", "plan", "--json") == out  # idempotent
    finally:
        srv.terminate()
