"""The daily roll-up of persons (docs/insights.md "Roll-ups"): `actor_day`, one row per project, day in
the project's zone, event name and person after merges (the distinct id of an event without a person),
with how many of those events are stored. A daily `dau` is then a count of rows and `total` a sum, with
no distinct count over the events or the hourly roll-up.

It is derived, off the write path, from what the hourly roll-ups already track: once the background pass
has recounted a marked hour it marks the hour's day in `day_dirty`, and recounts a marked day from the
events once the day is over. Queries read a marked day, and today, through the hourly roll-up instead.
What changes a day's persons without storing an event marks the hours of the events concerned in
`rollup_dirty` (triggers below): deleting an event, and any change of a distinct id's person (a new
mapping, a merge, a deleted person). `actor_day_zone` holds the zone the days were cut in; when the
project's zone changes the pass rebuilds them, and queries do not read them in between.

Nothing is counted here: with no `actor_day_zone` row, the pass builds each project's days after the
migrations, while queries read the hourly roll-up.
"""

VERSION = 15

HOUR_MS = 3_600_000


def _hours_of(row):
    """Marks the hours of `row`'s distinct id's events (row: NEW or OLD of person_distinct_id)."""
    return ("INSERT OR IGNORE INTO rollup_dirty (project_id, hour)"
            f" SELECT DISTINCT project_id, timestamp - ((timestamp % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS} FROM event"
            f" WHERE project_id = {row}.project_id AND distinct_id = {row}.distinct_id;")


STATEMENTS = [
    # `actor` has no declared type: a person's row id (integer) or a distinct id (text), kept as given.
    # Keyed by event first, as event_hour: a series reads one event's days, in day order.
    """CREATE TABLE actor_day (
        project_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        event TEXT NOT NULL,
        actor NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project_id, event, day, actor)
    ) WITHOUT ROWID""",
    """CREATE TABLE day_dirty (
        project_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        day_end INTEGER NOT NULL,
        PRIMARY KEY (project_id, day)
    ) WITHOUT ROWID""",
    """CREATE TABLE actor_day_zone (
        project_id INTEGER PRIMARY KEY,
        timezone TEXT NOT NULL
    )""",
    # session_hour's trigger (m0013) marks the hour of a deleted event with a session id; this the others.
    f"""CREATE TRIGGER actor_day_event_delete AFTER DELETE ON event WHEN OLD.mp_session_id IS NULL BEGIN
        INSERT OR IGNORE INTO rollup_dirty (project_id, hour)
        VALUES (OLD.project_id, OLD.timestamp - ((OLD.timestamp % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS});
    END""",
    f"""CREATE TRIGGER actor_day_pdi_insert AFTER INSERT ON person_distinct_id BEGIN
        {_hours_of("NEW")}
    END""",
    f"""CREATE TRIGGER actor_day_pdi_update AFTER UPDATE OF person_id ON person_distinct_id BEGIN
        {_hours_of("NEW")}
    END""",
    f"""CREATE TRIGGER actor_day_pdi_delete AFTER DELETE ON person_distinct_id BEGIN
        {_hours_of("OLD")}
    END""",
]
