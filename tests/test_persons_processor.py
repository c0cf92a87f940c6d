"""The person processor's cost and cache, against a real SQLite store without HTTP: how many
statements a batch runs, that the distinct_id cache stays bounded, and that a rolled-back
writer transaction never leaves the cache pointing at persons that do not exist."""

import collections

import pytest

from support import ev, http
from phlite.ingest.normalize import normalize_event
from phlite.ingest.persons import PersonProcessor
from phlite.store import Store

NOW = 1_780_000_000_000


def props(person):
    """A stored person's properties without `$creator_event_uuid` (checked by tests/test_persons.py)."""
    return {k: v for k, v in person["properties"].items() if k != "$creator_event_uuid"}


def events(*raw):
    out = [normalize_event(r, now_ms=NOW, sent_at=None, ip=None) for r in raw]
    assert not any(isinstance(e, str) for e in out), out
    return out


def with_operations(event, **operations):
    """An event carrying Mixpanel operations, as the writer builds it from an /engage record."""
    event.mixpanel = operations
    return event


class Recorder:
    """The store, counting calls of each method and tracing every SQL statement run."""

    def __init__(self, store):
        self.store = store
        self.calls = collections.Counter()
        self.sql = []

    def __getattr__(self, name):
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def wrapped(*args, **kwargs):
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return wrapped

    def run(self, proc, project_id, evs):
        self.calls.clear()
        self.sql.clear()
        conn = self.store.db.connection()
        conn.set_trace_callback(self.sql.append)
        try:
            with self.store.transaction():
                out = proc.process(self, project_id, evs, NOW)
        finally:
            conn.set_trace_callback(None)
        return out

    def work(self):
        """Statements other than the transaction itself and the per-batch rollback marker."""
        return [s for s in self.sql
                if not s.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))
                and "phlite_txn_marker" not in s]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "phlite.db")
    with s.db.connection_context():
        pid = s.create_project("p")["id"]
        s.project_id = pid
        yield s
    s.close()


def test_a_batch_of_new_persons_is_a_handful_of_statements(store):
    proc, rec = PersonProcessor(), Recorder(store)
    out = rec.run(proc, store.project_id, events(*[ev("e", f"u{i}", **{"$set": {"i": i}}) for i in range(1000)]))
    assert len(out) == 1000 and all(e.person_id for e in out)
    assert len({e.person_id for e in out}) == 1000
    assert rec.calls == {"bump_txn_marker": 1, "person_ids_for": 1, "max_person_id": 1, "insert_persons": 1,
                         "set_distinct_ids": 1}
    assert props(store.get_person_by_distinct_id(store.project_id, "u7")) == {"i": 7}


def test_plain_events_of_known_persons_cost_no_sql(store):
    proc, rec = PersonProcessor(), Recorder(store)
    rec.run(proc, store.project_id, events(*[ev("e", f"u{i}") for i in range(50)]))
    out = rec.run(proc, store.project_id, events(*[ev("pageview", f"u{i % 50}", plan="x") for i in range(500)]))
    assert rec.work() == []
    assert rec.calls == {"bump_txn_marker": 1}
    assert {e.person_id for e in out} == {store.get_person_by_distinct_id(store.project_id, f"u{i}")["id"]
                                          for i in range(50)}


def test_plain_events_take_the_short_path_only_without_person_keys(store):
    # Events not named $... and with no person keys skip the merge and change checks; any key that may
    # change a person (explicit, Mixpanel or automatic, docs/protocol.md "Automatic person properties") or attach a group still takes the full path.
    proc = PersonProcessor()
    batch = events(
        ev("plain", "a", plan="x"), ev("plain", "b", **{"$set": {"k": 1}}), ev("plain", "c", **{"$browser": "Firefox"}),
        ev("plain", "d", **{"$groups": {"company": "acme"}}), ev("plain", "a"),
        ev("plain", "e", **{"$process_person_profile": True}))
    with_operations(batch[4], **{"$add": {"n": 2}})
    out = proc.process(store, store.project_id, batch, NOW)
    person = lambda d: store.get_person_by_distinct_id(store.project_id, d)  # noqa: E731
    assert [e.person_id for e in out] == [person(d)["id"] for d in "abcdae"]
    assert props(person("a")) == {"n": 2} and props(person("b")) == {"k": 1}
    assert props(person("c")) == {"$browser": "Firefox", "$initial_browser": "Firefox"}
    assert out[3].properties["$group_0"] == "acme" and props(person("e")) == {}


