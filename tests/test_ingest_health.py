"""A writer that cannot keep what it acknowledges stops acknowledging (issue 11): the live spool
segment deleted (a second phlite on the data dir did this), the spool directory gone or replaced,
the writer failing. Capture answers 503 with Retry-After while /healthz says why, and no
acknowledged record is left only in memory."""

import os
import shutil
import subprocess
import sys
import threading

import orjson
import pytest

from phlite.config import Config
from phlite.ingest.spool import Spool
from support import ROOT, InProcessServer, Project, assert_error, http, stored_uuids


def _health(r):
    """/healthz's verdict on the writer (it also reports disk space: tests/test_ops.py)."""
    return {k: r.json()[k] for k in ("status", "writer", "reason")}


def _batch(p, prefix, n=5):
    events = [{"event": prefix, "distinct_id": "d", "uuid": None} for _ in range(n)]
    import uuid
    for e in events:
        e["uuid"] = str(uuid.uuid4())
    return [e["uuid"] for e in events], http("POST", p.url + "/batch/", {"api_key": p.token, "batch": events})


def _gate(srv):
    """Hold the writer thread (deterministically) until the returned Event is set."""
    gate, entered = GATES[-1], threading.Event()
    threading.Thread(target=lambda: srv.app.ingestion.call(lambda: (entered.set(), gate.wait(30))),
                     daemon=True).start()
    assert entered.wait(10)
    return gate


GATES = [threading.Event()]


@pytest.fixture(autouse=True)
def _release_gates():
    yield
    GATES[-1].set()
    GATES.append(threading.Event())


def _spooled_uuids(spool_dir):
    """The event uuids a fresh start would replay from the spool files (what survives a crash now)."""
    spool = Spool(spool_dir)
    try:
        return {e["uuid"] for _, payload in spool.recover((0, 0)) for e in orjson.loads(payload)["e"]}
    finally:
        for seg in list(spool.fds):  # recover() opened a fresh, empty segment: leave no trace
            os.close(spool.fds.pop(seg))
            spool._path(seg).unlink()


def test_a_deleted_live_segment_answers_503_then_recovers_with_nothing_only_in_memory(tmp_path):
    srv = InProcessServer(Config(data_dir=tmp_path))
    try:
        p = Project(srv)
        gate = _gate(srv)
        acked = []
        for k in range(3):
            ids, r = _batch(p, f"before{k}")
            assert r.status == 200
            acked += ids
        assert _health(http("GET", p.url + "/healthz")) == {"status": "ok", "writer": "running", "reason": None}
        # What a second phlite on this data dir did when it stopped: delete our live segment.
        for seg in (tmp_path / "spool").glob("*.log"):
            seg.unlink()
        # /healthz (like the next capture) notices, and moves the queued records to a new segment
        # at once: the writer is healthy again and nothing acknowledged is only in memory.
        assert _health(http("GET", p.url + "/healthz")) == {"status": "ok", "writer": "running", "reason": None}
        ids, r = _batch(p, "after")
        assert r.status == 200, r.body
        acked += ids
        # Every acknowledged record is on disk where a restart would find it, before it is stored.
        assert _spooled_uuids(tmp_path / "spool") >= set(acked)
        gate.set()
        srv.flush()
        assert sorted(stored_uuids(srv.store.path, p.id)) == sorted(acked)
        assert http("GET", p.url + "/healthz").status == 200
    finally:
        srv.close()


def test_an_append_into_a_deleted_segment_is_refused(tmp_path):
    srv = InProcessServer(Config(data_dir=tmp_path))
    try:
        p = Project(srv)
        gate = _gate(srv)
        ids, r = _batch(p, "one")
        assert r.status == 200
        for seg in (tmp_path / "spool").glob("*.log"):
            seg.unlink()
        _, r = _batch(p, "lost")
        body = assert_error(r, 503, code="service_unavailable")
        assert r.headers["Retry-After"] == "5" and "another phlite" in body["detail"]
        assert _spooled_uuids(tmp_path / "spool") == set(ids)
        ids2, r = _batch(p, "two")
        assert r.status == 200
        gate.set()
        srv.flush()
        assert sorted(stored_uuids(srv.store.path, p.id)) == sorted(ids + ids2)
    finally:
        srv.close()


