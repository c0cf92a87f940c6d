"""Materialized property columns (docs/insights.md "Materialized columns"): the properties web analytics
and insights read most get their own column of `event`, filled by the writer; the registry
`materialized_property` says which column holds which property and how far the backfill of rows stored
before the column went (todo_from..todo_to, event ids; done when todo_from > todo_to). The backfill itself
runs after the migrations, in bounded batches (Store.backfill_materialized), so it is resumable.

`event_name` gains `distinct_id`: counting distinct users of an event over a time range then reads the
index alone, not every row.
"""

VERSION = 6

DEFAULTS = [
    ("$session_id", "mp_session_id"), ("$pathname", "mp_pathname"), ("$host", "mp_host"),
    ("$browser", "mp_browser"), ("$os", "mp_os"), ("$device_type", "mp_device_type"),
    ("$referring_domain", "mp_referring_domain"), ("utm_source", "mp_utm_source"),
    ("utm_medium", "mp_utm_medium"), ("utm_campaign", "mp_utm_campaign"), ("utm_content", "mp_utm_content"),
    ("utm_term", "mp_utm_term"),
]

STATEMENTS = [f"ALTER TABLE event ADD COLUMN {column} TEXT" for _prop, column in DEFAULTS] + [
    """CREATE TABLE materialized_property (
        property TEXT PRIMARY KEY,
        column_name TEXT NOT NULL UNIQUE,
        todo_from INTEGER NOT NULL,
        todo_to INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    )""",
] + [
    "INSERT INTO materialized_property (property, column_name, todo_from, todo_to, created_at)"
    f" SELECT '{prop}', '{column}', 1, coalesce(max(id), 0), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM event"
    for prop, column in DEFAULTS
] + [
    "DROP INDEX event_name",
    "CREATE INDEX event_name ON event (project_id, event, timestamp, distinct_id)",
]