def test_property_changes_are_written_once_per_person_per_batch(store):
    PersonProcessor().process(store, store.project_id, events(*[ev("e", f"u{i}") for i in range(10)]), NOW)
    proc, rec = PersonProcessor(), Recorder(store)  # a cold cache: one lookup query
    rec.run(proc, store.project_id, events(*[ev("$set", f"u{i % 10}", **{"$set": {"n": i}}) for i in range(100)]))
    assert rec.calls == {"bump_txn_marker": 1, "person_ids_for": 1, "load_persons": 1, "update_persons": 1}
    assert len([s for s in rec.work() if s.startswith("UPDATE person ")]) == 10
    assert props(store.get_person_by_distinct_id(store.project_id, "u3")) == {"n": 93}


def test_unchanged_properties_are_not_written(store):
    proc, rec = PersonProcessor(), Recorder(store)
    rec.run(proc, store.project_id, events(ev("$set", "u", **{"$set": {"a": 1}})))
    rec.run(proc, store.project_id, events(ev("$set", "u", **{"$set": {"a": 1}, "$set_once": {"a": 2}})))
    assert "update_persons" not in rec.calls


def test_cache_is_bounded(store):
    proc = PersonProcessor(cache_size=10)
    for round_ in range(2):
        out = proc.process(store, store.project_id, events(*[ev("e", f"u{i}") for i in range(50)]), NOW)
        assert len(proc.cache) <= 10
        assert len({e.person_id for e in out}) == 50
    assert store.db.execute_sql("SELECT COUNT(*) FROM person").fetchone()[0] == 50


def test_rolled_back_batch_leaves_no_stale_cache(store):
    proc = PersonProcessor()
    proc.process(store, store.project_id, events(ev("e", "old")), NOW)
    with pytest.raises(RuntimeError):
        with store.transaction():
            batch = events(ev("e", "new"), ev("$identify", "new", **{"$anon_distinct_id": "old"}))
            proc.process(store, store.project_id, batch, NOW)
            raise RuntimeError("the insert after person processing failed")
    assert store.get_person_by_distinct_id(store.project_id, "new") is None
    with store.transaction():
        out = proc.process(store, store.project_id, events(ev("e", "new", **{"$set": {"a": 1}})), NOW)
    p = store.get_person_by_distinct_id(store.project_id, "new")
    assert p is not None and props(p) == {"a": 1} and out[0].person_id == p["id"]
    assert store.get_person_by_distinct_id(store.project_id, "old")["id"] != p["id"]


def test_writer_retry_after_a_failed_commit_keeps_persons_right(make_server):
    srv = make_server()
    token = srv.store.create_project("p")["api_token"]
    failures = []

    persons = srv.app.ingestion.persons
    process = persons.process

    def fail_once(store, project_id, evs, now_ms):
        evs = process(store, project_id, evs, now_ms)
        if not failures:
            failures.append(1)
            raise RuntimeError("simulated failure after person processing")
        return evs

    persons.process = fail_once  # fails the writer's transaction once, after person processing
    r = http("POST", srv.url + "/batch/", {"api_key": token, "batch": [ev("e", "fresh", **{"$set": {"a": 1}})]})
    assert r.status == 200
    srv.flush()
    assert failures
    pid = srv.store.project_for_token(token)
    with srv.store.db.connection_context():
        p = srv.store.get_person_by_distinct_id(pid, "fresh")
    assert p is not None and props(p) == {"a": 1}
    http("POST", srv.url + "/batch/", {"api_key": token, "batch": [ev("e", "fresh", **{"$set": {"b": 2}})]})
    srv.flush()
    with srv.store.db.connection_context():
        assert props(srv.store.get_person_by_distinct_id(pid, "fresh")) == {"a": 1, "b": 2}
