"""Forwarding: every stored event of a project also sent to a PostHog destination (docs/lifecycle.md
"Forwarding").

The writer queues each new event of a forwarding project in the outbox, in the transaction that stores
it (phlite/store/forwarding.py). The `Forwarder` thread, built in phlite/app.py, sends each project's
waiting events in stored order, one `/batch/` request at a time, and deletes them when the destination
answers 200; on any failure it waits (exponential backoff with jitter, at least the `Retry-After`) and
sends the same events again, so nothing is skipped and order holds. It never touches the ingestion
queue: a destination that is down only makes the outbox grow. `flush()` does the same work
synchronously for tests and reads time from the injected clock.
"""

import dataclasses
import logging
import os
import random
import signal
import threading
import time
from urllib.parse import urlsplit

import orjson

from phlite.lifecycle import formats
from phlite.lifecycle.client import Destination, DestinationError

log = logging.getLogger(__name__)

# Per request: up to batch_events events and this many bytes (under PostHog's 20 MiB /batch/ limit).
BATCH_BYTES = 4 * 1024 * 1024
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0  # a destination down for a day is tried every 2.5 to 5 minutes
MAX_RETRY_AFTER = 3600.0  # a larger Retry-After is taken as an hour
POLL_SECONDS = 1.0  # how soon the thread sees newly stored events
TIMEOUT = 10  # seconds one request may take before it counts as failed


class ForwardSettingError(ValueError):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


def check_destination(host, project_api_key):
    """(host, key) as stored, or raise ForwardSettingError naming the field (CLI and console)."""
    host = (host or "").strip().rstrip("/")
    key = (project_api_key or "").strip()
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or len(host) > 500:
        raise ForwardSettingError("host", "An http:// or https:// address, e.g. https://us.i.posthog.com.")
    if not key or len(key) > 200 or any(c.isspace() or not c.isprintable() for c in key):
        raise ForwardSettingError("project_api_key", "The destination project's API key (phc_...).")
    return host, key


@dataclasses.dataclass(frozen=True)
class ForwardStatus:
    """One forwarding project, for the console and /metrics. Times are epoch seconds."""
    project_id: int
    host: str
    waiting: int  # events stored and not yet acknowledged by the destination
    oldest_age_seconds: float | None  # how long the oldest of them has waited (None: nothing waits)
    backfilling: bool  # still sending events stored before forwarding was set
    sent: int  # events acknowledged, since forwarding was set
    dropped: int  # events the destination refused even alone as too large (413)
    failures: int  # failed requests, since forwarding was set
    consecutive_failures: int  # since the last success (0 while healthy)
    last_error: str | None
    last_error_at: float | None
    last_sent_at: float | None
    retry_in_seconds: float | None  # while failing: until the next attempt


class _State:
    __slots__ = ("consecutive", "next_at", "limit")

    def __init__(self, limit):
        self.consecutive = 0
        self.next_at = 0.0
        self.limit = limit


