"""Deleting data in the background: retention, deletions of events by filter, project deletions, and
giving the freed space back (docs/lifecycle.md "Retention", "How deletion runs").

One `Deleter` per running phlite, with one thread. It chooses what to delete with reads on its own
connection, and deletes through the ingestion writer (Ingestion.call), one short transaction of at
most `batch_rows` rows at a time, so capture's group commits run between its batches and nothing
else ever writes beside the writer. The batch size adapts to keep each transaction near
TARGET_SECONDS. Time comes from the injected clock; tests call `run_pending()` instead of waiting.
"""

import logging
import threading
import time

from phlite import errors
from phlite.lifecycle.formats import parse_when
from phlite.store import WRITE_ERRORS

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
MAX_RETENTION_DAYS = 36_500
# A delete transaction aims at this long, so the writer is never held for much more.
TARGET_SECONDS = 0.05
MIN_BATCH, MAX_BATCH = 50, 5000
# Delete-by-filter reads examine events in windows of this many ids (bounded work per read, whatever
# the filter), and hand the writer what they found at most this many ids at a time.
ID_WINDOW = 20_000
POLL_SECONDS = 10.0
# Free pages given back per writer call (4 MiB at the default 4 KiB page).
VACUUM_PAGES = 1024


def clean_retention_days(value):
    """None (keep forever) or a whole number of days, 1 to 36,500; 0 and None both mean forever."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise errors.BadRequest("'retention_days' must be a whole number of days, or null.", attr="retention_days")
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise errors.BadRequest("'retention_days' must be a whole number of days, or null.",
                                attr="retention_days") from None
    if isinstance(value, float) and value != days:
        raise errors.BadRequest("'retention_days' must be a whole number of days, or null.", attr="retention_days")
    if days == 0:
        return None
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise errors.BadRequest(f"'retention_days' must be between 1 and {MAX_RETENTION_DAYS}, or null.",
                                attr="retention_days")
    return days


def _when(value, name):
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errors.BadRequest(f"'{name}' must be an ISO 8601 date or time.", attr=name)
    try:
        return parse_when(value.strip())
    except (ValueError, OverflowError):
        raise errors.BadRequest(f"'{name}' must be an ISO 8601 date or time.", attr=name) from None


def clean_filter(raw):
    """A delete filter as the API or the console gives it -> {"event", "after", "before", "properties"}
    (times as epoch ms, `after` included, `before` excluded). At least one of them is required."""
    event = raw.get("event")
    if event is not None and (not isinstance(event, str) or not event):
        raise errors.BadRequest("'event' must be an event name.", attr="event")
    spec = {"event": event or None, "after": _when(raw.get("after"), "after"),
            "before": _when(raw.get("before"), "before"), "properties": raw.get("properties") or None}
    if spec["properties"] is not None and not isinstance(spec["properties"], (list, dict)):
        raise errors.BadRequest("'properties' must be a list of property filters.", attr="properties")
    if all(v is None for v in spec.values()):
        raise errors.BadRequest("Say which events to delete: an event name, a date range or a property filter"
                                " (to delete everything, delete the project).", attr="event")
    if spec["after"] is not None and spec["before"] is not None and spec["after"] >= spec["before"]:
        raise errors.BadRequest("'after' must be earlier than 'before'.", attr="before")
    return spec


class _Batches:
    """The adaptive batch size and the longest delete transaction seen."""

    def __init__(self, rows):
        self.rows = rows
        self.longest = 0.0

    def timed(self, fn):
        def run():
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                took = time.perf_counter() - t0
                self.longest = max(self.longest, took)
                if took > TARGET_SECONDS:
                    self.rows = max(MIN_BATCH, self.rows // 2)
                elif took < TARGET_SECONDS / 4:
                    self.rows = min(MAX_BATCH, self.rows * 2)
        return run


class Deleter:
    def __init__(self, store, ingestion, clock=time.time, interval=3600.0, batch_rows=1000, count_timeout=10.0):
        self.store = store
        self.count_timeout = count_timeout  # a preview is counted in the request: bounded like a query
        self.ingestion = ingestion
        self.clock = clock
        self.interval = interval
        self.batches = _Batches(batch_rows)
        self._lock = threading.Lock()  # one pass at a time (the thread's, or a caller's)
        self._wake = threading.Event()
        self._stopping = False
        self._thread = None
        self.last_pass = None  # the summary of the last pass, for the console

    # --- requests ----------------------------------------------------------------------------

    def preview(self, project_id, spec):
        """How many events `spec` matches now (what a delete asked for now would delete)."""
        return self.store.count_events_matching(project_id, spec, timeout_s=self.count_timeout)

    def request_delete(self, project_id, spec):
        """Queue a deletion of the events matching `spec` that exist now; the job {"id", "expected", ...}."""
        upto = self.store.max_event_id()
        expected = self.store.count_events_matching(project_id, spec, upto, timeout_s=self.count_timeout)
        job = self.store.create_deletion_job(project_id, spec, upto, expected)
        self._wake.set()
        return job

    def delete_project(self, project_id):
        """Hide the project now and delete its rows in the background; False if there is no such project."""
        done = self.store.mark_project_deleted(project_id, int(self.clock() * 1000))
        self._wake.set()
        return done

    # --- the thread --------------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, name="phlite-deleter", daemon=True)
        self._thread.start()

    def stop(self, timeout=30):
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        # Retention every `interval`; queued deletions (from the API, the console or the CLI beside a
        # running server) are looked for every POLL_SECONDS, a cheap read.
        next_retention = 0.0
        while not self._stopping:
            try:
                due = time.monotonic() >= next_retention
                if not due:
                    with self.store.db.connection_context():
                        pending = self.store.has_pending_deletions()
                if due or pending:
                    self.run_pending(retention=due)
                    if due:
                        next_retention = time.monotonic() + self.interval
            except Exception:  # noqa: BLE001 - the thread must outlive one bad pass; the next retries
                log.exception("deletion pass failed; retrying at the next one")
            self._wake.wait(min(POLL_SECONDS, max(0.0, next_retention - time.monotonic())))
            self._wake.clear()

    # --- one pass ----------------------------------------------------------------------------

    def run_pending(self, retention=True):
        """Do all deletion work due now: project deletions, queued jobs, retention, then give the space back.
        Returns a summary {"projects", "jobs", "retention": {project id: events}, "freed_pages"}."""
        with self._lock:
            with self.store.db.connection_context():
                now_ms = int(self.clock() * 1000)
                summary = {"projects": [], "jobs": [], "retention": {}, "freed_pages": 0}
                try:
                    for pid in self.store.projects_being_deleted():
                        if self._stopping:
                            break
                        if self._delete_project_rows(pid):
                            summary["projects"].append(pid)
                    for job in self.store.pending_deletion_jobs():
                        if self._stopping:
                            break
                        summary["jobs"].append(self._run_job(job))
                    for pid, days in self.store.projects_with_retention() if retention else ():
                        if self._stopping:
                            break
                        n = self._expire(pid, now_ms - days * DAY_MS)
                        if n:
                            summary["retention"][pid] = n
                    summary["freed_pages"] = self._give_back()
                except (errors.Unavailable, *WRITE_ERRORS) as e:
                    # The writer is busy or the store refuses writes: what is left waits for the next pass.
                    log.warning("deletion pass stopped early: %s", e)
                    summary["stopped"] = str(e)
                self.last_pass = {**summary, "at": now_ms, "longest_transaction_s": round(self.batches.longest, 4)}
                return summary

    def _call(self, fn):
        return self.ingestion.call(self.batches.timed(fn))

    def _expire(self, project_id, cutoff_ms):
        total = 0
        while not self._stopping:
            ids = self.store.expired_event_ids(project_id, cutoff_ms, self.batches.rows)
            if not ids:
                break
            total += self._call(lambda ids=ids: self.store.delete_event_ids(project_id, ids))
        if total:
            log.info("retention: deleted %d events of project %s older than %s", total, project_id,
                     time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(cutoff_ms / 1000)))
        return total

    def _run_job(self, job):
        store, pid, spec = self.store, job["project_id"], job["filter"]
        # Ids below the oldest stored event hold nothing: start there (after retention that skips most of them).
        cursor, upto = max(job["cursor"], store.min_event_id() - 1), job["max_event_id"]
        try:
            ids, scanned = [], 0
            while cursor < upto and not self._stopping:
                end = min(upto, cursor + ID_WINDOW)
                ids += store.matching_event_ids(pid, spec, cursor, end)
                cursor, scanned = end, scanned + 1
                rows = self.batches.rows
                if len(ids) >= rows or cursor >= upto or scanned >= 10:
                    chunk, ids, scanned = ids, [], 0
                    for i in range(0, max(1, len(chunk)), rows):
                        part = chunk[i:i + rows]
                        last = cursor if i + rows >= len(chunk) else part[-1]
                        self._call(lambda p=part, c=last: store.delete_job_events(job["id"], pid, p, c))
            if cursor >= upto:
                self._call(lambda: store.finish_deletion_job(job["id"]))
        except errors.BadRequest as e:  # a filter the store cannot read (checked when asked; belt and braces)
            detail = e.detail  # bound outside the lambda: `e` is unbound once the except block ends
            self._call(lambda: store.finish_deletion_job(job["id"], detail))
        return store.get_deletion_job(pid, job["id"])

    def _delete_project_rows(self, project_id):
        store = self.store
        for _ in range(3):  # rows stored while it ran (a request already past the token check) go too
            for table, key in store.project_tables():
                while not self._stopping:
                    limit = self.batches.rows
                    if self._call(lambda t=table, k=key, n=limit: store.delete_project_rows(t, k, project_id, n)) < limit:
                        break
            if self._stopping:
                return False
            if self._call(lambda: store.finish_project_deletion(project_id)):
                self.ingestion.forget_persons()
                log.info("deleted project %s and all its rows", project_id)
                return True
        return False

    def _give_back(self):
        """Return free pages to the file system, a bounded number per writer call (incremental vacuum)."""
        space = self.store.space()
        if space["auto_vacuum"] != "incremental" or not space["free_pages"]:
            return 0
        left, freed = space["free_pages"], 0
        while left and not self._stopping:
            now = self._call(lambda: self.store.incremental_vacuum(VACUUM_PAGES))
            if now >= left:
                break
            freed, left = freed + left - now, now
        self._call(self.store.checkpoint)
        return freed
