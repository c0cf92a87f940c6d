"""The `fsync` setting (docs/reliability.md "Power loss"): `off` acknowledges once the record is in the
kernel, `batch` only after a group fsync of the spool that covers it, shared by concurrent requests."""

import threading

import pytest

from phlite import config as configmod
from phlite.errors import StartupError
from support import ev, http


def test_the_setting_parses_both_ways_and_refuses_anything_else():
    assert configmod.load({}, {}).fsync == "off"
    assert configmod.load({"fsync": "batch"}, {}).fsync == "batch"
    assert configmod.load({}, {"PHLITE_FSYNC": "Batch"}).fsync == "batch"
    assert configmod.load({"fsync": "off"}, {"PHLITE_FSYNC": "batch"}).fsync == "off"
    with pytest.raises(StartupError, match="fsync"):
        configmod.load({"fsync": "always"}, {})


def capture(srv, token, i, out):
    body = {"api_key": token, "batch": [ev("e", f"u{i}", n=i)]}
    out[i] = http("POST", srv.url + "/batch/", body).status


def test_off_never_fsyncs(make_server):
    srv = make_server()
    assert srv.app.ingestion.writer.syncer is None
    with srv.app.store.db.connection_context():
        assert srv.app.store.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_batch_answers_only_after_an_fsync_that_concurrent_requests_share(make_server):
    srv = make_server(fsync="batch")
    writer = srv.app.ingestion.writer
    syncer = writer.syncer
    with srv.app.store.db.connection_context():
        token = srv.app.store.create_project("p")["api_token"]
        # Commits are synced too: a spool segment is deleted only behind a durable commit.
        assert srv.app.store.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    real, calls, started, gate = syncer.fsync_fn, [], threading.Event(), threading.Event()
    followers = 5

    def fsync(fd):  # the injected fsync: counts, and holds the first one until the others queue behind it
        calls.append(fd)
        if len(calls) == 1:
            started.set()
            with syncer.cond:
                assert syncer.cond.wait_for(lambda: syncer.waiting >= followers, 10)
            assert gate.wait(10)
        real(fd)

    syncer.fsync_fn = fsync
    out, before = {}, writer.appended
    first = threading.Thread(target=capture, args=(srv, token, 0, out))
    first.start()
    assert started.wait(10)
    # The first request is in the spool and waits for its fsync: no answer yet.
    assert writer.appended > before and out == {}
    rest = [threading.Thread(target=capture, args=(srv, token, i, out)) for i in range(1, followers + 1)]
    for t in rest:
        t.start()
    with syncer.cond:
        assert syncer.cond.wait_for(lambda: syncer.waiting >= followers, 10)
    assert out == {}  # all six spooled, none answered while the fsync runs
    gate.set()
    for t in [first, *rest]:
        t.join(10)
    assert out == {i: 200 for i in range(followers + 1)}
    # One fsync for the first, one shared by the five that appended while it ran.
    assert len(calls) == 2 and syncer.fsyncs == 2
    srv.flush()
    with srv.app.store.db.connection_context():
        assert srv.app.store.db.execute_sql("SELECT count(*) FROM event").fetchone()[0] == followers + 1
    # Alone, a request still gets its own fsync.
    capture(srv, token, 99, out)
    assert out[99] == 200 and len(calls) == 3
