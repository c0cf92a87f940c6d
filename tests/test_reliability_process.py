"""Faults that need a real `python app.py` process: kill -9 at many random points (group
commits, person merges, flag edits, spool replay), a filesystem that fills up, and the
peak RSS under 10x overload. Figures go through test_reliability.record().

PHLITE_KILL_POINTS sets how many kill -9 points the crash test runs (default 15).
"""

from http.client import HTTPException
import json
import random
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from support import Subprocess, admin, assert_error, http, stored_uuids
from phlite.config import environ_get
from test_reliability import integrity, person_problems, record, same_person

pytestmark = pytest.mark.slow


def _setup(data_dir):
    p = admin(data_dir, "project", "create", "p", "--json")
    key = admin(data_dir, "key", "create", "--json")["personal_api_key"]
    return p["id"], p["api_token"], key


def _status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class Traffic:
    """Mixed client traffic against one server: event batches (half with client uuids,
    half without, identified by a unique `seq`), an anonymous event plus `$identify`
    merge per batch, and sequential flag edits. Counts what was sent and acknowledged."""

    def __init__(self, token, key, project_id, flag_id):
        self.token, self.key, self.project_id, self.flag_id = token, key, project_id, flag_id
        self.lock = threading.Lock()
        self.sent_uuids, self.acked_uuids = set(), set()
        self.sent_seqs, self.acked_seqs = set(), set()
        self.acked_merges = []
        self.flag_sent, self.flag_acked = [], []  # rollout values sent, in order; indexes of acknowledged ones
        self.requests = 0
        self.next_seq = 0
        self.counter = 0

    def _seq(self, n):
        with self.lock:
            start = self.next_seq
            self.next_seq += n
            return range(start, start + n)

    def event_batch(self, url, size=60):
        seqs = self._seq(size)
        c = seqs[0]
        events, uuids = [], []
        for s in seqs:
            ev = {"event": "load", "distinct_id": f"d{s % 13}", "properties": {"seq": s, "$set": {"last": s}}}
            if s % 2:
                ev["uuid"] = str(uuid.uuid4())
                uuids.append(ev["uuid"])
            events.append(ev)
        merge = (f"user-{c}", f"anon-{c}")
        for ev in ({"event": "anon", "distinct_id": merge[1], "uuid": str(uuid.uuid4())},
                   {"event": "$identify", "distinct_id": merge[0], "uuid": str(uuid.uuid4()),
                    "properties": {"$anon_distinct_id": merge[1], "$set": {"email": f"{c}@x"}}}):
            uuids.append(ev["uuid"])
            events.append(ev)
        seq_only = [s for s in seqs if not s % 2]
        with self.lock:
            self.sent_uuids.update(uuids)
            self.sent_seqs.update(seq_only)
            self.requests += 1
        r = http("POST", url + "/batch/", {"api_key": self.token, "batch": events}, timeout=20)
        if r.status == 200:
            with self.lock:
                self.acked_uuids.update(uuids)
                self.acked_seqs.update(seq_only)
                self.acked_merges.append(merge)
            return len(events)
        assert_error(r, 503)
        return 0

    def flag_edit(self, url):
        with self.lock:
            self.counter += 1
            value = self.counter % 101
            index = len(self.flag_sent)
            self.flag_sent.append(value)
            self.requests += 1
        r = http("PATCH", f"{url}/api/projects/{self.project_id}/feature_flags/{self.flag_id}/",
                 {"filters": {"groups": [{"properties": [], "rollout_percentage": value}]}},
                 {"Authorization": f"Bearer {self.key}"}, timeout=20)
        if r.status == 200:
            with self.lock:
                self.flag_acked.append(index)
            return 1
        assert r.status in (503,), (r.status, r.body)
        return 0

    def run(self, url, kill, kind, target, max_seconds=20):
        """Send until `target` acknowledgements of `kind` ("events", "merges", "flags"),
        then call kill() from the client thread that saw the last one."""
        done = threading.Event()
        counts = {"events": 0, "merges": 0, "flags": 0}
        clock_start = time.monotonic()

        def fire():
            with self.lock:
                if done.is_set():
                    return
                done.set()
            kill()

        def over():
            return time.monotonic() - clock_start > max_seconds

        def events_worker():
            while not done.is_set() and not over():
                try:
                    n = self.event_batch(url)
                except (OSError, HTTPException):  # the server died mid-answer: not acknowledged
                    done.set()
                    return
                with self.lock:
                    counts["events"] += n
                    counts["merges"] += 1 if n else 0
                    hit = counts[kind] >= target if kind != "flags" else False
                if hit:
                    fire()

        def flags_worker():
            while not done.is_set() and not over():
                try:
                    n = self.flag_edit(url)
                except (OSError, HTTPException):  # the server died mid-answer: not acknowledged
                    done.set()
                    return
                with self.lock:
                    counts["flags"] += n
                    hit = kind == "flags" and counts["flags"] >= target
                if hit:
                    fire()

        threads = [threading.Thread(target=events_worker) for _ in range(3)] + [threading.Thread(target=flags_worker)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        if not done.is_set():
            fire()
        return counts


def test_kill_9_at_random_points_loses_and_duplicates_nothing(tmp_path):
    """Many kill -9 points on one data directory, each restart replaying the spool left by
    the previous crash (so some kills land during replay too)."""
    points = int(environ_get("PHLITE_KILL_POINTS", "15"))
    rng = random.Random(7)
    project_id, token, key = _setup(tmp_path)
    srv = Subprocess(tmp_path)
    r = http("POST", f"{srv.url}/api/projects/{project_id}/feature_flags/",
             {"key": "edited", "filters": {"groups": [{"properties": [], "rollout_percentage": 0}]}},
             {"Authorization": f"Bearer {key}"})
    assert r.status in (200, 201), r.body
    traffic = Traffic(token, key, project_id, r.json()["id"])
    srv.kill()
    # Kill right after the Nth acknowledged event / merge / flag edit, at a random moment,
    # or as soon as the server listens (while it replays the previous crash's spool).
    kinds = ["events", "merges", "flags", "startup", "timer"]
    kill_log = []
    for i in range(points):
        kind = kinds[i % len(kinds)]
        srv = Subprocess(tmp_path)
        if kind == "startup":
            srv.kill()  # the writer is replaying the previous crash's spool tail
            kill_log.append((kind, 0))
            continue
        if kind == "timer":
            delay = rng.uniform(0.05, 1.5)
            timer = threading.Timer(delay, srv.kill)
            timer.start()
            counts = traffic.run(srv.url, lambda: None, "events", 10**9, max_seconds=delay + 10)
            timer.join()
            kill_log.append((f"after {delay:.2f} s", counts["events"]))
            continue
        target = {"events": rng.randint(1, 3000), "merges": rng.randint(1, 40), "flags": rng.randint(1, 25)}[kind]
        counts = traffic.run(srv.url, srv.kill, kind, target)
        srv.proc.wait(10)
        kill_log.append((kind, counts[kind]))
    # A clean start drains whatever the last crash left; SIGTERM stores the rest.
    srv = Subprocess(tmp_path)
    assert srv.terminate() == 0
    db = tmp_path / "phlite.db"
    stored = stored_uuids(db)
    con = sqlite3.connect(db)
    seqs = [r[0] for r in con.execute("SELECT json_extract(properties, '$.seq') FROM event"
                                      " WHERE json_extract(properties, '$.seq') IS NOT NULL AND event = 'load'"
                                      " AND length(uuid) = 16").fetchall()]
    flag = con.execute("SELECT filters, version FROM feature_flag WHERE id = ?", (traffic.flag_id,)).fetchone()
    flag_log = con.execute("SELECT count(*) FROM activity_log WHERE scope = 'FeatureFlag' AND item_id = ?",
                           (traffic.flag_id,)).fetchone()[0]
    con.close()
    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = traffic.acked_uuids - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost"
    seq_events_stored = [s for s in seqs if s % 2 == 0]
    dup_seqs = len(seq_events_stored) - len(set(seq_events_stored))
    assert dup_seqs == 0, f"{dup_seqs} events without a client uuid were stored twice"
    missing_seqs = traffic.acked_seqs - set(seq_events_stored)
    assert not missing_seqs, f"{len(missing_seqs)} acknowledged events without a uuid lost"
    assert set(seq_events_stored) <= traffic.sent_seqs
    assert integrity(db) == [("ok",)]
    assert person_problems(db) == []
    not_merged = [m for m in traffic.acked_merges if not same_person(db, project_id, *m)]
    assert not not_merged, f"{len(not_merged)} acknowledged merges missing, e.g. {not_merged[:3]}"
    # Flag edits: the last acknowledged value, or the one in flight at the last kill.
    rollout = json.loads(flag[0])["groups"][0]["rollout_percentage"]
    if traffic.flag_acked:
        # One editing client: at most the edits after the last acknowledged one were in flight.
        assert rollout in traffic.flag_sent[traffic.flag_acked[-1]:], (rollout, traffic.flag_sent)
    assert flag_log >= len(traffic.flag_acked) + 1
    assert flag[1] >= len(traffic.flag_acked) + 1
    total_sent = len(traffic.sent_uuids) + len(traffic.sent_seqs)
    total_acked = len(traffic.acked_uuids) + len(traffic.acked_seqs)
    record("kill_9_random_points", kill_points=len(kill_log), kill_log=kill_log, requests=traffic.requests,
           events_sent=total_sent, events_acknowledged=total_acked,
           events_stored=len(stored), lost=len(missing) + len(missing_seqs), duplicated=dup_seqs,
           merges_acknowledged=len(traffic.acked_merges), merges_missing=len(not_merged),
           flag_edits_sent=len(traffic.flag_sent), flag_edits_acknowledged=len(traffic.flag_acked),
           flag_version=flag[1], integrity="ok", person_problems=0)


@pytest.fixture
def small_fs(tmp_path):
    """A 16 MB tmpfs for the data directory (needs root; skipped otherwise)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode().strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_filesystem_answers_503_loses_nothing_and_recovers_without_restart(small_fs):
    data = small_fs / "data"
    project_id, token, _ = _setup(data)
    srv = Subprocess(data)
    # Leave ~1.5 MB free: the spool and the database both run out of room under load.
    free = shutil.disk_usage(small_fs).free
    ballast = small_fs / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\0" * (free - 1536 * 1024))
    sent, acked, refused, acked_ids, reasons = 0, 0, 0, set(), set()
    try:
        for k in range(60):
            ids = [str(uuid.uuid4()) for _ in range(100)]
            body = {"api_key": token, "batch": [
                {"event": "fill", "distinct_id": f"d{i % 5}", "uuid": u, "properties": {"pad": "x" * 300}}
                for i, u in enumerate(ids)]}
            r = http("POST", srv.url + "/batch/", body, timeout=20)
            sent += len(ids)
            if r.status == 200:
                acked += len(ids)
                acked_ids.update(ids)
            else:
                assert_error(r, 503)
                assert "Retry-After" in r.headers
                refused += len(ids)
                reasons.add(r.json()["detail"])
        assert refused > 0, "the filesystem never filled"
        # Space returns; the same process recovers (the writer retries every second).
        ballast.unlink()
        ok_after = 0
        for _ in range(200):
            ids = [str(uuid.uuid4())]
            r = http("POST", srv.url + "/e/", {"api_key": token, "event": "after", "distinct_id": "d",
                                               "uuid": ids[0]}, timeout=20)
            if r.status == 200:
                ok_after += 1
                acked += 1
                acked_ids.update(ids)
                if ok_after >= 5:
                    break
            else:
                assert r.status == 503
                srv.proc.poll()
                assert srv.proc.returncode is None
                import time

                time.sleep(0.05)  # the server retries on its own 1 s cycle; nothing to flush from here
        assert ok_after >= 5, "no recovery after space returned"
    finally:
        rc = srv.terminate()
    assert rc == 0
    db = data / "phlite.db"
    stored = set(stored_uuids(db))
    lost = acked_ids - stored
    assert not lost, f"{len(lost)} acknowledged events lost"
    assert integrity(db) == [("ok",)]
    assert not (data / "spool" / "rejected.log").exists(), "acknowledged requests set aside"
    record("filesystem_full_tmpfs", fs_mb=16, events_sent=sent + ok_after, acknowledged=acked, refused_503=refused,
           stored=len(stored), lost=len(lost), integrity="ok", answers_503=sorted(reasons))


def test_peak_rss_is_bounded_under_10x_overload(tmp_path):
    queue = 4 * 1024 * 1024
    project_id, token, _ = _setup(tmp_path)
    srv = Subprocess(tmp_path, "--queue-max-bytes", str(queue))
    pid = srv.proc.pid
    events = [{"event": "rss", "distinct_id": f"d{i % 9}", "properties": {"pad": "y" * 150, "i": i}}
              for i in range(500)]
    warm = {"api_key": token, "batch": events[:50]}
    for _ in range(20):
        assert http("POST", srv.url + "/batch/", warm).status == 200
    baseline = _status_kb(pid, "VmRSS")
    # An open write transaction from here blocks the writer: nothing drains the queue.
    lock = sqlite3.connect(tmp_path / "phlite.db", isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    body = json.dumps({"api_key": token, "batch": events}).encode()
    target = 10 * queue
    lock_ = threading.Lock()
    stats = {"bytes": 0, "sent": 0, "acked": 0, "full": 0, "refusing": 0, "acked_ids": set()}

    def worker():
        while True:
            with lock_:
                if stats["bytes"] >= target:
                    return
                stats["bytes"] += len(body)
                n = stats["sent"]
                stats["sent"] += 1
            # Unique uuids per request so acknowledged events can be counted in the file.
            ids = [str(uuid.UUID(int=(n << 16) + i)) for i in range(len(events))]
            b = json.dumps({"api_key": token, "batch": [{**e, "uuid": u} for e, u in zip(events, ids)]}).encode()
            r = http("POST", srv.url + "/batch/", b, {"Content-Type": "application/json"}, timeout=30)
            with lock_:
                if r.status == 200:
                    stats["acked"] += 1
                    stats["acked_ids"].update(ids)
                else:
                    assert r.status == 503 and "Retry-After" in r.headers, r.status
                    stats["full" if "queue is full" in r.json()["detail"] else "refusing"] += 1

    try:
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        peak = _status_kb(pid, "VmHWM")
    finally:
        lock.rollback()
        lock.close()
    assert srv.terminate() == 0
    stored = set(stored_uuids(tmp_path / "phlite.db"))
    lost = stats["acked_ids"] - stored
    assert not lost, f"{len(lost)} acknowledged events lost"
    assert stats["full"] + stats["refusing"] > 0
    growth_mb = (peak - baseline) / 1024
    # The queue holds at most 4 MB of records; the rest is requests being parsed.
    assert growth_mb < 48, f"peak RSS grew {growth_mb:.0f} MB over a {queue >> 20} MB queue"
    record("rss_10x_overload", queue_max_mb=queue >> 20, sent_mb=round(stats["bytes"] / 2**20, 1),
           requests=stats["sent"], acknowledged_requests=stats["acked"], refused_queue_full=stats["full"],
           refused_store_busy=stats["refusing"], events_acknowledged=len(stats["acked_ids"]),
           events_stored=len(stored & stats["acked_ids"]), lost=len(lost),
           baseline_rss_mb=round(baseline / 1024, 1), peak_rss_mb=round(peak / 1024, 1),
           growth_mb=round(growth_mb, 1))


def test_sigterm_while_the_filesystem_is_full_keeps_everything_acknowledged(small_fs):
    """An operator restarts phlite while its disk is full: what was acknowledged stays in the
    spool and is stored by the next start, once there is room."""
    data = small_fs / "data"
    project_id, token, _ = _setup(data)
    # The spool gets a filesystem of its own with room to spare, so that it is SQLite that
    # runs out: the writer holds acknowledged requests it cannot store when SIGTERM comes.
    spool = data / "spool"
    spool.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(spool)], check=True)
    try:
        _sigterm_while_full(small_fs, data, token)
    finally:
        subprocess.run(["umount", "-l", str(spool)], capture_output=True)


def _sigterm_while_full(small_fs, data, token):
    srv = Subprocess(data)
    ballast = small_fs / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\0" * (shutil.disk_usage(small_fs).free - 1024 * 1024))
    acked, refused, reasons = set(), 0, set()
    for k in range(40):
        ids = [str(uuid.uuid4()) for _ in range(100)]
        body = {"api_key": token, "batch": [
            {"event": "fill", "distinct_id": "d", "uuid": u, "properties": {"pad": "x" * 300}} for u in ids]}
        r = http("POST", srv.url + "/batch/", body, timeout=20)
        if r.status == 200:
            acked.update(ids)
        else:
            assert r.status == 503
            refused += 1
            reasons.add(r.json()["detail"])
    assert refused and acked
    assert all(d.startswith("Storage is refusing writes") for d in reasons), reasons
    start = time.monotonic()
    rc = srv.terminate(timeout=120)
    stop_seconds = time.monotonic() - start
    assert rc == 0
    assert stop_seconds < 15, "a full disk held the shutdown"
    ballast.unlink()
    srv = Subprocess(data)
    assert srv.terminate() == 0
    db = data / "phlite.db"
    stored = set(stored_uuids(db))
    lost = acked - stored
    assert not list(data.glob("spool/rejected.log"))
    assert not lost, f"{len(lost)} acknowledged events lost"
    assert integrity(db) == [("ok",)]
    record("sigterm_while_disk_full", events_acknowledged=len(acked), requests_refused_503=refused,
           stop_seconds=round(stop_seconds, 1), stored_after_restart=len(stored & acked), lost=len(lost))


def test_connections_held_open_are_closed_after_channel_timeout(tmp_path):
    """Idle or cut-short connections that fill `connection_limit` lock every other client out
    until waitress closes them: that must happen about `channel_timeout` later, not at
    waitress's own 30 s cleanup cycle."""
    _, token, _ = _setup(tmp_path)
    srv = Subprocess(tmp_path, "--connection-limit", "10", "--channel-timeout", "2")
    port = int(srv.url.rsplit(":", 1)[1])
    held = []
    try:
        for _ in range(12):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST /e/ HTTP/1.1\r\nHo")
            held.append(s)
        start = time.monotonic()
        r = http("POST", srv.url + "/e/", {"api_key": token, "event": "x", "distinct_id": "d"}, timeout=60)
        waited = time.monotonic() - start
        assert r.status == 200
        assert waited < 2 * 2 + 1.5, f"a client waited {waited:.1f} s behind held connections"
    finally:
        for s in held:
            s.close()
        assert srv.terminate() == 0
    record("connection_flood", connection_limit=10, held_connections=len(held), channel_timeout_s=2,
           normal_client_waited_s=round(waited, 1))
