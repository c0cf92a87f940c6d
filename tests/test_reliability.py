"""Faults injected into a running phlite, counted: overload, a database refusing writes,
store errors under /flags, slow clients. In-process servers; the faults that need a
real process (kill -9, a full filesystem, RSS) are in test_reliability_process.py.

Every test records its figures with `record()`: printed (pytest -s) and, when
PHLITE_RELIABILITY_FIGURES names a file, appended to it as JSON lines; docs/reliability.md
is written from that file.
"""

import json
import socket
import sqlite3
import threading
import time
import uuid

import pytest

from support import ERROR_KEYS, InProcessServer, Project, assert_error, http, stored_uuids
from phlite.config import Config, environ_get


def _health(r):
    """/healthz's verdict on the writer (it also reports disk space: tests/test_ops.py)."""
    return {k: r.json()[k] for k in ("status", "writer", "reason")}


def record(name, **figures):
    line = json.dumps({"test": name, **figures})
    print("FIGURES", line)
    path = environ_get("PHLITE_RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def batch(token, n, prefix="e", **props):
    ids = [str(uuid.uuid4()) for _ in range(n)]
    body = {"api_key": token, "batch": [
        {"event": prefix, "distinct_id": f"{prefix}-{i % 7}", "uuid": u, "properties": {"i": i, **props}}
        for i, u in enumerate(ids)]}
    return ids, body


def integrity(db_path):
    con = sqlite3.connect(db_path)
    try:
        return con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()


def person_problems(db_path, project_id=None):
    """Every inconsistency between persons, their distinct ids and events; [] when sound."""
    con = sqlite3.connect(db_path)
    where = f" AND {{t}}.project_id = {int(project_id)}" if project_id else ""
    out = []
    try:
        q = ("SELECT d.distinct_id FROM person_distinct_id d LEFT JOIN person p ON p.id = d.person_id"
             " AND p.project_id = d.project_id WHERE p.id IS NULL" + where.format(t="d"))
        out += [f"distinct id {r[0]} points to no person" for r in con.execute(q)]
        q = ("SELECT p.uuid FROM person p WHERE NOT EXISTS (SELECT 1 FROM person_distinct_id d"
             " WHERE d.person_id = p.id)" + where.format(t="p"))
        out += [f"person {r[0]} has no distinct id" for r in con.execute(q)]
        q = ("SELECT DISTINCT e.distinct_id FROM event e WHERE NOT EXISTS (SELECT 1 FROM person_distinct_id d"
             " WHERE d.project_id = e.project_id AND d.distinct_id = e.distinct_id)" + where.format(t="e"))
        out += [f"event distinct id {r[0]} has no person" for r in con.execute(q)]
    finally:
        con.close()
    return out


def same_person(db_path, project_id, a, b):
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute("SELECT distinct_id, person_id FROM person_distinct_id WHERE project_id = ?"
                           " AND distinct_id IN (?, ?)", (project_id, a, b)).fetchall()
    finally:
        con.close()
    ids = dict(rows)
    return a in ids and b in ids and ids[a] == ids[b]


@pytest.fixture
def srv(tmp_path):
    started = []

    def make(**settings):
        s = InProcessServer(Config(data_dir=tmp_path / f"srv{len(started)}", **settings))
        started.append(s)
        return s

    yield make
    for s in started:
        s.close()


class Gate:
    """Blocks the writer thread (deterministically, no sleep) until opened."""

    def __init__(self, writer):
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.thread = threading.Thread(target=writer.call, args=(self._block, 60), daemon=True)
        self.thread.start()
        assert self.entered.wait(10), "the writer did not pick up the gate"

    def _block(self):
        self.entered.set()
        self.opened.wait(60)

    def open(self):
        self.opened.set()
        self.thread.join(10)


# --- overload ----------------------------------------------------------------------


def test_overload_answers_503_with_retry_after_then_stores_every_acknowledged_event(srv):
    s = srv(queue_max_bytes=256 * 1024)
    p = Project(s)
    gate = Gate(s.app.ingestion.writer)
    sent = acked = refused = 0
    acked_ids = []
    for _ in range(60):  # ~20 KB each: about 5x the queue
        ids, body = batch(p.token, 100, "overload")
        r = http("POST", p.url + "/batch/", body)
        sent += len(ids)
        if r.status == 200:
            acked += len(ids)
            acked_ids += ids
        else:
            assert r.status == 503, r.body
            assert int(r.headers["Retry-After"]) >= 1 and set(r.json()) == ERROR_KEYS
            assert r.json()["code"] == "service_unavailable"
            refused += len(ids)
    assert refused > 0 and acked > 0
    assert s.app.ingestion.writer.queued_bytes <= 256 * 1024
    # Reads and /flags keep answering while ingestion is refused.
    assert p.api("GET", "/api/projects/@project/").status == 200
    assert http("POST", p.url + "/flags/?v=2", {"token": p.token, "distinct_id": "x"}).status == 200
    gate.open()
    p.flush()
    stored = set(stored_uuids(s.store.path, p.id))
    lost = set(acked_ids) - stored
    assert not lost and len(stored) == acked
    ids, body = batch(p.token, 10, "after")
    assert http("POST", p.url + "/batch/", body).status == 200
    record("overload_in_process", queue_max_bytes=256 * 1024, events_sent=sent, acknowledged=acked,
           refused_503=refused, stored=len(stored), lost=len(lost))


# --- database refusing writes (disk full) ------------------------------------------


class PageLimit:
    """A writer processor (so it runs in the writer's thread, on its connection, inside
    each group commit) that caps the database at `pages` with PRAGMA max_page_count."""

    def __init__(self):
        self.pages = 1  # clamped by SQLite to the current size: no room to grow

    def __call__(self, store, project_id, events, now_ms):
        store.db.execute_sql(f"PRAGMA max_page_count = {int(self.pages)}")
        return events


def test_database_full_answers_503_loses_nothing_and_recovers_without_restart(srv):
    s = srv()
    writer = s.app.ingestion.writer
    writer.retry_delay = 0.02
    p = Project(s)
    limit = PageLimit()
    con = sqlite3.connect(s.store.path)
    limit.pages = con.execute("PRAGMA page_count").fetchone()[0] + 40  # ~160 KB of room left
    con.close()
    persons = s.app.ingestion.persons
    process = persons.process
    # The page limit is set in the writer's transaction, before person processing.
    persons.process = lambda store, pid, evs, now_ms: process(store, pid, limit(store, pid, evs, now_ms), now_ms)
    sent = acked = refused = 0
    acked_ids, identified = [], []
    # Enough data that the database must grow: the first group commits fail, the writer
    # enters its failure state, and capture answers 503 from then on.
    for k in range(40):
        ids, body = batch(p.token, 50, "full", blob="x" * 500)
        body["batch"].append({"event": "anon", "distinct_id": f"anon-{k}", "uuid": str(uuid.uuid4())})
        body["batch"].append({"event": "$identify", "distinct_id": f"user-{k}", "uuid": str(uuid.uuid4()),
                              "properties": {"$anon_distinct_id": f"anon-{k}", "$set": {"k": k}}})
        ids += [e["uuid"] for e in body["batch"][-2:]]
        r = http("POST", p.url + "/batch/", body)
        sent += len(ids)
        if r.status == 200:
            acked += len(ids)
            acked_ids += ids
            identified.append(k)
        else:
            assert_error(r, 503)
            assert r.headers["Retry-After"] == "5"
            refused += len(ids)
        if writer.failure is None and k < 39:
            writer.flush(timeout=0.2)  # let the writer meet the full database
    assert refused > 0, "the full database was never noticed"
    assert writer.failure == "database or disk is full"
    failure_message = writer.failure
    health = http("GET", p.url + "/healthz")
    assert health.status == 503 and health.headers["Retry-After"] == "5"
    assert _health(health) == {"status": "unavailable", "writer": "failing",
                             "reason": "Storage is refusing writes (database or disk is full)"}
    # Space returns: the next retry commits everything, without a restart.
    limit.pages = 1 << 30
    p.flush()
    assert writer.failure is None
    assert _health(http("GET", p.url + "/healthz")) == {"status": "ok", "writer": "running", "reason": None}
    ids, body = batch(p.token, 10, "after")
    assert http("POST", p.url + "/batch/", body).status == 200
    p.flush()
    acked_ids += ids
    stored = set(stored_uuids(s.store.path, p.id))
    lost = set(acked_ids) - stored
    assert not lost and len(stored) == len(acked_ids)
    assert integrity(s.store.path) == [("ok",)]
    assert not (s.app.config.spool_dir / "rejected.log").exists(), "acknowledged requests set aside"
    assert person_problems(s.store.path, p.id) == []
    for k in identified:
        # A rolled-back merge retried after recovery: user-k and its anonymous id are one person.
        assert same_person(s.store.path, p.id, f"user-{k}", f"anon-{k}"), k
    record("database_full_in_process", events_sent=sent, acknowledged=acked + 10, refused_503=refused,
           stored=len(stored), lost=len(lost), merges_acknowledged=len(identified), integrity="ok",
           writer_error=failure_message)


# --- store errors during /flags ----------------------------------------------------


def test_flags_answer_200_with_errors_while_computing_flags_when_the_store_fails(srv):
    from phlite.store import OperationalError

    s = srv()
    p = Project(s)
    r = p.api("POST", "/api/projects/@project/feature_flags/", {
        "key": "by-email", "filters": {"groups": [{"properties": [
            {"key": "email", "value": "a@b.c", "type": "person", "operator": "exact"}], "rollout_percentage": 100}]}})
    assert r.status in (200, 201), r.body
    r = p.api("POST", "/api/projects/@project/feature_flags/", {
        "key": "everyone", "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}})
    assert r.status in (200, 201), r.body
    assert http("POST", p.url + "/i/v0/e/", {"api_key": p.token, "event": "$set", "distinct_id": "u1",
                                             "properties": {"$set": {"email": "a@b.c"}}}).status == 200
    p.flush()

    def ask(version="2", **body):
        return http("POST", f"{p.url}/flags/?v={version}", {"token": p.token, "distinct_id": "u1", **body})

    r = ask()
    assert r.status == 200 and r.json()["errorsWhileComputingFlags"] is False
    assert r.json()["flags"]["by-email"]["enabled"] is True

    db = s.store.db
    real = db.execute_sql
    writer_thread = s.app.ingestion.writer.thread
    failures = []

    def failing(sql, params=None, *a, **kw):
        if threading.current_thread() is not writer_thread:
            failures.append(sql)
            raise OperationalError("disk I/O error (injected)")
        return real(sql, params, *a, **kw)

    db.execute_sql = failing
    answers = []
    try:
        # The request answered before the failure is answered from the answer cache (its person is
        # in memory): nothing it was computed from can have changed while the store refuses writes.
        r = ask()
        answers.append(r.status)
        assert r.status == 200 and r.json()["errorsWhileComputingFlags"] is False
        assert r.json()["flags"]["by-email"]["enabled"] is True
        for version in ("2", "1", "3", "4"):
            # A new request whose person is not in memory: evaluated, and its person cannot be read.
            r = ask(version, distinct_id=f"new-{version}", person_properties={"asked": version})
            answers.append(r.status)
            assert r.status == 200, r.body
            assert r.json()["errorsWhileComputingFlags"] is True, r.body
        r = http("POST", p.url + "/decide/?v=3", {"token": p.token, "distinct_id": "u2"})
        answers.append(r.status)
        assert r.status == 200 and r.json()["errorsWhileComputingFlags"] is True
        # A flag that needs no stored data is still answered.
        assert ask().json()["flags"]["everyone"]["enabled"] is True
        # Cold cache (the definitions cannot be read at all): still 200.
        db.execute_sql = real
        q = Project(s)
        db.execute_sql = failing
        r = http("POST", q.url + "/flags/?v=2", {"token": q.token, "distinct_id": "u1"})
        answers.append(r.status)
        assert r.status == 200 and r.json()["errorsWhileComputingFlags"] is True, r.body
    finally:
        db.execute_sql = real
    assert failures, "the injected error was never reached"
    r = ask()
    assert r.status == 200 and r.json()["errorsWhileComputingFlags"] is False
    record("flags_store_errors", requests=len(answers), answered_200=answers.count(200),
           injected_store_errors=len(failures), answered_5xx=sum(a >= 500 for a in answers))


# --- slow clients ------------------------------------------------------------------


def test_trickling_clients_do_not_block_others(srv):
    s = srv(threads=2, channel_timeout=5)
    p = Project(s)
    host, port = "127.0.0.1", int(s.url.rsplit(":", 1)[1])
    slow = []
    body = json.dumps({"api_key": p.token, "event": "slow", "distinct_id": "slow"}).encode()
    for i in range(40):  # 20x the worker threads
        c = socket.create_connection((host, port), timeout=5)
        if i % 2:
            # Headers promise a body that never finishes arriving.
            c.sendall(b"POST /e/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (len(body) + 1000) + body[:10])
        else:
            c.sendall(b"POST /e/ HTTP/1.1\r\nHo")  # headers cut mid-way
        slow.append(c)
    latencies, ok = [], 0
    for round_ in range(5):
        for c in slow:  # one more byte each, as a trickler does
            c.sendall(b"x" if slow.index(c) % 2 else b"s")
        t = time.monotonic()
        r = http("POST", p.url + "/e/", {"api_key": p.token, "event": "fast", "distinct_id": "d"}, timeout=5)
        latencies.append(time.monotonic() - t)
        ok += r.status == 200
    assert ok == 5, "a trickling client blocked a normal one"
    assert max(latencies) < 2.0, latencies
    for c in slow:
        c.close()
    p.flush()
    assert [e["event"] for e in p.events()] == ["fast"] * 5
    record("slow_clients", trickling_connections=len(slow), worker_threads=2, normal_requests=5, normal_ok=ok,
           max_latency_ms=round(max(latencies) * 1000, 1))


def test_channel_timeout_is_passed_to_waitress():
    import inspect

    from phlite import httpserver

    src = inspect.getsource(httpserver.create_server)
    assert "channel_timeout=config.channel_timeout" in src
    assert Config().channel_timeout == 30
