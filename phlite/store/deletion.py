"""Deleting data: old events (retention), events by filter, whole projects, and giving the space back.

The reads that choose what to delete run on the calling thread's own connection (WAL: they never block
the writer); every write here is one short transaction meant to run in the writer thread
(Ingestion.call), bounded in rows by its caller (docs/lifecycle.md "How deletion runs").
"""

import json
import re
import sqlite3
import time

from phlite.store.event_filters import property_condition
from phlite.store.query import PROGRESS_STEPS, QueryTimeout


def _now_ms():
    return int(time.time() * 1000)


def _marks(n):
    return ", ".join("?" * n)


def event_filter_condition(project_id, spec):
    """A delete filter {"event", "after" (ms, included), "before" (ms, excluded), "properties"} -> (SQL, params)."""
    where, params = ["project_id = ?"], [project_id]
    if spec.get("event") is not None:
        where.append("event = ?")
        params.append(spec["event"])
    if spec.get("after") is not None:
        where.append("timestamp >= ?")
        params.append(spec["after"])
    if spec.get("before") is not None:
        where.append("timestamp < ?")
        params.append(spec["before"])
    if spec.get("properties"):
        cond, extra = property_condition(spec["properties"])
        where.append(cond)
        params.extend(extra)
    return " AND ".join(where), params


_WITHOUT_ROWID = re.compile(r"\)\s*WITHOUT\s+ROWID\s*$", re.IGNORECASE)


