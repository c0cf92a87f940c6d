"""Persons, their distinct ids, group types and groups, and flag hash-key overrides
(experience continuity; they belong to a person and move with it on merge)."""

VERSION = 2

STATEMENTS = [
    """CREATE TABLE person (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        uuid TEXT NOT NULL UNIQUE,
        properties TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        is_identified INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX person_project ON person (project_id, id)",
    """CREATE TABLE person_distinct_id (
        project_id INTEGER NOT NULL,
        distinct_id TEXT NOT NULL,
        person_id INTEGER NOT NULL,
        PRIMARY KEY (project_id, distinct_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX person_distinct_id_person ON person_distinct_id (person_id)",
    """CREATE TABLE group_type (
        project_id INTEGER NOT NULL,
        group_type_index INTEGER NOT NULL,
        group_type TEXT NOT NULL,
        PRIMARY KEY (project_id, group_type_index),
        UNIQUE (project_id, group_type)
    )""",
    """CREATE TABLE group_ (
        project_id INTEGER NOT NULL,
        group_type_index INTEGER NOT NULL,
        group_key TEXT NOT NULL,
        properties TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        PRIMARY KEY (project_id, group_type_index, group_key)
    )""",
    """CREATE TABLE flag_hash_key_override (
        project_id INTEGER NOT NULL,
        person_id INTEGER NOT NULL,
        flag_key TEXT NOT NULL,
        hash_key TEXT NOT NULL,
        PRIMARY KEY (project_id, person_id, flag_key)
    )""",
]
