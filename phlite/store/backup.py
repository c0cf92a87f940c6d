"""An online copy of the database, and its verification (docs/reliability.md "Backup and restore").

SQLite's backup API copies every page inside one read transaction: in WAL mode the server keeps
writing meanwhile, and the copy is the database as of one commit (with the spool position of that
commit, so a restore replays the spool tail after it).
"""

import sqlite3
from pathlib import Path

# Counted by verify: what an operator checks a restore against.
_COUNTED = ("project", "event", "person", "group_", "feature_flag", "cohort", "personal_key")


def backup_database(src: Path, dest: Path) -> None:
    """Copy the live database `src` to a new file `dest`, consistently, while others write to `src`."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(str(dest))
        try:
            # pages=-1: all pages in one step, so one read transaction (one snapshot) covers the copy.
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            target.close()
    finally:
        source.close()


def verify_database(path: Path) -> dict:
    """{"integrity": "ok" or SQLite's findings, "counts": {table: rows}, "spool_position": [segment, offset]}."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _verify(db)
    except sqlite3.DatabaseError as e:  # not a database, or damaged past what integrity_check can report
        return {"integrity": [str(e)], "counts": {}, "spool_position": None}
    finally:
        db.close()


def _verify(db):
    findings = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _COUNTED if t in tables}
    position = None
    if "spool_state" in tables:
        row = db.execute("SELECT segment, offset FROM spool_state WHERE id = 1").fetchone()
        position = list(row) if row else None
    return {"integrity": "ok" if findings == ["ok"] else findings, "counts": counts, "spool_position": position}
