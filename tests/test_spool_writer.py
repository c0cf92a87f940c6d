"""The spool and the writer without HTTP: replay after a crash, cut-short records,
segment rotation and release, flush, call ordering."""

import orjson
import pytest

from phlite.ingest.persons import PersonProcessor
from phlite.ingest.spool import Spool
from phlite.store import Store
from phlite.ingest.writer import Writer


def make(tmp_path, **kw):
    store = Store(tmp_path / "phlite.db")
    project = store.create_project("p")
    spool = Spool(tmp_path / "spool", kw.pop("segment_bytes", 1 << 20))
    return store, project["id"], spool, Writer(store, spool, **kw)


def events(n, prefix="e"):
    return [{"event": f"{prefix}{i}", "distinct_id": "d", "uuid": None} for i in range(n)]


def test_spool_replays_unstored_records_and_ignores_a_cut_short_tail(tmp_path):
    store, pid, spool, w = make(tmp_path)
    w.submit(pid, events(3))
    w.submit(pid, events(2, "x"))
    spool.close()
    # A crash in the middle of a third append leaves a partial record behind.
    seg = sorted((tmp_path / "spool").glob("*.log"))[-1]
    with open(seg, "ab") as f:
        f.write(b"\xa5\x5a\xff\x00\x00\x00garbage")
    store2 = Store(tmp_path / "phlite.db")
    w2 = Writer(store2, Spool(tmp_path / "spool"))
    assert len(w2.queue) == 2
    assert w2.flush()
    assert store2.count_events(pid) == 5
    # Stored records are not replayed again.
    w2.spool.close()
    w3 = Writer(Store(tmp_path / "phlite.db"), Spool(tmp_path / "spool"))
    assert len(w3.queue) == 0


def test_records_of_an_older_phlite_still_replay(tmp_path):
    # Spool records written before the record had a version ("v") and operations ("m"): an upgrade
    # must store them, with their person effects, like any other.
    store, pid, spool, w = make(tmp_path)
    old = {"p": pid, "t": 1_780_000_000_000, "s": "2026-05-28T12:00:00+00:00", "ip": "1.2.3.4", "k": "tok",
           "e": [{"event": "old", "distinct_id": "d", "properties": {"$set": {"a": 1}}}]}
    spool.append(orjson.dumps(old))
    spool.close()
    store2 = Store(tmp_path / "phlite.db")
    w2 = Writer(store2, Spool(tmp_path / "spool"), persons=PersonProcessor())
    assert len(w2.queue) == 1
    assert w2.flush()
    with store2.db.connection_context():
        [row] = store2.list_events(pid, limit=10)[0]
        assert row["event"] == "old" and orjson.loads(orjson.dumps(row["properties"]))["$ip"] == "1.2.3.4"
        props = store2.get_person_by_distinct_id(pid, "d")["properties"]
        assert props.pop("$creator_event_uuid") and props == {"a": 1}


def test_a_record_names_its_version_and_a_newer_one_is_not_misread(tmp_path):
    from phlite.ingest import record

    data = record.encode(record.Record(1, 5, None, None, "t", [{"event": "e"}], [{"$add": {"n": 1}}]))
    assert orjson.loads(data)["v"] == record.VERSION
    assert record.decode(data).operations == [{"$add": {"n": 1}}]
    newer = orjson.dumps({**orjson.loads(data), "v": record.VERSION + 1})
    with pytest.raises(ValueError):
        record.decode(newer)


def test_segments_rotate_and_are_released_once_stored(tmp_path):
    store, pid, spool, w = make(tmp_path, segment_bytes=300)
    for i in range(10):
        w.submit(pid, events(2, f"r{i}-"))
    assert len(list((tmp_path / "spool").glob("*.log"))) > 3
    assert w.flush()
    assert store.count_events(pid) == 20
    assert len(list((tmp_path / "spool").glob("*.log"))) <= 2


def test_writer_thread_flush_and_call_ordering(tmp_path):
    store, pid, spool, w = make(tmp_path)
    w.start()
    try:
        w.submit(pid, events(5))
        seen = w.call(lambda: store.count_events(pid))
        assert seen == 5  # call() runs after everything queued before it
        w.submit(pid, events(5, "y"))
        assert w.flush()
        assert store.count_events(pid) == 10
    finally:
        assert w.stop()


