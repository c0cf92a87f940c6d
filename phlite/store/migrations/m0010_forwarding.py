"""Forwarding (docs/lifecycle.md "Forwarding"): each project's destination, and the outbox of its events
waiting to be sent there.

`forward_destination`: one row per forwarding project (a PostHog host and that project's `phc_` key),
with what has been sent and the last failure, and an optional backfill range of already stored events
(`backfill_after` < event id <= `backfill_until`) that go before the outbox. `forward_outbox`: one small
row per stored event of a forwarding project, written in the transaction that stores the event and
deleted when the destination acknowledged it; ordered by event id, the order ingestion stored them.
"""

VERSION = 10

STATEMENTS = [
    """CREATE TABLE forward_destination (
        project_id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        project_api_key TEXT NOT NULL,
        backfill_after INTEGER,
        backfill_until INTEGER,
        sent INTEGER NOT NULL DEFAULT 0,
        dropped INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_error_at INTEGER,
        last_sent_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )""",
    """CREATE TABLE forward_outbox (
        project_id INTEGER NOT NULL,
        event_id INTEGER NOT NULL,
        queued_at INTEGER NOT NULL,
        PRIMARY KEY (project_id, event_id)
    ) WITHOUT ROWID""",
]
