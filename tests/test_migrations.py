"""Migrations: an empty database migrates to the pinned schema (tests/schema.sql), and a data dir
made by an older phlite (only its migrations applied, with data in it) keeps its data through the rest.

A new migration changes the schema on purpose: regenerate the pinned file with
`python3 tests/test_migrations.py` and review the diff.
"""

import json
import uuid
import re
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import ROOT  # noqa: E402
from phlite.store import Store  # noqa: E402
from phlite.query import local_day  # noqa: E402
from phlite.store.db import _migration_modules, migrate, open_database  # noqa: E402

PINNED = ROOT / "tests" / "schema.sql"
VERSIONS = [m.VERSION for m in _migration_modules()]


def schema(db_path):
    """sqlite_master, normalised: one statement per object, sorted, whitespace folded."""
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
        applied = [r[0] for r in con.execute("SELECT version FROM schema_migration ORDER BY version")]
    finally:
        con.close()
    out = [f"-- migrations applied: {applied}"]
    for type_, name, sql in sorted(rows):
        folded = re.sub(r"\s+", " ", sql).strip()
        out.append(f"-- {type_} {name}\n{folded};")
    return "\n".join(out) + "\n"


def test_an_empty_database_migrates_to_the_pinned_schema(tmp_path):
    Store(tmp_path / "phlite.db").close()
    assert schema(tmp_path / "phlite.db") == PINNED.read_text(), (
        "the schema differs from tests/schema.sql: if a migration changed it on purpose, "
        "regenerate it with `python3 tests/test_migrations.py` and review the diff")


def test_migrating_twice_changes_nothing(tmp_path):
    Store(tmp_path / "phlite.db").close()
    before = schema(tmp_path / "phlite.db")
    Store(tmp_path / "phlite.db").close()
    assert schema(tmp_path / "phlite.db") == before


def _old_data_dir(path, upto):
    """A database as a phlite with migrations up to `upto` left it, holding one project's data."""
    db = open_database(path)
    with db.connection_context():
        migrate(db, upto=upto)
    db.close()
    con = sqlite3.connect(path)
    with con:
        con.execute("INSERT INTO project (id, name, api_token, created_at) VALUES (1, 'old', 'phc_old', 1000)")
        for i in range(3):
            con.execute(
                "INSERT INTO event (project_id, uuid, event, distinct_id, properties, timestamp, created_at)"
                " VALUES (1, ?, ?, 'user-1', ?, ?, ?)",
                (bytes([i]) * 16, f"e{i}", json.dumps({"i": i}), 1_700_000_000_000 + i, 1_700_000_000_000))
        con.execute("UPDATE spool_state SET segment = 3, offset = 77 WHERE id = 1")
    con.close()


@pytest.mark.parametrize("upto", VERSIONS[:-1] or [None])
def test_an_older_data_dir_keeps_its_data(tmp_path, upto):
    if upto is None:
        pytest.fail("only one migration: nothing older to migrate from")
    path = tmp_path / "phlite.db"
    _old_data_dir(path, upto)
    store = Store(path)  # applies the remaining migrations
    try:
        with store.db.connection_context():
            assert store.project_for_token("phc_old") == 1
            assert store.count_events(1) == 3
            rows, _ = store.list_events(1, limit=10)
            assert [r["event"] for r in rows] == ["e2", "e1", "e0"]
            assert store.spool_position() == ((3, 77), 0)
            # and the new tables work on the old data
            assert store.get_person_by_distinct_id(1, "user-1") is None
        # the hourly roll-up (m0011, rebuilt by m0014), when it came after them, has the events already stored:
        # filled by the migration, or (from before the materialized columns, m0006) by the recount of the hours
        # the migration marked
        with store.db.connection_context(), store.transaction():
            store.refresh_rollups(1_800_000_000_000, local_day)
        con = sqlite3.connect(path)
        assert upto >= 14 or con.execute("SELECT project_id, event, hour, distinct_id, browser, os, device_type, n"
                                         " FROM event_hour ORDER BY event").fetchall() \
            == [(1, f"e{i}", 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000, "user-1", b"", b"", b"", 1)
                for i in range(3)]
        con.close()
    finally:
        store.close()
    assert schema(path) == PINNED.read_text()


