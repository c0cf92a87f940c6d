"""`python app.py backup PATH` against a running server under capture load, then `verify`, then a restore
(docs/reliability.md "Backup and restore")."""

import json
import sqlite3
import subprocess
import sys
import threading

import pytest

from support import ROOT, Subprocess, http
from test_reliability import record


def app(*args):
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=120)


def distinct_ids(db_path):
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return {r[0] for r in db.execute("SELECT distinct_id FROM event WHERE event = 'load'")}


@pytest.mark.slow
def test_backup_under_load_holds_everything_acknowledged_before_it(tmp_path):
    data, target = tmp_path / "data", tmp_path / "backup"
    data.mkdir()
    srv = Subprocess(data)
    acked, stop, flowing = [], threading.Event(), threading.Event()
    lock = threading.Lock()

    def load(prefix):
        n = 0
        while not stop.is_set():
            ids = [f"{prefix}{n + i}" for i in range(50)]
            n += 50
            r = http("POST", srv.url + "/batch/", {"api_key": srv.token, "batch": [
                {"event": "load", "distinct_id": d, "properties": {"pad": "x" * 200}} for d in ids]})
            if r.status == 200:
                with lock:
                    acked.extend(ids)
                    if len(acked) >= 3000:
                        flowing.set()

    threads = [threading.Thread(target=load, args=(p,)) for p in "ab"]
    try:
        for t in threads:
            t.start()
        assert flowing.wait(60), "no load"  # some acknowledged, and some of those stored
        stored_before = distinct_ids(srv.db)
        with lock:
            acked_before = set(acked)
        r = app("backup", str(target), "--data-dir", str(data))
        with lock:
            acked_during = len(acked) - len(acked_before)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["integrity"] == "ok" and summary["counts"]["event"] >= len(stored_before)
    # The copy alone holds every event stored before the backup began.
    in_copy = distinct_ids(target / "phlite.db")
    assert stored_before <= in_copy
    # verify, on its own.
    v = app("verify", str(target))
    assert v.returncode == 0 and json.loads(v.stdout)["integrity"] == "ok", v.stdout + v.stderr
    assert srv.terminate() == 0
    # Restore = start phlite on the backup directory: it replays the copied spool tail.
    restored = Subprocess(target)
    assert restored.terminate() == 0
    after = distinct_ids(target / "phlite.db")
    missing = acked_before - after
    assert not missing, f"{len(missing)} acknowledged before the backup are not in the restore"
    with sqlite3.connect(target / "phlite.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dupes = db.execute("SELECT count(*) - count(DISTINCT distinct_id) FROM event WHERE event = 'load'").fetchone()[0]
    assert dupes == 0
    record("backup_under_load", acknowledged_before=len(acked_before), stored_before=len(stored_before),
           in_copy=len(in_copy), acknowledged_during=acked_during, after_restore=len(after & acked_before),
           lost=len(missing), duplicated=dupes, spool_segments=summary["spool_segments"])


def test_backup_refuses_a_target_in_use_and_verify_finds_damage(tmp_path):
    data = tmp_path / "data"
    r = app("project", "create", "p", "--json", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("mine")
    r = app("backup", str(busy), "--data-dir", str(data))
    assert r.returncode == 2 and "not an empty directory" in r.stderr and "Traceback" not in r.stderr
    r = app("backup", str(tmp_path / "ok"), "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["project"] == 1
    # A damaged copy: verify says so and exits 1.
    db = tmp_path / "ok" / "phlite.db"
    raw = bytearray(db.read_bytes())
    page = 4096
    for i in range(page * 2, min(len(raw), page * 3)):
        raw[i] = 0xFF
    db.write_bytes(bytes(raw))
    r = app("verify", str(tmp_path / "ok"))
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
