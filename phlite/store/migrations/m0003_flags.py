"""Feature flags, cohorts, static cohort members and the activity log of their changes.

A flag's key is unique among the project's non-deleted flags (deleted rows keep theirs, so
a key can be reused after a delete). Static cohort members are stored by distinct id, not by
person, so a person merge moves nothing: membership is read through the person's distinct ids.
"""

VERSION = 3

STATEMENTS = [
    # filters is the flag's JSON as the API takes it (docs/flags-protocol.md "Flags: definition format"); evaluation_tags a JSON list.
    """CREATE TABLE feature_flag (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        active INTEGER NOT NULL DEFAULT 1,
        deleted INTEGER NOT NULL DEFAULT 0,
        filters TEXT NOT NULL DEFAULT '{}',
        ensure_experience_continuity INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 1,
        evaluation_runtime TEXT NOT NULL DEFAULT 'all',
        evaluation_tags TEXT NOT NULL DEFAULT '[]',
        bucketing_identifier TEXT,
        is_remote_configuration INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        created_by INTEGER,
        last_modified_by INTEGER
    )""",
    "CREATE UNIQUE INDEX feature_flag_key ON feature_flag (project_id, key) WHERE deleted = 0",
    "CREATE INDEX feature_flag_project ON feature_flag (project_id, id)",
    # filters is {"properties": {"type": "OR"|"AND", "values": [...]}} for dynamic cohorts.
    """CREATE TABLE cohort (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        filters TEXT NOT NULL DEFAULT '{}',
        is_static INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        created_by INTEGER,
        last_modified_by INTEGER
    )""",
    "CREATE INDEX cohort_project ON cohort (project_id, id)",
    """CREATE TABLE cohort_static_member (
        project_id INTEGER NOT NULL,
        cohort_id INTEGER NOT NULL,
        distinct_id TEXT NOT NULL,
        PRIMARY KEY (cohort_id, distinct_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX cohort_static_member_distinct_id ON cohort_static_member (project_id, distinct_id)",
    # One row per change of a flag or cohort: who (personal key id), when, the whole object
    # before and after (JSON; before is NULL on creation).
    """CREATE TABLE activity_log (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        scope TEXT NOT NULL,
        item_id INTEGER NOT NULL,
        activity TEXT NOT NULL,
        key_id INTEGER,
        created_at INTEGER NOT NULL,
        before TEXT,
        after TEXT
    )""",
    "CREATE INDEX activity_log_item ON activity_log (project_id, scope, item_id, id)",
]