def test_queue_bound_answers_503(tmp_path):
    from phlite import errors

    store, pid, spool, w = make(tmp_path, max_bytes=600)
    w.submit(pid, events(5))
    try:
        for _ in range(10):
            w.submit(pid, events(5))
        raise AssertionError("queue never filled")
    except errors.Unavailable as e:
        assert e.status == 503 and e.headers["Retry-After"]
    assert w.flush()
    w.submit(pid, events(1))  # room again once stored


def test_a_record_the_writer_cannot_process_is_set_aside_not_lost(tmp_path, monkeypatch):
    store, pid, spool, w = make(tmp_path)
    w.submit(pid, events(2))
    w.submit(pid, [{"event": "boom", "distinct_id": "d"}])
    w.submit(pid, events(2, "after"))
    import phlite.ingest.batch as writer_mod

    real = writer_mod.normalize_event

    def flaky(raw, **kw):
        if raw.get("event") == "boom":
            raise RuntimeError("a bug")
        return real(raw, **kw)

    monkeypatch.setattr(writer_mod, "normalize_event", flaky)
    assert w.flush()
    assert store.count_events(pid) == 4
    # The one event is quarantined with its reason (its neighbours stored); nothing in rejected.log.
    [q] = store.quarantined(pid)
    assert q["event"]["event"] == "boom" and q["reason"] == "RuntimeError: a bug"
    assert w.dropped["quarantined"] == 1
    assert not (tmp_path / "spool" / "rejected.log").exists()


def test_an_unreadable_record_goes_to_a_bounded_rejected_log(tmp_path, monkeypatch):
    import phlite.ingest.writer as writer_mod

    monkeypatch.setattr(writer_mod, "REJECTED_LOG_BYTES", 1000)
    store, pid, spool, w = make(tmp_path)
    w.submit(pid, events(1))
    for i in range(30):  # a valid frame around a payload this phlite cannot read (a newer record version)
        spool.append(orjson.dumps({"v": 99, "p": pid, "pad": "x" * 100, "i": i}))
    w.submit(pid, events(1, "after"))
    spool.close()
    w2 = Writer(Store(tmp_path / "phlite.db"), Spool(tmp_path / "spool"))
    assert w2.flush()
    assert w2.store.count_events(pid) == 2 and w2.dropped["rejected_record"] == 30
    logs = sorted((tmp_path / "spool").glob("rejected.log*"))
    assert [p.name for p in logs] == ["rejected.log", "rejected.log.1"]
    assert all(p.stat().st_size <= 1000 for p in logs)
    assert b'"i":29' in logs[0].read_bytes()


def test_a_huge_record_is_stored_in_bounded_commits_and_resumes_inside_it(tmp_path):
    store, pid, spool, w = make(tmp_path, commit_events=1000)
    n = 10_500
    w.submit(pid, [{"event": "tiny", "distinct_id": f"d{i % 50}", "properties": {"i": i}} for i in range(n)])
    w.submit(pid, events(3, "next"))
    commits = []
    real = store.set_spool_position
    # Crash (an exception out of the store) after the fourth commit: the record is partly stored.
    def crash_after_four(position, done_events=0):
        commits.append(done_events)
        if len(commits) == 5:
            raise KeyboardInterrupt("power cut")
        return real(position, done_events)

    store.set_spool_position = crash_after_four
    with pytest.raises(KeyboardInterrupt):
        w.flush()
    assert commits[:4] == [1000, 2000, 3000, 4000]
    assert store.count_events(pid) == 4000
    spool.close()
    # A fresh start resumes after event 4,000 of the record: nothing lost, nothing twice.
    store2 = Store(tmp_path / "phlite.db")
    w2 = Writer(store2, Spool(tmp_path / "spool"), commit_events=1000, persons=PersonProcessor())
    assert w2.done_events == 4000
    assert w2.flush()
    with store2.db.connection_context():
        rows = store2.db.execute_sql("SELECT properties FROM event WHERE project_id = ? AND event = 'tiny'",
                                     (pid,)).fetchall()
    seen = sorted(orjson.loads(r[0])["i"] for r in rows)
    assert seen == list(range(n))
    assert store2.count_events(pid) == n + 3
    assert store2.spool_position()[1] == 0


def _forty_records(tmp_path):
    store, pid, spool, w = make(tmp_path)
    for i in range(40):
        w.submit(pid, [{"event": f"r{i}", "distinct_id": "d", "properties": {"pad": "x" * 200}}])
    spool.close()
    [seg] = sorted((tmp_path / "spool").glob("0*.log"))
    return store, pid, seg


