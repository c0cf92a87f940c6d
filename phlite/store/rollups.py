"""The hourly roll-ups `event_hour` (migration m0011) and `session_hour` (m0013), and the daily `actor_day`
(m0015; docs/insights.md "Roll-ups"): the writer marks the hours it stores events into, a background pass
recounts marked hours once they are over and marks their days, recounts marked days once they are over,
and queries read a marked hour from the events and a marked day from the hourly roll-up."""

import time

HOUR_MS = 3_600_000
# Each key of a marked hour is counted again (x'': phlite/store/migrations/m0014_event_hour_dims.py). A key
# whose events are all deleted was removed by the delete trigger.
_RECOUNT = (
    "INSERT OR REPLACE INTO event_hour (project_id, event, hour, distinct_id, browser, os, device_type, n)"
    " SELECT project_id, event, ?, distinct_id, coalesce(mp_browser, x''), coalesce(mp_os, x''),"
    " coalesce(mp_device_type, x''), count(*) FROM event"
    " WHERE project_id = ? AND timestamp >= ? AND timestamp < ?"
    " GROUP BY event, distinct_id, coalesce(mp_browser, x''), coalesce(mp_os, x''), coalesce(mp_device_type, x'')"
)
# A (session, hour)'s row: see phlite/store/migrations/m0013_session_hour.py.
_SESSION_RECOUNT = (
    "INSERT INTO session_hour (project_id, hour, session_id, first, last, views, autocaptures, visitor)"
    " SELECT project_id, ?, mp_session_id, min(timestamp), max(timestamp), sum(event IN ('$pageview', '$screen')),"
    " sum(event = '$autocapture'), min(CASE WHEN event IN ('$pageview', '$screen') THEN distinct_id END)"
    " FROM event WHERE project_id = ? AND timestamp >= ? AND timestamp < ? AND mp_session_id IS NOT NULL"
    " GROUP BY mp_session_id"
)
# A day's persons after merges, per event (m0015): its key is the day's start in the project's zone.
_DAY_RECOUNT = (
    "INSERT INTO actor_day (project_id, day, event, actor, n)"
    " SELECT e.project_id, ?, e.event, coalesce(pdi.person_id, e.distinct_id) AS a, count(*) FROM event e"
    " LEFT JOIN person_distinct_id pdi ON pdi.project_id = e.project_id AND pdi.distinct_id = e.distinct_id"
    " WHERE e.project_id = ? AND e.timestamp >= ? AND e.timestamp < ? GROUP BY e.event, a"
)
# A day's rows go event by event: the key starts with the event, so the project's event names are found
# by seeking from one to the next (a loose index scan) rather than by reading every row of the project.
_DAY_DELETE = (
    "WITH RECURSIVE names(e) AS (SELECT min(event) FROM actor_day WHERE project_id = ?"
    " UNION ALL SELECT (SELECT min(event) FROM actor_day WHERE project_id = ? AND event > names.e) FROM names"
    " WHERE names.e IS NOT NULL)"
    " DELETE FROM actor_day WHERE project_id = ? AND event IN (SELECT e FROM names) AND day = ?"
)
# Live projects whose days were cut in another zone than theirs (or not yet): rebuilt by the pass.
_ZONE_STALE = ("SELECT p.id, p.timezone FROM project p LEFT JOIN actor_day_zone z ON z.project_id = p.id"
               " WHERE p.deleted_at IS NULL AND z.timezone IS NOT p.timezone")
STEP = 32  # marked hours read per statement of a pass