def test_distinct_ids_left_without_a_person_get_one(tmp_path):
    """m0012: ids an older writer left pointing at a person it never wrote (a stored person merged through
    a person new in the same batch) become one person per missing id."""
    path = tmp_path / "phlite.db"
    _old_data_dir(path, 11)
    con = sqlite3.connect(path)
    with con:
        con.execute("INSERT INTO person (id, project_id, uuid, properties, created_at, is_identified)"
                    " VALUES (5, 1, 'kept', '{\"a\": 1}', 1, 1)")
        con.executemany("INSERT INTO person_distinct_id (project_id, distinct_id, person_id) VALUES (1, ?, ?)",
                        [("kept-id", 5), ("user-1", 9), ("other", 9), ("lone", 12)])
    con.close()
    store = Store(path)
    try:
        with store.db.connection_context():
            nine = store.get_person_by_distinct_id(1, "user-1")
            assert nine["id"] == 9 and store.get_person_by_distinct_id(1, "other")["id"] == 9
            assert nine["properties"] == {} and nine["is_identified"]
            assert nine["created_at"] == 1_700_000_000_000  # user-1's first event
            assert store.get_person_by_distinct_id(1, "lone")["id"] == 12
            assert store.get_person_by_distinct_id(1, "kept-id")["properties"] == {"a": 1}
            uuids = [r[0] for r in store.db.execute_sql("SELECT uuid FROM person WHERE id IN (9, 12)")]
            assert len({str(uuid.UUID(u)) for u in uuids}) == 2
    finally:
        store.close()


@pytest.mark.parametrize("upto", [5, 12])
def test_the_session_roll_up_is_filled_from_the_events_stored_before(tmp_path, upto):
    """m0013: on a data dir whose `mp_session_id` column is complete (12) `session_hour` is filled at once; on
    one from before the column (5, filled after the migrations) every hour is marked for the recount."""
    path = tmp_path / "phlite.db"
    _old_data_dir(path, upto)
    con = sqlite3.connect(path)
    with con:
        for i, (event, session) in enumerate([("$pageview", "s1"), ("$autocapture", "s1"), ("$pageview", "s2"),
                                              ("$pageview", None)]):
            props = json.dumps({"$session_id": session} if session else {})
            con.execute("INSERT INTO event (project_id, uuid, event, distinct_id, properties, timestamp, created_at"
                        + (", mp_session_id" if upto >= 6 else "") + ") VALUES (1, ?, ?, ?, ?, ?, 0"
                        + (", ?" if upto >= 6 else "") + ")",
                        (bytes([9, i]) * 8, event, f"d{i}", props, 1_700_000_000_000 + i * 1000)
                        + ((session,) if upto >= 6 else ()))
    con.close()
    hour = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
    want = [(1, hour, "s1", 1_700_000_000_000, 1_700_000_001_000, 1, 1, "d0"),
            (1, hour, "s2", 1_700_000_002_000, 1_700_000_002_000, 1, 0, "d2")]
    store = Store(path)
    try:
        with store.db.connection_context():
            rows = store.db.execute_sql("SELECT * FROM session_hour ORDER BY session_id").fetchall()
            dirty = store.db.execute_sql("SELECT project_id, hour FROM rollup_dirty").fetchall()
            if upto >= 6:
                assert [tuple(r) for r in rows] == want and dirty == []
            else:
                assert rows == [] and [tuple(r) for r in dirty] == [(1, hour)]
                with store.transaction():
                    assert store.refresh_rollups(hour + 2 * 3_600_000, local_day) >= 1
                rows = store.db.execute_sql("SELECT * FROM session_hour ORDER BY session_id").fetchall()
                assert [tuple(r) for r in rows] == want
    finally:
        store.close()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Store(Path(d) / "phlite.db").close()
        PINNED.write_text(schema(Path(d) / "phlite.db"))
    print(f"wrote {PINNED}")
