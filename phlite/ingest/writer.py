"""The ingestion queue and its one writer thread: admission, the thread, retry and stop.

Request threads call `submit()`: the record (phlite/ingest/record.py) is appended to the
spool, queued, and the request is answered 200. The writer thread drains the queue in group
commits (phlite/ingest/batch.py: normalise, person and group effects in event order, store,
and record the spool position in the same transaction). Nothing else writes events. While
the store refuses writes, submit() answers 503 and the batch is retried. An event this code cannot
store is quarantined alone (its neighbours are stored); a record that cannot be decoded at all is set
aside in spool/rejected.log (docs/reliability.md "One bad value"). A group commit holds at most
commit_events events: a bigger record is split, its progress kept beside the spool position
(docs/reliability.md "Poison records").

Other writes that must be ordered with ingestion (deleting a person, say) go through
`call(fn)`, which runs fn in the writer thread. Tests use `flush()` instead of sleeping.
"""

import collections
import contextlib
import logging
import threading
import time

from phlite import errors
from phlite.ingest import batch, record
from phlite.ingest.queue import BATCH_BYTES, MEMORY_BYTES, Call, InSpool, Parsed, memory_weight, queue_full
from phlite.ingest.spool import GroupFsync, SpoolLost
from phlite.store import WRITE_ERRORS

log = logging.getLogger(__name__)

# spool/rejected.log (records that cannot even be decoded) grows to this, then starts again with
# one older generation kept as rejected.log.1.
REJECTED_LOG_BYTES = 64 * 1024 * 1024

# On shutdown, how long the writer keeps retrying a store that refuses writes (a passing
# lock, say) before it leaves the rest in the spool for the next start.
STOP_RETRY_SECONDS = 5