class DeletionMixin:
    # --- retention ------------------------------------------------------------------------

    def projects_with_retention(self):
        """[(project id, retention_days)] of live projects that keep events for a limited time."""
        return self.db.execute_sql(
            "SELECT id, retention_days FROM project WHERE retention_days IS NOT NULL AND deleted_at IS NULL"
            " ORDER BY id").fetchall()

    def expired_event_ids(self, project_id, cutoff_ms, limit):
        """Ids of up to `limit` events older than cutoff_ms (the (project, timestamp) index), leaving out
        events that still wait to be forwarded (docs/lifecycle.md "Retention"): in the outbox or in a
        backfill range not yet sent."""
        hold = self.db.execute_sql("SELECT backfill_after, backfill_until FROM forward_destination"
                                   " WHERE project_id = ?", (project_id,)).fetchone()
        sql = "SELECT id FROM event e WHERE project_id = ? AND timestamp < ?"
        params = [project_id, cutoff_ms]
        if hold is not None:
            sql += (" AND NOT EXISTS (SELECT 1 FROM forward_outbox o WHERE o.project_id = e.project_id"
                    " AND o.event_id = e.id)")
            if hold[1] is not None:
                sql += " AND NOT (id > ? AND id <= ?)"
                params += [hold[0], hold[1]]
        return [r[0] for r in self.db.execute_sql(sql + " ORDER BY timestamp LIMIT ?", [*params, limit])]

    def delete_event_ids(self, project_id, ids):
        """Delete these events of the project in one transaction; returns how many went."""
        if not ids:
            return 0
        with self.transaction():
            cur = self.db.execute_sql(
                f"DELETE FROM event WHERE project_id = ? AND id IN ({_marks(len(ids))})", [project_id, *ids])
        return cur.rowcount

    # --- delete by filter -----------------------------------------------------------------

    def max_event_id(self):
        return self.db.execute_sql("SELECT coalesce(max(id), 0) FROM event").fetchone()[0]

    def min_event_id(self):
        return self.db.execute_sql("SELECT coalesce(min(id), 0) FROM event").fetchone()[0]

    def count_events_matching(self, project_id, spec, max_event_id=None, timeout_s=None):
        """How many events match; past timeout_s (a request's bound) raises QueryTimeout."""
        where, params = event_filter_condition(project_id, spec)
        if max_event_id is not None:
            where += " AND id <= ?"
            params.append(max_event_id)
        conn = self.db.connection()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if deadline is not None:
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)
        try:
            return conn.execute(f"SELECT count(*) FROM event WHERE {where}", params).fetchone()[0]
        except sqlite3.OperationalError:
            if deadline is not None and time.monotonic() > deadline:
                raise QueryTimeout(f"Counting the matching events took over {timeout_s:g} s; narrow the filter"
                                   " (a date range or an event name is read from an index).") from None
            raise
        finally:
            if deadline is not None:
                conn.set_progress_handler(None, 0)

    def matching_event_ids(self, project_id, spec, after_id, upto_id):
        """Ids of the events matching `spec` with after_id < id <= upto_id, in id order. The caller keeps
        the window small: it bounds the rows this read examines."""
        where, params = event_filter_condition(project_id, spec)
        return [r[0] for r in self.db.execute_sql(
            f"SELECT id FROM event WHERE {where} AND id > ? AND id <= ? ORDER BY id", [*params, after_id, upto_id])]

    def create_deletion_job(self, project_id, spec, max_event_id, expected):
        with self.transaction():
            cur = self.db.execute_sql(
                "INSERT INTO deletion_job (project_id, filter, max_event_id, expected, created_at)"
                " VALUES (?, ?, ?, ?, ?)", (project_id, json.dumps(spec), max_event_id, expected, _now_ms()))
            # History is kept for the newest 100 jobs of a project.
            self.db.execute_sql(
                "DELETE FROM deletion_job WHERE project_id = ? AND status IN ('done', 'failed') AND id NOT IN"
                " (SELECT id FROM deletion_job WHERE project_id = ? ORDER BY id DESC LIMIT 100)",
                (project_id, project_id))
        return self.get_deletion_job(project_id, cur.lastrowid)

    _JOB_COLUMNS = "id, project_id, filter, max_event_id, cursor, expected, deleted, status, error, created_at, finished_at"

    @staticmethod
    def _job(r):
        return {"id": r[0], "project_id": r[1], "filter": json.loads(r[2]), "max_event_id": r[3], "cursor": r[4],
                "expected": r[5], "deleted": r[6], "status": r[7], "error": r[8], "created_at": r[9],
                "finished_at": r[10]}

    def get_deletion_job(self, project_id, job_id):
        row = self.db.execute_sql(f"SELECT {self._JOB_COLUMNS} FROM deletion_job WHERE project_id = ? AND id = ?",
                                  (project_id, job_id)).fetchone()
        return row and self._job(row)

    def list_deletion_jobs(self, project_id, limit=20):
        return [self._job(r) for r in self.db.execute_sql(
            f"SELECT {self._JOB_COLUMNS} FROM deletion_job WHERE project_id = ? ORDER BY id DESC LIMIT ?",
            (project_id, limit))]

    def pending_deletion_jobs(self):
        return [self._job(r) for r in self.db.execute_sql(
            f"SELECT {self._JOB_COLUMNS} FROM deletion_job d WHERE status IN ('queued', 'running')"
            " AND EXISTS (SELECT 1 FROM project p WHERE p.id = d.project_id AND p.deleted_at IS NULL) ORDER BY id")]

    def delete_job_events(self, job_id, project_id, ids, cursor):
        """Delete `ids` (events of the job's project) and move the job's cursor, in one transaction."""
        with self.transaction():
            n = 0
            if ids:
                n = self.db.execute_sql(f"DELETE FROM event WHERE project_id = ? AND id IN ({_marks(len(ids))})",
                                        [project_id, *ids]).rowcount
            self.db.execute_sql("UPDATE deletion_job SET cursor = ?, deleted = deleted + ?, status = 'running'"
                                " WHERE id = ?", (cursor, n, job_id))
        return n

    def finish_deletion_job(self, job_id, error=None):
        with self.transaction():
            self.db.execute_sql("UPDATE deletion_job SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                                ("failed" if error else "done", error, _now_ms(), job_id))

    # --- project deletion -----------------------------------------------------------------

    def mark_project_deleted(self, project_id, now_ms=None):
        """Hide the project at once (its token stops working); its rows go later, in batches. False if there is
        no such project; True also when it is already being deleted (the work then goes on)."""
        with self.transaction():
            self.db.execute_sql("UPDATE project SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                                (now_ms or _now_ms(), project_id))
            found = self.db.execute_sql("SELECT 1 FROM project WHERE id = ?", (project_id,)).fetchone()
        self._token_cache.clear()
        self._flags_changed(project_id)
        return found is not None

    def has_pending_deletions(self):
        return self.db.execute_sql(
            "SELECT EXISTS (SELECT 1 FROM project WHERE deleted_at IS NOT NULL)"
            " OR EXISTS (SELECT 1 FROM deletion_job WHERE status IN ('queued', 'running'))").fetchone()[0] == 1

    def projects_being_deleted(self):
        return [r[0] for r in self.db.execute_sql("SELECT id FROM project WHERE deleted_at IS NOT NULL ORDER BY id")]

    def project_tables(self):
        """[(table, key columns to delete by)] of every table with a project_id column, events first.

        Read from sqlite_master each time, so tables added by later migrations are included."""
        out = []
        for name, sql in self.db.execute_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            cols = self.db.execute_sql(f'PRAGMA table_info("{name}")').fetchall()
            if not any(c[1] == "project_id" for c in cols):
                continue
            if _WITHOUT_ROWID.search(sql or ""):
                key = [c[1] for c in sorted((c for c in cols if c[5]), key=lambda c: c[5])]
            else:
                key = ["rowid"]
            out.append((name, key))
        out.sort(key=lambda t: (t[0] != "event", t[0]))
        return out

    def delete_project_rows(self, table, key, project_id, limit):
        """Delete up to `limit` rows of the project from `table` in one transaction; returns how many."""
        cols = ", ".join(f'"{k}"' if k != "rowid" else k for k in key)
        target = cols if len(key) == 1 else f"({cols})"
        with self.transaction():
            self._persons_touched()
            n = self.db.execute_sql(
                f'DELETE FROM "{table}" WHERE {target} IN'
                f' (SELECT {cols} FROM "{table}" WHERE project_id = ? LIMIT ?)', (project_id, limit)).rowcount
        return n

    def finish_project_deletion(self, project_id):
        """The last step: the project row, and the project's id out of personal keys' scopes (a key left with
        no project is revoked). False if rows of the project remain (then nothing is done)."""
        with self.transaction():
            for table, _ in self.project_tables():
                if self.db.execute_sql(f'SELECT 1 FROM "{table}" WHERE project_id = ? LIMIT 1',
                                       (project_id,)).fetchone():
                    return False
            for kid, scope in self.db.execute_sql(
                    "SELECT id, project_ids FROM personal_key WHERE project_ids IS NOT NULL").fetchall():
                ids = json.loads(scope)
                if project_id in ids:
                    ids = [i for i in ids if i != project_id]
                    # An empty list is "no project" (NULL would be every project): such a key is revoked.
                    self.db.execute_sql(
                        "UPDATE personal_key SET project_ids = ?, revoked_at = CASE WHEN ? THEN"
                        " coalesce(revoked_at, ?) ELSE revoked_at END WHERE id = ?",
                        (json.dumps(ids), not ids, _now_ms(), kid))
            self.db.execute_sql("DELETE FROM project WHERE id = ? AND deleted_at IS NOT NULL", (project_id,))
        self._token_cache.clear()
        self._flags_changed(project_id)
        return True

    # --- space --------------------------------------------------------------------------------

    def space(self):
        """{"page_size", "pages", "free_pages", "auto_vacuum" ("none" | "full" | "incremental")}."""
        q = self.db.execute_sql
        mode = q("PRAGMA auto_vacuum").fetchone()[0]
        return {"page_size": q("PRAGMA page_size").fetchone()[0], "pages": q("PRAGMA page_count").fetchone()[0],
                "free_pages": q("PRAGMA freelist_count").fetchone()[0],
                "auto_vacuum": {0: "none", 1: "full", 2: "incremental"}.get(mode, str(mode))}

    def incremental_vacuum(self, pages):
        """Give up to `pages` free pages back to the file system (auto_vacuum=INCREMENTAL only); returns
        the free pages left. Stepped to the end: a single step of this pragma frees one page."""
        self.db.execute_sql(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
        return self.db.execute_sql("PRAGMA freelist_count").fetchone()[0]

    def checkpoint(self):
        """A PASSIVE WAL checkpoint (never waits for readers): lets the main file shrink after a vacuum."""
        return self.db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def vacuum_full(self):
        """Rewrite the whole file with auto_vacuum=INCREMENTAL (`python app.py vacuum`, server stopped)."""
        self.db.execute_sql("PRAGMA auto_vacuum = INCREMENTAL")
        self.db.execute_sql("VACUUM")
        self.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