def test_a_spool_directory_replaced_by_a_file_answers_503_until_it_is_back(tmp_path):
    srv = InProcessServer(Config(data_dir=tmp_path))
    try:
        p = Project(srv)
        gate = _gate(srv)
        ids, r = _batch(p, "one")
        assert r.status == 200
        shutil.rmtree(tmp_path / "spool")
        (tmp_path / "spool").write_text("not a directory")
        for _ in range(3):
            _, r = _batch(p, "refused")
            assert_error(r, 503, code="service_unavailable")
            assert r.headers["Retry-After"] == "5"
        health = http("GET", p.url + "/healthz")
        assert health.status == 503 and health.json()["status"] == "unavailable", health.body
        assert health.json()["reason"]
        (tmp_path / "spool").unlink()
        ids2, r = _batch(p, "two")
        assert r.status == 200, r.body
        assert _spooled_uuids(tmp_path / "spool") == set(ids + ids2)
        gate.set()
        srv.flush()
        assert sorted(stored_uuids(srv.store.path, p.id)) == sorted(ids + ids2)
        assert http("GET", p.url + "/healthz").json()["status"] == "ok"
    finally:
        srv.close()


def test_spool_open_failure_never_leaves_a_stale_fd_to_close_later(tmp_path):
    # Run in a child with a low RLIMIT_NOFILE: fill the table, make the spool rotate (open fails
    # with EMFILE), free one slot and let a "client socket" take the lowest number, then close
    # the spool: the socket must survive.
    script = f"""
import os, resource, socket, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from phlite.ingest.spool import Spool
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
spool = Spool(Path({str(tmp_path)!r}) / "spool", segment_bytes=10)
spool.recover((0, 0))
spool.append(b"x" * 20)
old = spool.fd
hog = []
try:
    while True:
        hog.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
try:
    spool.append(b"y" * 20)  # rotates: the open of the next segment fails
    print("append unexpectedly succeeded"); sys.exit(1)
except OSError:
    pass
for fd in hog[:2]:
    os.close(fd)
s1, s2 = socket.socketpair()
spool.close()
os.fstat(s1.fileno()); os.fstat(s2.fileno())
s1.send(b"ok")
print(s2.recv(2).decode())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.stdout, out.stderr)


def test_a_writer_call_that_times_out_before_it_starts_never_runs_later(tmp_path):
    srv = InProcessServer(Config(data_dir=tmp_path))
    try:
        writer = srv.app.ingestion.writer
        gate = _gate(srv)
        ran = []
        from phlite import errors

        with pytest.raises(errors.Unavailable):
            writer.call(lambda: ran.append("late"), timeout=0.05)
        gate.set()
        srv.flush()
        assert writer.call(lambda: "now") == "now"
        assert ran == []  # before: answered 503, then applied anyway
    finally:
        srv.close()


@pytest.mark.slow
def test_a_lock_timeout_on_the_private_api_is_a_503_and_changes_nothing(tmp_path):
    import sqlite3

    srv = InProcessServer(Config(data_dir=tmp_path))
    try:
        p = Project(srv)
        r = p.api("POST", "/api/projects/@project/feature_flags/", {"key": "f", "filters": {"groups": [
            {"properties": [], "rollout_percentage": 10}]}})
        assert r.status in (200, 201), r.body
        flag_id = r.json()["id"]
        con = sqlite3.connect(srv.store.path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")  # a long writer transaction holds the lock past the busy timeout
        try:
            r = p.api("PATCH", f"/api/projects/@project/feature_flags/{flag_id}/",
                      {"filters": {"groups": [{"properties": [], "rollout_percentage": 90}]}})
        finally:
            con.execute("ROLLBACK")
            con.close()
        assert_error(r, 503, code="service_unavailable")
        assert r.headers["Retry-After"] == "2"
        r = p.api("GET", f"/api/projects/@project/feature_flags/{flag_id}/")
        assert r.json()["filters"]["groups"][0]["rollout_percentage"] == 10
    finally:
        srv.close()