class RollupsMixin:
    def mark_rollup_hours(self, conn, rows):
        """In the transaction inserting `rows` (event_rows): the (project, UTC hour) of each is marked.
        Python's % floors, as the SQL hour expression does for times before 1970."""
        hours = {(r[0], r[5] - r[5] % HOUR_MS) for r in rows}
        conn.executemany("INSERT OR IGNORE INTO rollup_dirty (project_id, hour) VALUES (?, ?)", hours)

    def refresh_rollups(self, now_ms, local_day, budget_s=0.05, monotonic=time.monotonic):
        """Recount marked hours that ended by `now_ms`, oldest first, then marked days that ended, in the
        caller's write transaction, until `budget_s` has passed; returns how many were recounted (0: none
        was due). `local_day(ms, tz)` -> (start, end) ms of the day holding `ms` in zone `tz`."""
        conn = self.db.connection()
        deadline = monotonic() + budget_s
        zones = {}

        def mark_days(project_id, hour):
            if project_id not in zones:
                row = conn.execute("SELECT timezone FROM project WHERE id = ? AND deleted_at IS NULL",
                                   (project_id,)).fetchone()
                zones[project_id] = row[0] if row else None
            tz = zones[project_id]
            if tz is not None:  # an hour can straddle two days in a zone offset by a half hour
                days = {local_day(hour, tz), local_day(hour + HOUR_MS - 1, tz)}
                conn.executemany("INSERT OR IGNORE INTO day_dirty (project_id, day, day_end) VALUES (?, ?, ?)",
                                 [(project_id, d, e) for d, e in days])

        done = 0
        for project_id, tz in conn.execute(_ZONE_STALE).fetchall():
            self._recut_days(conn, project_id, tz, local_day)
            done += 1
        while True:
            due = conn.execute("SELECT project_id, hour FROM rollup_dirty WHERE hour <= ? ORDER BY hour LIMIT ?",
                               (now_ms - HOUR_MS, STEP)).fetchall()
            for project_id, hour in due:
                conn.execute(_RECOUNT, (hour, project_id, hour, hour + HOUR_MS))
                conn.execute("DELETE FROM session_hour WHERE project_id = ? AND hour = ?", (project_id, hour))
                conn.execute(_SESSION_RECOUNT, (hour, project_id, hour, hour + HOUR_MS))
                conn.execute("DELETE FROM rollup_dirty WHERE project_id = ? AND hour = ?", (project_id, hour))
                mark_days(project_id, hour)
                done += 1
                if monotonic() >= deadline:
                    return done
            if len(due) < STEP:
                break
        days = conn.execute("SELECT project_id, day, day_end FROM day_dirty WHERE day_end <= ? ORDER BY day LIMIT ?",
                            (now_ms, STEP)).fetchall()
        for project_id, day, day_end in days:
            if conn.execute("SELECT 1 FROM rollup_dirty WHERE project_id = ? AND hour >= ? AND hour < ? LIMIT 1",
                            (project_id, day - day % HOUR_MS, day_end)).fetchone():
                continue  # an hour of it waits for its recount, which marks the day again
            conn.execute(_DAY_DELETE, (project_id, project_id, project_id, day))
            conn.execute(_DAY_RECOUNT, (day, project_id, day, day_end))
            conn.execute("DELETE FROM day_dirty WHERE project_id = ? AND day = ?", (project_id, day))
            done += 1
            if monotonic() >= deadline:
                break
        return done

    def _recut_days(self, conn, project_id, tz, local_day):
        """The project's days cut again in zone `tz`: its daily roll-up emptied and every day from its first
        event to its last marked for the pass."""
        conn.execute("DELETE FROM actor_day WHERE project_id = ?", (project_id,))
        conn.execute("DELETE FROM day_dirty WHERE project_id = ?", (project_id,))
        conn.execute("INSERT OR REPLACE INTO actor_day_zone (project_id, timezone) VALUES (?, ?)", (project_id, tz))
        lo, hi = conn.execute("SELECT min(timestamp), max(timestamp) FROM event WHERE project_id = ?",
                              (project_id,)).fetchone()
        days = []
        while lo is not None and lo <= hi:
            day, end = local_day(lo, tz)
            days.append((project_id, day, end))
            lo = end
        conn.executemany("INSERT OR IGNORE INTO day_dirty (project_id, day, day_end) VALUES (?, ?, ?)", days)

    def rollups_due(self, now_ms):
        """Whether a marked hour or day has ended, or a project's days need cutting (a pass has work)."""
        return self.db.execute_sql(
            "SELECT 1 FROM rollup_dirty WHERE hour <= ? UNION ALL SELECT 1 FROM day_dirty WHERE day_end <= ?"
            f" UNION ALL SELECT 1 FROM ({_ZONE_STALE}) LIMIT 1", (now_ms - HOUR_MS, now_ms)).fetchone() is not None

    def marked_rollup_hours(self, project_id, lo, hi, limit):
        """The project's marked hours overlapping [lo, hi] (epoch ms), at most `limit` + 1 of them."""
        rows = self.db.execute_sql(
            "SELECT hour FROM rollup_dirty WHERE project_id = ? AND hour >= ? AND hour <= ? ORDER BY hour LIMIT ?",
            (project_id, lo - lo % HOUR_MS, hi, limit + 1)).fetchall()
        return [h for (h,) in rows]

    def rollup_days(self, project_id, lo, hi, limit):
        """(zone, marked days): the zone the project's daily roll-up was cut in (None: not yet), and its
        marked days overlapping [lo, hi] (epoch ms) as (start, end), at most `limit` + 1 of them."""
        zone = self.db.execute_sql("SELECT timezone FROM actor_day_zone WHERE project_id = ?",
                                   (project_id,)).fetchone()
        rows = self.db.execute_sql(
            "SELECT day, day_end FROM day_dirty WHERE project_id = ? AND day_end > ? AND day <= ? ORDER BY day"
            " LIMIT ?", (project_id, lo, hi, limit + 1)).fetchall()
        return (zone[0] if zone else None), [tuple(r) for r in rows]
