"""Reading less for insights (docs/insights.md "Roll-ups" and "Fast on SQLite").

`event_hour`: one row per project, event, UTC hour and distinct id, with how many of those events are
stored. It is recounted from the events an hour at a time, off the write path: the writer only marks the
hours it wrote into in `rollup_dirty` (a handful of rows per group commit), and a background pass
recounts the marked hours once they are over (Store.refresh_rollups). Until then queries read a marked
hour from the events. A delete keeps it exact at once: the trigger fires for every deleted event
(person deletion, retention, the deletion jobs, project deletion), whatever code ran it.

`event_facts` replaces `event_time` (its first two columns are the same): the time-ordered index also
holds the event, the distinct id and the default materialized columns, so a scan over a time range that
reads only those (a breakdown, a funnel, web analytics) reads the index (~150 bytes an event) instead of
every row (~1.2 KB with its properties).
"""

VERSION = 11

HOUR_MS = 3_600_000
_OLD_HOUR = f"(OLD.timestamp - ((OLD.timestamp % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS})"
_KEY_OLD = f"project_id = OLD.project_id AND event = OLD.event AND hour = {_OLD_HOUR} AND distinct_id = OLD.distinct_id"

STATEMENTS = [
    """CREATE TABLE event_hour (
        project_id INTEGER NOT NULL,
        event TEXT NOT NULL,
        hour INTEGER NOT NULL,
        distinct_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project_id, event, hour, distinct_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE rollup_dirty (
        project_id INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        PRIMARY KEY (project_id, hour)
    ) WITHOUT ROWID""",
    "INSERT INTO event_hour (project_id, event, hour, distinct_id, n)"
    f" SELECT project_id, event, timestamp - ((timestamp % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS} AS h, distinct_id,"
    " count(*) FROM event GROUP BY project_id, event, h, distinct_id",
    # A row whose events are all gone reaches n <= 0 and goes, even in a marked hour (whose count may
    # not include its newest events yet): the recount then sets every remaining key exactly.
    f"""CREATE TRIGGER event_hour_delete AFTER DELETE ON event BEGIN
        UPDATE event_hour SET n = n - 1 WHERE {_KEY_OLD};
        DELETE FROM event_hour WHERE {_KEY_OLD} AND n <= 0;
    END""",
    "DROP INDEX event_time",
    "CREATE INDEX event_facts ON event (project_id, timestamp, event, distinct_id, mp_session_id, mp_pathname,"
    " mp_host, mp_browser, mp_os, mp_device_type, mp_referring_domain, mp_utm_source, mp_utm_medium,"
    " mp_utm_campaign, mp_utm_content, mp_utm_term)",
]