class Forwarder:
    def __init__(self, store, *, clock=time.time, batch_events=1000, timeout=TIMEOUT, rng=None,
                 kill_after_batches=None):
        self.store = store
        self.kill_after_batches = kill_after_batches  # test knob: SIGKILL after that many sends, before the ack
        self.batches_sent = 0
        self.clock = clock
        self.batch_events = max(1, batch_events)
        self.timeout = timeout
        self.rng = rng or random.Random()
        self._states = {}  # project id -> _State (backoff lives in memory: a restart retries at once)
        self._lock = threading.Lock()  # one pass at a time: the thread's or flush()'s
        self._stopping = threading.Event()
        self.thread = None

    # --- control ---

    def start(self):
        self.thread = threading.Thread(target=self._run, name="phlite-forwarder", daemon=True)
        self.thread.start()

    def stop(self):
        self._stopping.set()
        if self.thread is not None:
            self.thread.join(self.timeout + 5)  # a request in flight ends within its timeout

    def flush(self, batches=None):
        """Send what is due now (by the clock) until nothing more can be sent, or `batches` passes that
        sent something. True when nothing waits for any destination."""
        with self._lock:
            done = 0
            while (batches is None or done < batches) and self._pass():
                done += 1
        return all(s.waiting == 0 for s in self.status())

    def status(self, project_id=None):
        """[ForwardStatus] of every forwarding project (or the one asked for)."""
        now = self.clock()
        out = []
        for d in self.store.forward_destinations(project_id):
            waiting, oldest = self.store.forward_waiting(d)
            st = self._states.get(d["project_id"])
            failing = st is not None and st.consecutive > 0
            out.append(ForwardStatus(
                project_id=d["project_id"], host=d["host"], waiting=waiting,
                oldest_age_seconds=None if oldest is None or not waiting else max(0.0, now - oldest / 1000),
                backfilling=d["backfill_until"] is not None, sent=d["sent"], dropped=d["dropped"],
                failures=d["failures"], consecutive_failures=st.consecutive if st else 0,
                last_error=d["last_error"], last_error_at=_seconds(d["last_error_at"]),
                last_sent_at=_seconds(d["last_sent_at"]),
                retry_in_seconds=max(0.0, st.next_at - now) if failing else None))
        return out

    # --- the work ---

    def _run(self):
        with self.store.db.connection_context():
            while not self._stopping.is_set():
                try:
                    with self._lock:
                        busy = self._pass()
                except Exception:  # noqa: BLE001 - a store hiccup must not end the thread
                    log.exception("forwarding: error; retrying")
                    busy = False
                if not busy:
                    self._stopping.wait(POLL_SECONDS)

    def _pass(self):
        """One batch for every destination that is due; True if any events moved."""
        now = self.clock()
        moved = False
        destinations = self.store.forward_destinations()
        for pid in set(self._states) - {d["project_id"] for d in destinations}:
            del self._states[pid]
        for dest in destinations:
            st = self._states.setdefault(dest["project_id"], _State(self.batch_events))
            if now >= st.next_at and self._send(dest, st, now):
                moved = True
        return moved

    def _send(self, dest, st, now):
        pid = dest["project_id"]
        phase, rows = self.store.forward_batch(dest, st.limit, BATCH_BYTES)
        if not rows:
            return False
        batch, last = [], None
        for event_id, uuid, name, distinct_id, properties, timestamp in rows:
            if uuid is None:  # deleted since it was stored (a person deleted with its events): skip it
                last = event_id
                continue
            # As stored: uuid and timestamp kept (the destination dedupes a resent event), properties
            # with $set, $set_once, $groups and $ip, no sent_at (no clock-skew correction).
            batch.append({"uuid": uuid, "event": name, "distinct_id": distinct_id,
                          "timestamp": formats.iso(timestamp), "properties": orjson.Fragment(properties)})
            last = event_id
        dropped = 0
        if batch:
            try:
                Destination(dest["host"], dest["project_api_key"], None, max_attempts=1, timeout=self.timeout,
                            user_agent="phlite-forward").send_batch(batch, historical=phase == "backfill")
                self.batches_sent += 1
                if self.kill_after_batches and self.batches_sent >= self.kill_after_batches:
                    os.kill(os.getpid(), signal.SIGKILL)  # the worst moment: sent, and not yet forgotten
            except DestinationError as e:
                if e.status != 413 or len(batch) > 1:
                    return self._failed(dest, st, now, e, batch)
                # One event the destination will never take: set aside (counted) rather than block the rest.
                log.error("forwarding project %s: the destination refuses event %s as too large; dropped it",
                          pid, batch[0]["uuid"])
                dropped, batch = 1, []
        self.store.forward_ack(pid, phase, last, len(batch), dropped, int(now * 1000))
        # After a 413 the batch grows back by doubling: the next events are likely as large.
        st.consecutive, st.next_at, st.limit = 0, 0.0, min(self.batch_events, st.limit * 2)
        return True

    def _failed(self, dest, st, now, error, batch=()):
        pid = dest["project_id"]
        self.store.forward_failed(pid, str(error), int(now * 1000))
        if error.status == 413:  # too big: send half as many, at once
            st.limit = max(1, min(st.limit, len(batch)) // 2)
            return True
        st.consecutive += 1
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (st.consecutive - 1)) * self.rng.uniform(0.5, 1.0)
        if error.retry_after:
            delay = max(delay, min(error.retry_after, MAX_RETRY_AFTER))
        st.next_at = now + delay
        log.warning("forwarding project %s to %s failed (%d in a row), next try in %.0f s: %s",
                    pid, dest["host"], st.consecutive, delay, error)
        return False


def _seconds(ms):
    return None if ms is None else ms / 1000