class Writer:
    def __init__(self, store, spool, *, max_bytes=32 * 1024 * 1024, batch_events=5000, commit_events=5000,
                 commit_seconds=1.0, clock=time.time, monotonic=time.monotonic, retry_delay=1.0, persons=None,
                 memory_bytes=MEMORY_BYTES):
        self.store = store
        # A group commit stops taking events once it has run this long (docs/reliability.md "Long
        # writer transactions"): the write lock a flag edit waits for is held about this long at most.
        self.commit_seconds = commit_seconds
        self.monotonic = monotonic
        self.memory_limit = memory_bytes
        self.spool = spool
        self.max_bytes = max_bytes
        self.batch_events = batch_events
        self.commit_events = max(1, commit_events)
        self.clock = clock
        self.retry_delay = retry_delay
        self.persons = persons  # the PersonProcessor; None stores events without person processing
        self.cond = threading.Condition()
        self.queue = collections.deque()  # (position, record bytes, Parsed or InSpool) or (None, Call)
        self.queued_bytes = 0
        self.memory_bytes = 0  # of queued records held in memory
        self.failure = None  # the last store error; while set, submit() answers 503
        self.spool_fault = None  # why the spool cannot keep what is appended; while set, 503 too
        self.in_flight = 0  # records at the head of the queue that the writer thread is storing
        self.stopping = False
        self.thread = None
        self.dropped = collections.Counter()
        self.stored = 0
        self.accepted = 0  # events acknowledged since start (the spool has them)
        # When each queued record arrived (time.monotonic), in queue order: the head's age is the writer's
        # lag (docs/operations.md "Metrics"). One entry per record of the queue, never per call.
        self.arrivals = collections.deque()
        # With the `fsync` setting at batch, submit() returns only once its record is on disk.
        self.syncer = GroupFsync(self._sync_point, spool.fsync_fn) if spool.durable else None
        with store.db.connection_context():
            # done_events: events of the record after `committed` already stored (a record split
            # over several group commits, docs/reliability.md "Poison records").
            self.committed, self.done_events = store.spool_position()
        self.appended = self.committed
        for position, payload in spool.recover(self.committed):
            self.queue.append((position, payload))
            self.queued_bytes += len(payload)
            self.memory_bytes += len(payload)
            self.appended = position
            self.arrivals.append(time.monotonic())  # recovered: waiting since this start

    # --- request side -----------------------------------------------------------

    def refuse_if_full(self, incoming_bytes):
        """Raise submit()'s 503 when a request body of `incoming_bytes` would not fit in the
        queue, so that capture answers before reading and decoding it. (A spooled record is
        about its body's size: bigger for compressed bodies, a little smaller for JSON with
        spaces, so near the limit this may refuse a request submit() would just have taken.)

        Under overload this matters: decoding the requests that were then refused took the
        GIL from the writer, and events stored/s fell as the 503s rose (bench/README.md)."""
        if self.queue and self.queued_bytes + incoming_bytes > self.max_bytes:
            raise queue_full()

    def submit(self, project_id, events, *, sent_at=None, ip=None, token="", received_ms=None, operations=None):
        """Accept events for storage, durably (spooled) before returning. Raises Unavailable.

        `operations`: each event's Mixpanel operations (or None), for /engage and /groups."""
        received_ms = int(self.clock() * 1000) if received_ms is None else received_ms
        rec = record.Record(project_id, received_ms, sent_at, ip, token, events, operations)
        data = record.encode(rec)
        with self.cond:
            if self.stopping:
                raise errors.Unavailable("phlite is shutting down; retry shortly.", retry_after=2)
            refusal = self._refusal()
            if refusal:
                raise errors.Unavailable(f"{refusal}; retry later.", retry_after=5)
            if self.queue and self.queued_bytes + len(data) > self.max_bytes:
                raise queue_full()
            try:
                position = self.spool.append(data)
            except SpoolLost as e:
                # This record (and any queued one) sits in a file recovery would not find: refuse it,
                # and copy the queued ones into a new segment so that nothing acknowledged is
                # only in memory.
                log.error("%s", e)
                self.spool_fault = str(e)
                self._respool()
                raise errors.Unavailable(f"Cannot keep data on disk ({e}); retry later.", retry_after=5)
            except OSError as e:
                log.error("spool append failed: %s", e)
                raise errors.Unavailable(f"Cannot write to disk ({e.strerror or e}); retry later.", retry_after=5)
            # The events as the request thread parsed them: the writer stores the same record the
            # spool holds (record.decode(data) == rec), without parsing it again.
            item = Parsed(rec, len(data))
            if self.memory_bytes + item.weight <= self.memory_limit:
                self.queue.append((position, item))
                self.memory_bytes += item.weight
            else:
                self.queue.append((position, InSpool(len(data))))
            self.queued_bytes += len(data)
            self.appended = position
            self.accepted += len(events)
            self.arrivals.append(time.monotonic())
            self.cond.notify_all()
        if self.syncer is not None:
            try:
                self.syncer.wait(position)
            except OSError as e:
                # The record is spooled and will be stored, but is not known to be on disk: the 200
                # would promise more than is true. (A retry is deduplicated by the event's uuid.)
                log.error("spool fsync failed: %s", e)
                raise errors.Unavailable(f"Cannot flush data to disk ({e.strerror or e}); retry later.",
                                         retry_after=5)

    def _sync_point(self):
        with self.cond:
            return self.spool.sync_point()

    def _refusal(self):
        """Why submit() must answer 503 rather than acknowledge, or None. Caller holds cond."""
        if self.spool_fault is not None and not self._respool():
            return f"Cannot keep data on disk ({self.spool_fault})"
        if self.failure is not None:
            return f"Storage is refusing writes ({self.failure})"
        if self.thread is not None and not self.thread.is_alive():
            return "The writer thread is not running"
        return None

    def _respool(self):
        """Copy every queued record the writer is not storing right now into a new segment, with
        its new position, and clear spool_fault. False (fault kept) if that fails. Caller holds cond.

        A record the writer thread is storing keeps its old position: its commit records that one."""
        try:
            self.spool.reopen()
            moved = collections.deque()
            for i, (position, item) in enumerate(self.queue):
                if position is not None and i >= self.in_flight:
                    payload = self._payload(position, item)
                    position = self.spool.append(payload)
                    if isinstance(item, InSpool):
                        item = InSpool(len(payload))
                moved.append((position, item))
        except OSError as e:
            self.spool_fault = str(e)
            log.error("cannot move queued requests to a new spool segment: %s", e)
            return False
        self.queue = moved
        if moved and moved[-1][0] is not None:
            self.appended = max(self.appended, moved[-1][0])
        log.warning("spool: moved %d queued requests to a new segment", len(moved) - self.in_flight)
        self.spool_fault = None
        return True

    def health(self):
        """{"status": "ok" | "unavailable", "writer": state, "reason": text or None}."""
        with self.cond:
            if self.spool_fault is None:
                lost = self.spool.check() if self.spool.fd is not None else None
                if lost:
                    self.spool_fault = lost
            reason = self._refusal()
            if self.stopping:
                state, reason = "stopping", reason or "phlite is shutting down"
            elif self.thread is None:
                state = "not started"
            elif not self.thread.is_alive():
                state = "stopped"
            else:
                state = "failing" if reason else "running"
        return {"status": "unavailable" if reason else "ok", "writer": state, "reason": reason}

    def stats(self):
        """(events accepted, events stored, dropped Counter, records queued, bytes queued, lag in seconds)."""
        with self.cond:
            lag = time.monotonic() - self.arrivals[0] if self.arrivals else 0.0
            return (self.accepted, self.stored, collections.Counter(self.dropped), len(self.arrivals),
                    self.queued_bytes, lag)

    def call(self, fn, timeout=30):
        """Run fn() in the writer thread, ordered after everything already queued."""
        if self.thread is None or threading.current_thread() is self.thread:
            return fn()
        c = Call(fn)
        with self.cond:
            self.queue.append((None, c))
            self.cond.notify_all()
        if not c.done.wait(timeout):
            with self.cond:
                if c.state == "queued":
                    # Never answer an error for a change that is then applied: a call that has not
                    # started is withdrawn, so the 503 is true.
                    c.state = "cancelled"
                    raise errors.Unavailable("The writer is busy; retry shortly.", retry_after=2)
            c.done.wait()  # running: its answer is the truth, and a group commit is bounded
        if c.error is not None:
            raise c.error
        return c.result

    def flush(self, timeout=30):
        """Block until everything submitted before this call is stored. True on success."""
        deadline = time.monotonic() + timeout
        with self.cond:
            target = self.appended
            if self.thread is None:
                self.cond.release()
                try:
                    self._drain_inline()
                finally:
                    self.cond.acquire()
            while self.committed < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    # --- writer thread ----------------------------------------------------------

    def start(self):
        self.thread = threading.Thread(target=self._run, name="phlite-writer", daemon=True)
        self.thread.start()

    def stop(self, timeout=60):
        """Stop accepting, store what is queued, and stop the thread."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.queue

    def _take(self):
        # Bounded by bytes and by record count; a record is one request (1 to
        # thousands of events), parsed only in _store.
        items, size = [], 0
        for position, item in self.queue:
            if position is None:
                if not items:
                    items.append((position, item))
                break
            if items and (size + len(item) > BATCH_BYTES or len(items) >= self.batch_events):
                break
            items.append((position, item))
            size += len(item)
        return items

    def _run(self):
        failing_since = None
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if not self.queue:
                    return
                items = self._take()
                self.in_flight = len(items)
            try:
                ok = self._process(items)
            except Exception as e:
                # Nothing may end this thread while records wait: requests would still be
                # acknowledged (spooled) but never stored until a restart. Log, answer 503
                # until a commit succeeds, and retry.
                log.exception("writer error; retrying")
                ok = False
                with self.cond:
                    self.failure = f"writer error: {e!r}"[:300]
                    self.cond.wait(self.retry_delay)
            finally:
                with self.cond:
                    self.in_flight = 0
            if ok:
                failing_since = None
                continue
            failing_since = failing_since or time.monotonic()
            if self.stopping and time.monotonic() - failing_since > STOP_RETRY_SECONDS:
                # Stopping while the store keeps refusing writes: the queued records are in the
                # spool and are stored at the next start; do not hold the shutdown for long.
                log.warning("stopping with %d requests not stored; they stay in the spool", len(self.queue))
                return

    def _drain_inline(self):
        # Used when no thread runs (tests and CLI commands): drain synchronously.
        while self.queue:
            with self.cond:
                items = self._take()
                self.in_flight = len(items)
            try:
                if not self._process(items) and self.failure is not None:
                    return
            finally:
                self.in_flight = 0

    def _process(self, items):
        if items[0][0] is None:
            call = items[0][1]
            with self.cond:
                run = call.state == "queued"
                call.state = "running" if run else call.state
            try:
                if run:
                    with self.store.db.connection_context() if self.thread is None else contextlib.nullcontext():
                        call.result = call.fn()
            except BaseException as e:  # delivered to the caller
                call.error = e
            with self.cond:
                self.queue.popleft()
                self.cond.notify_all()
            call.done.set()
            return True
        try:
            self._store(items)
        except WRITE_ERRORS as e:
            with self.cond:
                if self.failure is None:
                    log.error("store refused a write, answering 503 until it recovers: %s", e)
                self.failure = str(e)
                if not self.stopping or self.thread is not None:
                    self.cond.wait(self.retry_delay)
            return False
        return True

    def _advance(self, records, committed, done_events):
        """`records` records at the head of the queue are stored, and the store's spool position is
        now (committed, done_events): dequeue them and wake flush()."""
        with self.cond:
            for _ in range(records):
                _, item = self.queue.popleft()
                self.arrivals.popleft()
                self.queued_bytes -= len(item)
                self.memory_bytes -= memory_weight(item)
            self.in_flight = max(0, self.in_flight - records)
            self.committed, self.done_events = committed, done_events
            if self.failure is not None:
                log.warning("store accepts writes again")
            self.failure = None
            self.cond.notify_all()
        self.spool.release(self.committed)

    def _payload(self, position, item):
        """The spooled bytes of a queued record."""
        if isinstance(item, Parsed):
            return record.encode(item.record)
        return item if isinstance(item, bytes) else self.spool.read(position, len(item))

    def _reject(self, position, payload, reason):
        """A record that cannot even be decoded: keep its bytes in spool/rejected.log (bounded) for a human."""
        path = self.spool.dir / "rejected.log"
        log.error("set aside a spool record the writer cannot read (%s) in %s", reason, path)
        try:
            if path.stat().st_size + len(payload) > REJECTED_LOG_BYTES:
                path.replace(path.with_suffix(".log.1"))  # one older generation, then gone
        except FileNotFoundError:
            pass
        with open(path, "ab") as f:
            f.write(payload + b"\n")
        self.dropped["rejected_record"] += 1

    def _store(self, items):
        """Store the records of `items` in group commits of at most commit_events events; a record
        with more is split, its progress recorded beside the spool position (done_events)."""
        now_ms = int(self.clock() * 1000)
        pending = collections.deque()
        for position, item in items:
            if isinstance(item, Parsed):
                pending.append((position, item.record))
                continue
            payload = self._payload(position, item)
            try:
                pending.append((position, record.decode(payload)))
            except Exception as e:  # noqa: BLE001 - any decoding failure: this record is unreadable
                pending.append((position, None))
                self._reject(position, payload, f"{type(e).__name__}: {e}")
        start = self.done_events
        while pending:
            parts, count = [], 0
            for position, rec in pending:
                if count >= self.commit_events:
                    break
                n = 0 if rec is None else len(rec.events)
                stop = min(n, start + self.commit_events - count)
                parts.append((position, rec, start, stop))  # rec None: rejected, only its position moves
                count += stop - start
                if stop < n:
                    break
                start = 0
            base = self.committed

            def mark_at(finished, index, parts=parts, base=base):
                # The spool mark once `finished` parts are stored and events up to `index` of the next.
                if finished < len(parts) and index > parts[finished][2]:
                    return (base if finished == 0 else parts[finished - 1][0], index)
                position, rec, _, stop = parts[finished - 1]
                if stop == (0 if rec is None else len(rec.events)):
                    return (position, 0)
                return (base if finished == 1 else parts[finished - 2][0], stop)

            done = self._commit(parts, mark_at, now_ms)
            finished = len(parts) if done is None else done[0]  # None: stored one by one, advanced as it went
            records = sum(1 for position, rec, _, stop in parts[:finished]
                          if stop == (0 if rec is None else len(rec.events)))
            if done is not None:
                self._advance(records, *mark_at(*done))
            for _ in range(records):
                pending.popleft()
            start = self.done_events

    def _commit(self, parts, mark_at, now_ms):
        """Store `parts` in one transaction, as far as its time budget lets it: (parts finished,
        index into the next) as batch.Result says; or else one event per transaction, advancing as
        each is done (None)."""
        deadline = self.monotonic() + self.commit_seconds
        try:
            result = batch.commit(self.store, self.persons, [p[1:] for p in parts], mark_at, now_ms,
                                  over_time=lambda: self.monotonic() >= deadline)
            self._record(result)
            return result.finished, result.index
        except WRITE_ERRORS:
            raise
        except Exception:
            log.exception("could not store %d events together; storing them one by one", sum(p[3] - p[2] for p in parts))
        # One event per transaction: the spool position moves with each (in the store and here), so a
        # crash or a store error resumes after the last one done, and an event that fails alone is
        # quarantined alone.
        committed = self.committed
        for position, rec, start, stop in parts:
            if rec is None:
                self._record(batch.commit(self.store, self.persons, [], (position, 0), now_ms))
                self._advance(1, position, 0)
                committed = position
                continue
            n = len(rec.events)
            if n == 0:
                self._record(batch.commit(self.store, self.persons, [], (position, 0), now_ms))
                self._advance(1, position, 0)
                committed = position
                continue
            for i in range(start, stop):
                step = (position, 0) if i + 1 == n else (committed, i + 1)
                try:
                    self._record(batch.commit(self.store, self.persons, [(rec, i, i + 1)], step, now_ms))
                except WRITE_ERRORS:
                    raise
                except Exception as e:
                    log.error("quarantined event %d of a request to project %s: %r", i, rec.project_id, e)
                    batch.quarantine(self.store, rec, i, f"{type(e).__name__}: {e}", step, now_ms)
                    self.dropped["quarantined"] += 1
                self._advance(1 if i + 1 == n else 0, *step)
                if i + 1 == n:
                    committed = position
        return None

    def _record(self, result):
        self.stored += result.stored
        if result.dropped:
            self.dropped.update(result.dropped)
            log.warning("dropped %d invalid events: %s", sum(result.dropped.values()),
                        ", ".join(f"{k}={v}" for k, v in sorted(result.dropped.items())))
