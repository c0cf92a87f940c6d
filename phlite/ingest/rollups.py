"""Keeping the hourly roll-up counted (docs/insights.md "Roll-ups"), off the write path.

The writer only marks the hours it stores events into (Store.mark_rollup_hours, in the group commit).
This pass recounts the marked hours that are over, in short transactions run by the writer thread
(Ingestion.call), so group commits go on between them and nothing writes beside the writer. Until an
hour is recounted, queries read it from the events: a late pass costs query time, never a wrong answer.
Time comes from the injected clock; tests call `run_pending()` instead of waiting.
"""

import logging
import threading
import time

from phlite import errors
from phlite.query import local_day
from phlite.store import WRITE_ERRORS

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 2.0  # between looks for hours to recount (one indexed read of a tiny table)
BUDGET_SECONDS = 0.05  # per writer transaction, so a capture waits at most about this long for it


class RollupRefresher:
    def __init__(self, store, ingestion, clock=time.time, interval=INTERVAL_SECONDS):
        self.store = store
        self.ingestion = ingestion
        self.clock = clock
        self.interval = interval
        self._lock = threading.Lock()  # one pass at a time (the thread's, or a caller's)
        self._wake = threading.Event()
        self._stopping = False
        self._thread = None

    def run_pending(self):
        """Recount every marked hour that is over, now; returns how many were recounted."""
        total = 0
        with self._lock:
            while not self._stopping:
                now_ms = int(self.clock() * 1000)
                with self.store.db.connection_context():
                    if not self.store.rollups_due(now_ms):
                        return total
                n = self.ingestion.call(lambda: self._step(now_ms))
                total += n
                if not n:
                    return total
        return total

    def _step(self, now_ms):
        with self.store.transaction():
            return self.store.refresh_rollups(now_ms, local_day, BUDGET_SECONDS)

    def start(self):
        self._thread = threading.Thread(target=self._run, name="phlite-rollups", daemon=True)
        self._thread.start()

    def stop(self, timeout=30):
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        while not self._stopping:
            try:
                self.run_pending()
            except (errors.Unavailable, *WRITE_ERRORS) as e:
                log.warning("roll-up pass stopped early: %s", e)  # the writer is busy or refuses writes
            except Exception:  # noqa: BLE001 - the thread must outlive one bad pass; the next retries
                log.exception("roll-up pass failed; retrying at the next one")
            self._wake.wait(self.interval)
