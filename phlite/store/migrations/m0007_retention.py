"""Retention and deletion (docs/lifecycle.md "Retention", "Deleting events", "Deleting a project").

`project.retention_days`: events older than this many days are deleted in the background (NULL: kept
forever). `project.deleted_at`: the project is being deleted; it is hidden at once and its rows go in
batches, the project row last. `deletion_job`: deletions of events by filter, each bounded by the newest
event id at the time it was asked for, so it deletes what its preview counted. `id_counter`: the highest
project id ever given, so a deleted project's id is never handed to a new project (caches and leftovers
keyed by it can never meet a stranger's data).
"""

VERSION = 7

STATEMENTS = [
    "ALTER TABLE project ADD COLUMN retention_days INTEGER",
    "ALTER TABLE project ADD COLUMN deleted_at INTEGER",
    """CREATE TABLE deletion_job (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        filter TEXT NOT NULL,
        max_event_id INTEGER NOT NULL,
        cursor INTEGER NOT NULL DEFAULT 0,
        expected INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
        error TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER
    )""",
    "CREATE INDEX deletion_job_project ON deletion_job (project_id, id)",
    "CREATE TABLE id_counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO id_counter (name, value) SELECT 'project', coalesce(max(id), 0) FROM project",
]