def _replayed(tmp_path):
    spool = Spool(tmp_path / "spool")
    w = Writer(Store(tmp_path / "phlite.db"), spool)
    names = [orjson.loads(p if isinstance(p, bytes) else spool.read(pos, len(p)))["e"][0]["event"]
             for pos, p in w.queue]
    return w, names


def test_recovery_resynchronises_after_a_flipped_bit(tmp_path):
    store, pid, seg = _forty_records(tmp_path)
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside record 20's payload: its CRC fails
    seg.write_bytes(bytes(data))
    w, names = _replayed(tmp_path)
    assert len(names) == 39 and w.spool.damaged == 1  # before: the 20 records after it were lost too
    assert w.flush() and w.store.count_events(pid) == 39
    assert (tmp_path / "spool" / "damaged.log").stat().st_size > 0


def test_recovery_resynchronises_after_a_torn_512_byte_page(tmp_path):
    store, pid, seg = _forty_records(tmp_path)
    data = bytearray(seg.read_bytes())
    start = 4096 + 100
    data[start:start + 512] = b"\0" * 512  # a page that never reached the disk
    seg.write_bytes(bytes(data))
    w, names = _replayed(tmp_path)
    record_size = len(data) // 40
    lost = 40 - len(names)
    assert 1 <= lost <= 512 // record_size + 2, lost  # only the records the page touched (before: 26)
    assert w.spool.damaged == 1
    expected = [f"r{i}" for i in range(40)]
    assert names == [n for n in expected if n in names] and names[-1] == "r39"


def test_a_spool_file_in_todays_format_still_replays(tmp_path):
    # Bytes written by hand in the format of this release (magic a5 5a, u32 length, u32 CRC), so a
    # change of the framing that breaks old spools fails here.
    import struct
    import zlib

    store, pid, spool, w = make(tmp_path)
    spool.close()
    payload = orjson.dumps({"v": 1, "p": pid, "t": 1_780_000_000_000, "s": None, "ip": None, "k": "t",
                            "e": [{"event": "old-format", "distinct_id": "d"}]})
    frame = b"\xa5\x5a" + struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    (tmp_path / "spool" / "0000000100.log").write_bytes(frame * 2 + b"\xa5\x5a\x10")
    w2 = Writer(Store(tmp_path / "phlite.db"), Spool(tmp_path / "spool"))
    assert len(w2.queue) == 2 and w2.spool.damaged == 0
    assert w2.flush() and w2.store.count_events(pid) == 2


def test_a_spool_that_is_a_file_or_holds_a_directory_is_a_clear_startup_error(tmp_path):
    from phlite.errors import StartupError
    from phlite.ingest.spool import SpoolError

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "spool").write_text("x")
    with pytest.raises(SpoolError) as e:
        Spool(tmp_path / "a" / "spool")
    assert isinstance(e.value, StartupError) and "\n" not in str(e.value) and "not a directory" in str(e.value)
    (tmp_path / "b" / "spool" / "0000000001.log").mkdir(parents=True)
    with pytest.raises(SpoolError) as e:
        Spool(tmp_path / "b" / "spool").recover((0, 0))
    assert "is a directory" in str(e.value) and "\n" not in str(e.value)


