"""The web overview's roll-up (docs/insights.md "Roll-ups"): `session_hour`, one row per project, UTC hour
and `$session_id`, with what the overview reads of that session's events in that hour: the first and last
timestamp, how many pageviews and screens, how many `$autocapture`s, and the least distinct id among its
pageviews and screens. A session spread over several hours has a row in each; summing them gives what the
overview computes from the events of a window made of whole hours.

It is kept like `event_hour` (m0011): the writer marks the hours it stores into, the background pass
recounts a marked hour once it is over (the rows of the hour replaced), and queries read a marked hour from
the events. Deleting events marks their hour (trigger below): a first or last time cannot be decremented.

The rows come from the `mp_session_id` column. It is filled here from the events when that column is
complete; in a data dir from before m0006 its backfill runs after the migrations, so this marks every hour
for the background recount instead (queries read the events until then).
"""

VERSION = 13

HOUR_MS = 3_600_000
_HOUR = f"timestamp - ((timestamp % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS}"
_READY = ("EXISTS (SELECT 1 FROM materialized_property WHERE property = '$session_id'"
          " AND column_name = 'mp_session_id' AND todo_from > todo_to)")
# What one (session, hour) sums to; Store.refresh_rollups recounts with the same expressions (a migration
# stays as it shipped, so it keeps its own copy).
COLUMNS = ("min(timestamp), max(timestamp), sum(event IN ('$pageview', '$screen')), sum(event = '$autocapture'),"
           " min(CASE WHEN event IN ('$pageview', '$screen') THEN distinct_id END)")

STATEMENTS = [
    """CREATE TABLE session_hour (
        project_id INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        first INTEGER NOT NULL,
        last INTEGER NOT NULL,
        views INTEGER NOT NULL,
        autocaptures INTEGER NOT NULL,
        visitor TEXT,
        PRIMARY KEY (project_id, hour, session_id)
    ) WITHOUT ROWID""",
    "INSERT INTO session_hour (project_id, hour, session_id, first, last, views, autocaptures, visitor)"
    f" SELECT project_id, {_HOUR} AS h, mp_session_id, {COLUMNS} FROM event"
    f" WHERE mp_session_id IS NOT NULL AND {_READY} GROUP BY project_id, h, mp_session_id",
    "INSERT OR IGNORE INTO rollup_dirty (project_id, hour)"
    f" SELECT DISTINCT project_id, {_HOUR} FROM event WHERE NOT {_READY}",
    f"""CREATE TRIGGER session_hour_delete AFTER DELETE ON event WHEN OLD.mp_session_id IS NOT NULL BEGIN
        INSERT OR IGNORE INTO rollup_dirty (project_id, hour)
        VALUES (OLD.project_id, OLD.timestamp - ((OLD.timestamp % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS});
    END""",
]
