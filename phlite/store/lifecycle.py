"""Reads for export and migration: every row of a project in a stable order, a page at a time.

Each call is one short read (keyset pagination on an index), so an export of millions of events
never holds a read transaction open for long (a long reader stops WAL checkpoints) and never
holds more than one page in memory.
"""

from phlite.store.events import _uuid_text


class LifecycleMixin:
    def count_events_between(self, project_id, after=None, before=None):
        where, params = _range(project_id, after, before)
        return self.db.execute_sql(f"SELECT count(*) FROM event WHERE {where}", params).fetchone()[0]

    def export_events_page(self, project_id, *, after=None, before=None, cursor=None, limit=2000):
        """Events oldest first, ordered by (timestamp, id); `cursor` is the (timestamp, id) of the
        previous page's last row. Each row: (id, uuid text, event, distinct_id, properties JSON text,
        timestamp ms, created_at ms, person uuid or None, person properties JSON text or None)."""
        where, params = _range(project_id, after, before, "e.")
        if cursor is not None:
            # The bare `>=` lets SQLite seek the time index to the cursor; behind an OR alone it read every
            # earlier event again for each page (an export of N events cost N^2 / 2 index steps).
            where += " AND e.timestamp >= ? AND (e.timestamp > ? OR e.id > ?)"
            params += [cursor[0], cursor[0], cursor[1]]
        # The person is the distinct id's person now (merges applied), not the one at ingestion.
        rows = self.db.execute_sql(
            "SELECT e.id, e.uuid, e.event, e.distinct_id, e.properties, e.timestamp, e.created_at, p.uuid,"
            " p.properties FROM event e"
            " LEFT JOIN person_distinct_id d ON d.project_id = e.project_id AND d.distinct_id = e.distinct_id"
            " LEFT JOIN person p ON p.id = d.person_id"
            f" WHERE {where}"
            " ORDER BY e.timestamp, e.id LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [(r[0], _uuid_text(r[1]), *r[2:]) for r in rows]

    def export_persons_page(self, project_id, *, cursor=0, limit=1000):
        """Persons by id, after person id `cursor`: [(id, uuid, properties JSON text, created_at ms,
        is_identified, [distinct ids])]."""
        rows = self.db.execute_sql(
            "SELECT id, uuid, properties, created_at, is_identified FROM person"
            " WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?", (project_id, cursor, limit),
        ).fetchall()
        ids = {r[0]: [] for r in rows}
        if ids:
            marks = ", ".join("?" * len(ids))
            for pid, did in self.db.execute_sql(
                f"SELECT person_id, distinct_id FROM person_distinct_id WHERE person_id IN ({marks})"
                " ORDER BY distinct_id", list(ids),
            ):
                ids[pid].append(did)
        return [(*r, ids[r[0]]) for r in rows]

    def export_groups_page(self, project_id, *, cursor=0, limit=1000):
        """Groups by rowid after `cursor`: [(rowid, group type, index, key, properties JSON text, created_at)]."""
        return self.db.execute_sql(
            "SELECT g.rowid, t.group_type, g.group_type_index, g.group_key, g.properties, g.created_at FROM group_ g"
            " LEFT JOIN group_type t ON t.project_id = g.project_id AND t.group_type_index = g.group_type_index"
            " WHERE g.project_id = ? AND g.rowid > ? ORDER BY g.rowid LIMIT ?", (project_id, cursor, limit),
        ).fetchall()

    def migrate_events_page(self, project_id, *, after_id=0, limit=1000):
        """Events in stored order (by id, the order ingestion processed them), after event id
        `after_id`: [(id, uuid text, event, distinct_id, properties JSON text, timestamp ms)]."""
        rows = self.db.execute_sql(
            "SELECT id, uuid, event, distinct_id, properties, timestamp FROM event"
            " WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?", (project_id, after_id, limit),
        ).fetchall()
        return [(r[0], _uuid_text(r[1]), *r[2:]) for r in rows]

    def count_events_after(self, project_id, after_id=0):
        return self.db.execute_sql(
            "SELECT count(*) FROM event WHERE project_id = ? AND id > ?", (project_id, after_id)).fetchone()[0]

    def count_events_by_day(self, project_id):
        """{"YYYY-MM-DD" (UTC): events}."""
        rows = self.db.execute_sql(
            "SELECT date(timestamp / 1000, 'unixepoch') AS day, count(*) FROM event WHERE project_id = ?"
            " GROUP BY day", (project_id,)).fetchall()
        return dict(rows)


def _range(project_id, after, before, alias=""):
    where, params = f"{alias}project_id = ?", [project_id]
    if after is not None:
        where += f" AND {alias}timestamp >= ?"
        params.append(after)
    if before is not None:
        where += f" AND {alias}timestamp < ?"
        params.append(before)
    return where, params