def _generated_requests(seed, n=60):
    """Requests of mixed events: plain, $set/$set_once/$unset, merges, groups, odd values."""
    import random

    rng = random.Random(seed)
    values = [0, -1, 2**63 - 1, 18446744073709551615, 1.5, -0.0, 1e300, "", "é\u2028x", "\x00", None, True,
              [1, {"a": [None]}], {"nested": {"k": "v"}}]
    out = []
    for r in range(n):
        evs = []
        for i in range(rng.randint(1, 12)):
            did = f"d{rng.randint(0, 15)}"
            kind = rng.random()
            props = {f"p{rng.randint(0, 5)}": rng.choice(values) for _ in range(rng.randint(0, 4))}
            event = {"event": "pv", "distinct_id": did, "uuid": f"00000000-0000-4000-8000-{r:06d}{i:06d}",
                     "properties": props, "timestamp": rng.choice([None, "2026-01-01T00:00:00Z", "bad", 1])}
            if kind < 0.2:
                props["$set"] = {"plan": rng.choice(values)}
                props["$set_once"] = {"first": rng.choice(values)}
            elif kind < 0.3:
                event["event"] = "$identify"
                props["$anon_distinct_id"] = f"d{rng.randint(0, 15)}"
            elif kind < 0.4:
                event["event"] = "$groupidentify"
                props.update({"$group_type": "company", "$group_key": f"g{rng.randint(0, 3)}",
                              "$group_set": {"size": rng.choice(values)}})
            elif kind < 0.5:
                props["$groups"] = {"company": f"g{rng.randint(0, 3)}"}
            elif kind < 0.55:
                props["$unset"] = ["plan"]
            evs.append(event)
        out.append(evs)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_records_handed_over_parsed_store_exactly_what_records_read_from_the_spool_store(tmp_path, seed):
    # The writer stores a record as submit() parsed it while it fits the memory bound, else reads it
    # back from the spool: both must give the same rows.
    outcome = []
    for name, memory in (("parsed", 1 << 30), ("spool", 0)):
        store = Store(tmp_path / name / "phlite.db")
        pid = store.create_project("p")["id"]
        w = Writer(store, Spool(tmp_path / name / "spool"), persons=PersonProcessor(), memory_bytes=memory,
                   clock=lambda: 1_780_000_000.0)
        for evs in _generated_requests(seed):
            w.submit(pid, evs, ip="10.0.0.1", token="tok")
        kinds = {type(item).__name__ for _, item in w.queue}
        assert kinds == ({"Parsed"} if name == "parsed" else {"InSpool"})
        assert w.flush()
        with store.db.connection_context():
            q = store.db.execute_sql
            outcome.append((
                q("SELECT uuid, event, distinct_id, properties, timestamp, created_at, person_id FROM event"
                  " ORDER BY id").fetchall(),
                q("SELECT id, uuid, properties, created_at, is_identified FROM person ORDER BY id").fetchall(),
                q("SELECT distinct_id, person_id FROM person_distinct_id ORDER BY distinct_id").fetchall(),
                q("SELECT group_type_index, group_key, properties FROM group_ ORDER BY group_key").fetchall(),
                dict(w.dropped), w.stored))
    assert outcome[0] == outcome[1]
    assert outcome[0][5] > 300


def test_a_large_merge_batch_is_committed_in_time_bounded_slices(tmp_path, monkeypatch):
    # docs/reliability.md "Long writer transactions": a group commit stops between slices of
    # SLICE_EVENTS events once it has run writer_commit_seconds, commits, and the next one goes on.
    from phlite.ingest import batch as batch_mod

    monkeypatch.setattr(batch_mod, "SLICE_EVENTS", 500)
    n = 3000
    anon = [{"event": "pv", "distinct_id": f"anon-{i}", "properties": {"$set": {"a": i}},
             "uuid": f"00000000-0000-4000-8000-{i:012d}"} for i in range(n)]
    merges = [{"event": "$identify", "distinct_id": f"user-{i}", "uuid": f"00000000-0000-4000-9000-{i:012d}",
               "properties": {"$anon_distinct_id": f"anon-{i}", "$set": {"b": i}}} for i in range(n)]
    outcome = []
    for name, seconds in (("bounded", 0.5), ("unbounded", float("inf"))):
        ticks = iter(range(10**6))
        store = Store(tmp_path / name / "phlite.db")
        pid = store.create_project("p")["id"]
        # Each reading of the clock is 0.3 s later: a commit's deadline passes after its second slice.
        w = Writer(store, Spool(tmp_path / name / "spool"), persons=PersonProcessor(), commit_seconds=seconds,
                   monotonic=lambda: next(ticks) * 0.3)
        w.submit(pid, anon)
        assert w.flush()
        w.submit(pid, merges)
        marks = []
        real = store.set_spool_position
        store.set_spool_position = lambda position, done=0: (marks.append(done), real(position, done))[1]
        assert w.flush()
        if name == "bounded":
            assert marks == [1000, 2000, 0]  # 3 commits of 2 slices of 500 merges
        else:
            assert marks == [0]
        with store.db.connection_context():
            q = store.db.execute_sql
            outcome.append((q("SELECT uuid, properties, is_identified FROM person ORDER BY id").fetchall(),
                            q("SELECT distinct_id, person_id FROM person_distinct_id ORDER BY 1").fetchall(),
                            store.count_events(pid)))
    assert outcome[0] == outcome[1]
    assert len(outcome[0][0]) == n and outcome[0][2] == 2 * n
