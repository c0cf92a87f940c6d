"""Saved insights, dashboards and their tiles (docs/insights.md "Saved insights and dashboards").

`insight.query` is the query node JSON as the client sent it (an InsightVizNode, DataTableNode, ... wrapping a
query kind), run through the query API when a result is asked for. Deleting is soft (`deleted = 1`), as in
PostHog. A tile puts an insight (or a text) on a dashboard with its layouts. `insight_cache` keeps the last
results of an insight, keyed by the query they were computed from (a dashboard's filters make another
query), so a GET that asks for cached results answers without running the query.
"""

VERSION = 9

STATEMENTS = [
    """CREATE TABLE insight (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        short_id TEXT NOT NULL,
        name TEXT,
        description TEXT NOT NULL DEFAULT '',
        query TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        saved INTEGER NOT NULL DEFAULT 0,
        favorited INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        created_by_key INTEGER,
        created_by_user INTEGER,
        last_modified_at INTEGER NOT NULL,
        last_modified_by_key INTEGER,
        last_modified_by_user INTEGER,
        updated_at INTEGER NOT NULL
    )""",
    "CREATE UNIQUE INDEX insight_short_id ON insight (project_id, short_id)",
    "CREATE INDEX insight_modified ON insight (project_id, deleted, last_modified_at)",
    """CREATE TABLE dashboard (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        name TEXT,
        description TEXT NOT NULL DEFAULT '',
        pinned INTEGER NOT NULL DEFAULT 0,
        filters TEXT NOT NULL DEFAULT '{}',
        tags TEXT NOT NULL DEFAULT '[]',
        creation_mode TEXT NOT NULL DEFAULT 'default',
        deleted INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        created_by_key INTEGER,
        created_by_user INTEGER,
        updated_at INTEGER NOT NULL
    )""",
    "CREATE INDEX dashboard_project ON dashboard (project_id, deleted, id)",
    """CREATE TABLE dashboard_tile (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        dashboard_id INTEGER NOT NULL,
        insight_id INTEGER,
        text TEXT,
        layouts TEXT NOT NULL DEFAULT '{}',
        color TEXT,
        deleted INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    )""",
    "CREATE INDEX dashboard_tile_dashboard ON dashboard_tile (dashboard_id, id)",
    "CREATE INDEX dashboard_tile_insight ON dashboard_tile (insight_id)",
    """CREATE TABLE insight_cache (
        insight_id INTEGER NOT NULL,
        query_key TEXT NOT NULL,
        project_id INTEGER NOT NULL,
        response TEXT NOT NULL,
        computed_at INTEGER NOT NULL,
        PRIMARY KEY (insight_id, query_key)
    )""",
]
