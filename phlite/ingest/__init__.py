"""Ingestion: request bytes -> decoded record -> spool -> writer -> persons/groups -> store.

    wire.py       capture request bytes -> raw events (+ mixpanel.py for Mixpanel's shapes)
    capture_v1.py the v1 protocol (/i/v1/analytics/events) -> the same raw events, and per-event results;
                  OTLP logs (/i/v1/logs) -> `$log` events (reports.py, which also reads CSP reports)
    record.py     the versioned spool record;  spool.py  the write-ahead log it is appended to
    writer.py     the queue and its one thread (admission, retry, stop)
    batch.py      one group commit: normalize.py, then persons.py / groups.py (rules.py: pure rules)
    rollups.py    the background recount of the insights' hourly roll-up, through the writer

`Ingestion` is the package's face: the web layer and the app use only it.
"""

import collections
import dataclasses
import time
import uuid

from phlite import errors
from phlite.ingest.capture_v1 import decode_logs, decode_v1
from phlite.ingest.mixpanel import track_event as mixpanel_track_event
from phlite.ingest.persons import PersonProcessor
from phlite.ingest.rollups import RollupRefresher
from phlite.ingest.spool import Spool
from phlite.ingest.wire import Payload, decode_request
from phlite.ingest.writer import Writer

__all__ = ["IngestStats", "Ingestion", "Payload", "decode_logs", "decode_request", "decode_v1", "mixpanel_track_event"]


@dataclasses.dataclass(frozen=True)
class IngestStats:
    """Ingestion's counters since this process started, and its queue now (docs/operations.md "Metrics")."""

    accepted: int  # events acknowledged (spooled)
    stored: int  # events stored
    dropped: dict  # {reason: events} refused by the writer's rules, quarantined excluded
    quarantined: int  # events set aside in the quarantine table (docs/reliability.md "One bad value")
    queued_records: int  # requests acknowledged, not yet stored
    queued_bytes: int
    queue_max_bytes: int
    lag_seconds: float  # how long the oldest queued request has waited (0 when the queue is empty)
    spool_segments: int
    spool_bytes: int
    writer: str  # the writer's state, as /healthz shows it


class Ingestion:
    """The spool, the writer thread and the one PersonProcessor, behind one object."""

    def __init__(self, store, config, clock):
        self.store = store
        self.persons = PersonProcessor()
        self.spool = Spool(config.spool_dir, config.spool_segment_bytes, fsync=config.fsync)
        self.writer = Writer(
            store, self.spool,
            max_bytes=config.queue_max_bytes,
            batch_events=config.writer_batch_events,
            commit_events=config.writer_commit_events,
            commit_seconds=config.writer_commit_seconds,
            clock=clock,
            persons=self.persons,
        )
        # Recounts the insights' hourly roll-up through this writer (phlite/ingest/rollups.py).
        self.rollups = RollupRefresher(store, self, clock=clock)

    # --- request side ---

    def refuse_if_full(self, incoming_bytes):
        self.writer.refuse_if_full(incoming_bytes)

    def submit(self, project_id, payload: Payload, *, ip=None):
        """Spool a decoded request's events (durably) for the writer. Raises Unavailable."""
        self.writer.submit(project_id, payload.events, sent_at=payload.sent_at, ip=ip,
                           token=payload.token or "", operations=payload.operations)

    def submit_historical(self, project_id, events, *, token="", timeout=600):
        """Spool imported events (`python app.py import`): no sent_at and no client address, so
        their timestamps and properties are kept as they are, and no rate limit. While the queue
        is full it waits for the writer instead of answering 503; raises Unavailable only when the
        store refuses writes, phlite is stopping, or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.writer.submit(project_id, events, token=token)
                return
            except errors.Unavailable:
                if self.writer.failure is not None or self.writer.stopping or time.monotonic() > deadline:
                    raise
                self.writer.flush(timeout=max(0.1, deadline - time.monotonic()))

    def stats(self):
        accepted, stored, dropped, records, queued, lag = self.writer.stats()
        segments, spool_bytes = self.spool.disk_bytes()
        quarantined = dropped.pop("quarantined", 0)
        return IngestStats(accepted=accepted, stored=stored, dropped=dict(dropped), quarantined=quarantined,
                           queued_records=records, queued_bytes=queued, queue_max_bytes=self.writer.max_bytes,
                           lag_seconds=lag, spool_segments=segments, spool_bytes=spool_bytes,
                           writer=self.writer.health()["writer"])

    def totals(self):
        """(events stored, Counter of events dropped by reason) since this Ingestion started."""
        with self.writer.cond:
            return self.writer.stored, collections.Counter(self.writer.dropped)

    # --- persons (ordered with ingestion: run in the writer thread) ---

    def delete_person(self, project_id, person_uuid, delete_events=False):
        """Delete a person and its distinct ids (and its events); False if there is none."""
        return self.writer.call(
            lambda: self.persons.delete_person(self.store, project_id, person_uuid, delete_events))

    def forget_persons(self):
        """Drop the writer's person and group-type caches (after a project's rows were deleted), in its thread."""
        return self.writer.call(lambda: self.persons.forget(None))

    def person_distinct_ids(self, project_id, person_uuid):
        """The distinct ids of the person with this uuid (any form uuid.UUID reads), or None."""
        try:
            canonical = str(uuid.UUID(person_uuid))
        except ValueError:
            return None
        person = self.store.get_person_by_uuid(project_id, canonical)
        return person["distinct_ids"] if person else None

    # --- lifecycle ---

    def call(self, fn, timeout=30):
        """Run fn() in the writer thread, ordered after everything already submitted."""
        return self.writer.call(fn, timeout)

    def flush(self, timeout=30):
        """Block until everything submitted before this call is stored. True on success."""
        return self.writer.flush(timeout)

    def health(self):
        """{"status": "ok" | "unavailable", "writer": its state, "reason": why capture answers 503, or None}."""
        return self.writer.health()

    @property
    def failure(self):
        """The store error the writer is retrying, or None."""
        return self.writer.failure

    def start(self):
        self.writer.start()
        self.rollups.start()

    def stop(self, timeout=60):
        """Stop accepting, store what is queued (True when all of it was), close the spool."""
        self.rollups.stop()
        drained = self.writer.stop(timeout)
        self.spool.close()
        return drained
