"""Events: the bulk insert used by the writer's group commit, the list API's query, and
the spool position recorded in the same transaction as the events it produced."""

import orjson

from phlite.store.event_filters import property_condition
from phlite.store.materialized import values as materialized_values

# The insert without materialized columns (bench/writer_micro.py's ceiling); the writer's adds them
# (MaterializedMixin.materialized_columns).
INSERT_EVENT = (
    "INSERT OR IGNORE INTO event"
    " (project_id, uuid, event, distinct_id, properties, timestamp, created_at, person_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# The quarantine keeps this many events (the newest), whatever their size: each is one spooled
# event, bounded by the request limits (README "Keys, limits and failures").
QUARANTINE_ROWS = 10_000


def _uuid_text(raw):
    """16 stored bytes as the canonical uuid string: str(uuid.UUID(bytes=raw)) at a third of
    its cost, once per row of an events list."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def event_rows(project_id, events, created_at, materialized=()):
    """The insert parameters of each normalised event (the writer builds one per stored event), then
    the value of each materialized property (`materialized`: Store.materialized_columns()).
    ev.uuid is canonical (normalize.py): bytes.fromhex is 4x cheaper than uuid.UUID(...).bytes."""
    dumps, option, fromhex = orjson.dumps, orjson.OPT_NON_STR_KEYS, bytes.fromhex
    rows = [
        (project_id, fromhex(ev.uuid.replace("-", "")), ev.event, ev.distinct_id, dumps(ev.properties, option=option),
         ev.timestamp, created_at, getattr(ev, "person_id", None))
        for ev in events
    ]
    if materialized:
        keys = [p for p, _c in materialized]
        for i, ev in enumerate(events):
            vals = materialized_values(ev.properties, keys)
            if vals is not None:  # else the row stays short: its columns are NULL by default
                rows[i] += vals
    return rows


class EventsMixin:
    def insert_events(self, project_id, events, created_at):
        """Insert normalised events in the caller's transaction, with their materialized columns;
        duplicates by (project, uuid) are ignored. Returns how many were new."""
        return self.insert_event_rows(event_rows(project_id, events, created_at, self.materialized_columns()))

    def insert_event_rows(self, rows):
        """Insert rows (from `event_rows` with this store's `materialized_columns()`, read in the same
        transaction) in the caller's transaction; duplicates by (project, uuid) are ignored. Returns
        how many were new.

        peewee's insert_many is ~6x slower than the driver's executemany (docs/design.md "SQLite inserts").
        New rows of a forwarding project are queued in its outbox in the same transaction
        (phlite/store/forwarding.py)."""
        conn = self.db.connection()
        mark = self._outbox_mark(conn, rows)
        added = 0
        full = self._event_insert_sql()
        # Events without any materialized property (server-side ones) skip binding a dozen NULLs: that
        # was a tenth of their insert. Runs of each kind keep the rows in order.
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or len(rows[i]) != len(rows[start]):
                # rowcount, not total_changes: other rows written alongside are not events.
                added += conn.executemany(INSERT_EVENT if len(rows[start]) == 8 else full, rows[start:i]).rowcount
                start = i
        if added:
            self.mark_rollup_hours(conn, rows)  # the hours to recount (phlite/store/rollups.py)
        if mark is not None and added:
            self._outbox_fill(conn, mark)
        return added

    def spool_position(self):
        """((segment, offset) of the end of the last wholly stored record, events of the next one stored)."""
        row = self.db.execute_sql("SELECT segment, offset, done_events FROM spool_state WHERE id = 1").fetchone()
        return (row[0], row[1]), row[2]

    def set_spool_position(self, position, done_events=0):
        self.db.execute_sql("UPDATE spool_state SET segment = ?, offset = ?, done_events = ? WHERE id = 1",
                            (*position, done_events))

    def quarantine_event(self, project_id, received_at, now_ms, reason, event_json, keep=QUARANTINE_ROWS):
        """Keep an event the writer could not store, with why; only the newest `keep` rows are kept."""
        cur = self.db.execute_sql(
            "INSERT INTO ingest_quarantine (project_id, received_at, quarantined_at, reason, event)"
            " VALUES (?, ?, ?, ?, ?)", (project_id, received_at, now_ms, reason[:1000], event_json))
        if cur.lastrowid > keep:
            self.db.execute_sql("DELETE FROM ingest_quarantine WHERE id <= ?", (cur.lastrowid - keep,))

    def quarantined(self, project_id, limit=100):
        """The newest quarantined events of a project: [{"reason", "event" (as sent), "operations" (its
        Mixpanel operations or None), "received_at", "quarantined_at"}]."""
        rows = self.db.execute_sql(
            "SELECT reason, event, received_at, quarantined_at FROM ingest_quarantine WHERE project_id = ?"
            " ORDER BY id DESC LIMIT ?", (project_id, limit)).fetchall()
        out = []
        for reason, text, received_at, quarantined_at in rows:
            kept = orjson.loads(text)
            out.append({"reason": reason, "event": kept.get("event"), "operations": kept.get("operations"),
                        "received_at": received_at, "quarantined_at": quarantined_at})
        return out

    def list_events(self, project_id, *, event=None, distinct_ids=None, after=None, before=None,
                    cursor=None, limit=100, properties=None):
        """Newest first. `cursor` is (timestamp, id) of the last row of the previous page; `properties` is
        PostHog property filters (phlite/store/event_filters.py). Returns (rows, next_cursor or None);
        each row's properties is an orjson.Fragment."""
        where = ["project_id = ?"]
        params = [project_id]
        if properties:
            cond, extra = property_condition(properties)
            where.append(cond)
            params.extend(extra)
        if event is not None:
            where.append("event = ?")
            params.append(event)
        if distinct_ids is not None:
            if not distinct_ids:
                return [], None
            where.append(f"distinct_id IN ({', '.join('?' * len(distinct_ids))})")
            params.extend(distinct_ids)
        if after is not None:
            where.append("timestamp > ?")
            params.append(after)
        if before is not None:
            where.append("timestamp < ?")
            params.append(before)
        if cursor is not None:
            # the bare `<=` lets SQLite seek the time index to the cursor (an OR alone hides it)
            where.append("timestamp <= ? AND (timestamp < ? OR id < ?)")
            params.extend([cursor[0], cursor[0], cursor[1]])
        sql = (
            "SELECT id, uuid, event, distinct_id, properties, timestamp, created_at, person_id FROM event"
            f" WHERE {' AND '.join(where)} ORDER BY timestamp DESC, id DESC LIMIT ?"
        )
        params.append(limit + 1)
        rows = self.db.execute_sql(sql, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        out = [
            {
                "_id": r[0],
                "uuid": _uuid_text(r[1]),
                "event": r[2],
                "distinct_id": r[3],
                # Stored JSON text, passed through to the response unparsed (orjson.Fragment):
                # parsing and re-encoding 100 events' properties was most of a page read.
                "properties": orjson.Fragment(r[4]),
                "timestamp": r[5],
                "created_at": r[6],
                "person_id": r[7],
            }
            for r in rows
        ]
        next_cursor = (rows[-1][5], rows[-1][0]) if more else None
        return out, next_cursor

    def count_events(self, project_id=None):
        if project_id is None:
            return self.db.execute_sql("SELECT count(*) FROM event").fetchone()[0]
        return self.db.execute_sql("SELECT count(*) FROM event WHERE project_id = ?", (project_id,)).fetchone()[0]
