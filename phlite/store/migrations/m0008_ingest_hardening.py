"""Ingestion hardening: progress inside a spool record, and the quarantine of events that could not be
stored.

`spool_state.done_events`: how many events of the record after (segment, offset) are already stored, so a
record split over several group commits resumes where it stopped after a crash (docs/reliability.md
"Poison records"). `ingest_quarantine`: events the writer could not store, each with its reason, bounded
by the writer (docs/reliability.md "One bad value").
"""

VERSION = 8

STATEMENTS = [
    "ALTER TABLE spool_state ADD COLUMN done_events INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE ingest_quarantine (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        quarantined_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        event TEXT NOT NULL
    )""",
    "CREATE INDEX ingest_quarantine_project ON ingest_quarantine (project_id, id)",
]
