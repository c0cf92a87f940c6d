"""Projects, personal API keys, events and the spool position."""

VERSION = 1

STATEMENTS = [
    """CREATE TABLE project (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        api_token TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    )""",
    # Keys are stored as salted SHA-256; `lookup` (a non-secret slice of the key)
    # finds the row so the hash can be compared in constant time.
    """CREATE TABLE personal_key (
        id INTEGER PRIMARY KEY,
        label TEXT NOT NULL DEFAULT '',
        lookup TEXT NOT NULL,
        salt TEXT NOT NULL,
        hash TEXT NOT NULL,
        project_ids TEXT,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    )""",
    "CREATE INDEX personal_key_lookup ON personal_key (lookup)",
    # uuid is stored as 16 bytes; timestamps are UTC epoch milliseconds.
    """CREATE TABLE event (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        uuid BLOB NOT NULL,
        event TEXT NOT NULL,
        distinct_id TEXT NOT NULL,
        properties TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        person_id INTEGER
    )""",
    "CREATE UNIQUE INDEX event_uuid ON event (project_id, uuid)",
    "CREATE INDEX event_time ON event (project_id, timestamp)",
    "CREATE INDEX event_distinct_id ON event (project_id, distinct_id, timestamp)",
    "CREATE INDEX event_name ON event (project_id, event, timestamp)",
    """CREATE TABLE spool_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        segment INTEGER NOT NULL,
        offset INTEGER NOT NULL
    )""",
    "INSERT INTO spool_state (id, segment, offset) VALUES (1, 0, 0)",
]
