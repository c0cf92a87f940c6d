"""Forwarding: each project's destination and its outbox (docs/lifecycle.md "Forwarding").

The outbox is filled by `insert_event_rows` (phlite/store/events.py) in the writer's own transaction,
so an event is queued exactly when it is stored; the forwarder thread reads it in event-id order and
deletes what the destination acknowledged. Only this module and events.py touch these tables.
"""

import time

from phlite.store.events import _uuid_text

_DEST_COLUMNS = ("project_id, host, project_api_key, backfill_after, backfill_until, sent, dropped, failures,"
                 " last_error, last_error_at, last_sent_at, created_at, updated_at")
_DEST_KEYS = [c.strip() for c in _DEST_COLUMNS.split(",")]


def _now_ms():
    return int(time.time() * 1000)


class ForwardingMixin:
    # --- the writer's side (called inside its transaction) ---------------------------

    def _outbox_mark(self, conn, rows):
        """Before inserting `rows`: (project ids among them that forward, the highest event id now), or None.
        One indexed read of a tiny table per group commit; reading it here rather than caching it means
        a destination set by another process (`python app.py forward set`) applies from the next commit."""
        forwarding = {r[0] for r in conn.execute("SELECT project_id FROM forward_destination")}
        if not forwarding:
            return None
        wanted = forwarding & {r[0] for r in rows}
        if not wanted:
            return None
        return sorted(wanted), conn.execute("SELECT max(id) FROM event").fetchone()[0] or 0

    def _outbox_fill(self, conn, mark):
        """After the insert: queue the rows it added (ids above the mark; only the writer inserts events)."""
        projects, top = mark
        conn.execute(
            "INSERT OR IGNORE INTO forward_outbox (project_id, event_id, queued_at)"
            f" SELECT project_id, id, created_at FROM event WHERE id > ? AND project_id IN ({', '.join('?' * len(projects))})",
            (top, *projects))

    # --- settings ---------------------------------------------------------------

    def forward_destinations(self, project_id=None):
        """[{project_id, host, project_api_key, backfill_after, backfill_until, sent, dropped, failures,
        last_error, last_error_at, last_sent_at, created_at, updated_at}], by project."""
        sql = f"SELECT {_DEST_COLUMNS} FROM forward_destination"
        params = ()
        if project_id is not None:
            sql += " WHERE project_id = ?"
            params = (project_id,)
        rows = self.db.execute_sql(sql + " ORDER BY project_id", params).fetchall()
        return [dict(zip(_DEST_KEYS, r)) for r in rows]

    def set_forwarding(self, project_id, host, project_api_key, *, backfill_after=None):
        """Forward the project's events to (host, key) from the next stored event on. `backfill_after`
        (an event id, 0 for all) also sends the project's stored events after it first, in stored order;
        the outbox is then covered by that range and emptied. Changing host or key keeps what waits."""
        now = _now_ms()
        with self.transaction():
            top = self.db.execute_sql("SELECT max(id) FROM event").fetchone()[0] or 0
            exists = self.db.execute_sql("SELECT 1 FROM forward_destination WHERE project_id = ?",
                                         (project_id,)).fetchone()
            if exists:
                self.db.execute_sql("UPDATE forward_destination SET host = ?, project_api_key = ?, updated_at = ?"
                                    " WHERE project_id = ?", (host, project_api_key, now, project_id))
            else:
                self.db.execute_sql(
                    "INSERT INTO forward_destination (project_id, host, project_api_key, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)", (project_id, host, project_api_key, now, now))
            if backfill_after is not None:
                after = min(int(backfill_after), top)
                self.db.execute_sql("DELETE FROM forward_outbox WHERE project_id = ?", (project_id,))
                self.db.execute_sql("UPDATE forward_destination SET backfill_after = ?, backfill_until = ?"
                                    " WHERE project_id = ?", (after, top, project_id) if after < top
                                    else (None, None, project_id))
        return self.forward_destinations(project_id)[0]

    def stop_forwarding(self, project_id):
        """Forget the destination and what waits for it; False if the project was not forwarding."""
        with self.transaction():
            cur = self.db.execute_sql("DELETE FROM forward_destination WHERE project_id = ?", (project_id,))
            self.db.execute_sql("DELETE FROM forward_outbox WHERE project_id = ?", (project_id,))
        return cur.rowcount > 0

    # --- the forwarder's side ----------------------------------------------------

    def forward_batch(self, dest, limit, max_bytes):
        """The next events to send for a destination row: ("backfill" | "outbox", [(event id, uuid text or
        None when the event was deleted since, event, distinct_id, properties JSON text, timestamp ms)]):
        at most `limit` rows, and no more once their properties reach `max_bytes` (so memory is bounded
        by bytes, however large the events)."""
        pid = dest["project_id"]
        if dest["backfill_until"] is not None:
            rows = self._rows_up_to(
                "SELECT id, uuid, event, distinct_id, properties, timestamp FROM event"
                " WHERE project_id = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
                (pid, dest["backfill_after"], dest["backfill_until"], limit), max_bytes)
            if rows:
                return "backfill", rows
            # Nothing left in the range (its events deleted since): the backfill is over.
            self.forward_ack(pid, "backfill", dest["backfill_until"], 0, 0, _now_ms())
        return "outbox", self._rows_up_to(
            "SELECT o.event_id, e.uuid, e.event, e.distinct_id, e.properties, e.timestamp FROM forward_outbox o"
            " LEFT JOIN event e ON e.id = o.event_id AND e.project_id = o.project_id"
            " WHERE o.project_id = ? ORDER BY o.event_id LIMIT ?", (pid, limit), max_bytes)

    def _rows_up_to(self, sql, params, max_bytes):
        cursor = self.db.execute_sql(sql, params)
        out, size = [], 0
        try:
            for r in cursor:  # stepped one row at a time: rows past the byte budget are never read
                out.append((r[0], None if r[1] is None else _uuid_text(r[1]), *r[2:]))
                size += len(r[4] or "") + 200
                if size >= max_bytes:
                    break
        finally:
            cursor.close()  # ends the read at once, so it never holds back a WAL checkpoint
        return out

    def forward_ack(self, project_id, phase, last_event_id, sent, dropped, now_ms):
        """The destination acknowledged `phase`'s events up to `last_event_id`: forget them."""
        with self.transaction():
            if phase == "backfill":
                self.db.execute_sql(
                    "UPDATE forward_destination SET backfill_after = CASE WHEN ? >= backfill_until THEN NULL"
                    " ELSE ? END, backfill_until = CASE WHEN ? >= backfill_until THEN NULL ELSE backfill_until END"
                    " WHERE project_id = ?", (last_event_id, last_event_id, last_event_id, project_id))
            else:
                self.db.execute_sql("DELETE FROM forward_outbox WHERE project_id = ? AND event_id <= ?",
                                    (project_id, last_event_id))
            self.db.execute_sql("UPDATE forward_destination SET sent = sent + ?, dropped = dropped + ?,"
                                " last_sent_at = ? WHERE project_id = ?", (sent, dropped, now_ms, project_id))

    def forward_failed(self, project_id, error, now_ms):
        with self.transaction():
            self.db.execute_sql("UPDATE forward_destination SET failures = failures + 1, last_error = ?,"
                                " last_error_at = ? WHERE project_id = ?", (error[:1000], now_ms, project_id))

    def forward_waiting(self, dest):
        """(events waiting, stored time in ms of the oldest of them or None). The backfill part counts
        event ids in its range: exact with one project, an upper bound when projects share the database."""
        pid = dest["project_id"]
        waiting = self.db.execute_sql("SELECT count(*) FROM forward_outbox WHERE project_id = ?",
                                      (pid,)).fetchone()[0]
        oldest = self.db.execute_sql("SELECT queued_at FROM forward_outbox WHERE project_id = ?"
                                     " ORDER BY event_id LIMIT 1", (pid,)).fetchone()
        oldest = oldest and oldest[0]
        if dest["backfill_until"] is not None:
            waiting += dest["backfill_until"] - dest["backfill_after"]
            first = self.db.execute_sql("SELECT created_at FROM event WHERE project_id = ? AND id > ? AND id <= ?"
                                        " ORDER BY id LIMIT 1", (pid, dest["backfill_after"],
                                                                 dest["backfill_until"])).fetchone()
            if first:
                oldest = first[0] if oldest is None else min(oldest, first[0])
        return waiting, oldest
