"""The hourly roll-ups `event_hour` (migration m0011) and `session_hour` (m0013; docs/insights.md "Roll-ups"):
the writer marks the hours it stores events into, a background pass recounts marked hours once they are
over, and queries read a marked hour from the events."""

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
STEP = 32  # marked hours read per statement of a pass


class RollupsMixin:
    def mark_rollup_hours(self, conn, rows):
        """In the transaction inserting `rows` (event_rows): the (project, UTC hour) of each is marked.
        Python's % floors, as the SQL hour expression does for times before 1970."""
        hours = {(r[0], r[5] - r[5] % HOUR_MS) for r in rows}
        conn.executemany("INSERT OR IGNORE INTO rollup_dirty (project_id, hour) VALUES (?, ?)", hours)

    def refresh_rollups(self, now_ms, budget_s=0.05, monotonic=time.monotonic):
        """Recount marked hours that ended by `now_ms`, oldest first, in the caller's write transaction,
        until `budget_s` has passed; returns how many were recounted (0: none was due)."""
        conn = self.db.connection()
        deadline = monotonic() + budget_s
        done = 0
        while True:
            due = conn.execute("SELECT project_id, hour FROM rollup_dirty WHERE hour <= ? ORDER BY hour LIMIT ?",
                               (now_ms - HOUR_MS, STEP)).fetchall()
            for project_id, hour in due:
                conn.execute(_RECOUNT, (hour, project_id, hour, hour + HOUR_MS))
                conn.execute("DELETE FROM session_hour WHERE project_id = ? AND hour = ?", (project_id, hour))
                conn.execute(_SESSION_RECOUNT, (hour, project_id, hour, hour + HOUR_MS))
                conn.execute("DELETE FROM rollup_dirty WHERE project_id = ? AND hour = ?", (project_id, hour))
                done += 1
                if monotonic() >= deadline:
                    return done
            if len(due) < STEP:
                return done

    def rollups_due(self, now_ms):
        """Whether a marked hour has ended (a pass has work)."""
        return self.db.execute_sql("SELECT 1 FROM rollup_dirty WHERE hour <= ? LIMIT 1",
                                   (now_ms - HOUR_MS,)).fetchone() is not None

    def marked_rollup_hours(self, project_id, lo, hi, limit):
        """The project's marked hours overlapping [lo, hi] (epoch ms), at most `limit` + 1 of them."""
        rows = self.db.execute_sql(
            "SELECT hour FROM rollup_dirty WHERE project_id = ? AND hour >= ? AND hour <= ? ORDER BY hour LIMIT ?",
            (project_id, lo - lo % HOUR_MS, hi, limit + 1)).fetchall()
        return [h for (h,) in rows]
