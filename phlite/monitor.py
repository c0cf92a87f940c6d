"""What an operator watches: `/healthz`'s verdict and `/metrics`'s numbers (docs/operations.md "Metrics").

`Monitor` is built in phlite/app.py with the services it reads. Request counts and latencies are recorded
by the web layer through a `RouteStats` per route (a few increments in the thread's own cell: it runs on
every `/capture` and `/flags` request); everything else is read when `/metrics` is scraped, from the owners
that already count it (ingestion's `stats()`, the data dir's disk), and from any `Source` added with
`add_source` (the forwarder's `ForwardingStats`, for one).

The Prometheus text format (version 0.0.4) is written here by hand: phlite's metrics are a few
counters and gauges and one histogram family, and prometheus_client's histogram costs about 5x ours
per request (docs/operations.md "Metrics"). tests/test_ops.py reads the output with
prometheus_client's own parser.
"""

import bisect
import dataclasses
import math
import os
import shutil
import threading
import time
from threading import get_ident
from collections.abc import Callable, Iterable

from phlite import __version__

# Request latency buckets (seconds): an idle capture answers in about a millisecond, a query may run
# up to query_timeout (10 s).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class Sample:
    """One number of /metrics. `name` is written after "phlite_"; a counter's ends in "_total"."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    value: float
    labels: tuple = ()  # ((label, value), ...)


Source = Callable[[], Iterable[Sample]]


@dataclasses.dataclass(frozen=True)
class ForwardingStats:
    """What the forwarder reports: App wires `lambda: forwarder.stats().samples()` as a source."""

    pending_events: int  # stored, not yet accepted by the destination
    lag_seconds: float  # how long the oldest pending event has waited (0 when none)
    sent: int  # events the destination accepted, since start
    failures: int  # failed delivery attempts, since start

    def samples(self):
        yield Sample("forwarding_pending_events", "gauge", "Stored events not yet accepted by the forwarding destination.",
                     self.pending_events)
        yield Sample("forwarding_lag_seconds", "gauge", "Age of the oldest event waiting to be forwarded.",
                     self.lag_seconds)
        yield Sample("forwarding_sent_events_total", "counter", "Events the forwarding destination accepted.", self.sent)
        yield Sample("forwarding_failures_total", "counter", "Failed forwarding attempts.", self.failures)


class RouteStats:
    """One route's requests: counts by status and a latency histogram.

    Each server thread counts into a cell of its own, so `record` takes no lock (about 0.4 us less on every
    request); `snapshot` adds the cells up. A scrape may miss a request being counted at that instant, never
    count one twice, and the histogram's count is its buckets' total, so the two always agree."""

    __slots__ = ("method", "route", "_cells", "_lock")

    def __init__(self, method, route):
        self.method, self.route = method, route
        self._cells = {}  # thread id -> ([per bucket, not cumulative; the last is +Inf], [sum], {status: n})
        self._lock = threading.Lock()  # for adding a cell while a scrape reads them

    def record(self, seconds, status):
        cell = self._cells.get(get_ident())
        if cell is None:
            with self._lock:
                cell = self._cells[get_ident()] = ([0] * (len(BUCKETS) + 1), [0.0], {})
        buckets, total, statuses = cell
        buckets[bisect.bisect_left(BUCKETS, seconds)] += 1  # le: a value equal to a bound counts in it
        total[0] += seconds
        statuses[status] = statuses.get(status, 0) + 1

    def snapshot(self):
        """(buckets, sum, count, {status: n}) over every thread."""
        with self._lock:
            cells = list(self._cells.values())
        buckets, total, statuses = [0] * (len(BUCKETS) + 1), 0.0, {}
        for b, t, st in cells:
            for i, n in enumerate(list(b)):
                buckets[i] += n
            total += t[0]
            for status, n in list(st.items()):
                statuses[status] = statuses.get(status, 0) + n
        return buckets, total, sum(buckets), statuses


class Monitor:
    def __init__(self, config, ingestion, clock=time.time):
        self.config = config
        self.ingestion = ingestion
        self.clock = clock
        self.started = clock()
        self._routes = {}
        self._routes_lock = threading.Lock()
        self._sources: list[Source] = [self._ingestion_samples, self._disk_samples]

    # --- /healthz -----------------------------------------------------------------------------

    def disk_free(self):
        """Free bytes on the data dir's filesystem, or None when it cannot be read."""
        try:
            return shutil.disk_usage(self.config.data_dir).free
        except OSError:
            return None

    def health(self):
        """/healthz's answer: {"status", "ready", "writer", "reason", "disk_free_bytes", "disk_min_free_bytes"}.
        status is "ok" only when capture would be stored and the disk has its margin."""
        health = dict(self.ingestion.health())
        ready = health["writer"] in ("running", "failing")  # started, not stopping
        free, floor = self.disk_free(), self.config.health_min_free_bytes
        reason = health["reason"]
        if reason is None and floor and (free is None or free < floor):
            reason = ("Cannot read the free space of the data dir's disk" if free is None else
                      f"Only {free // 2**20} MiB free on the data dir's disk (health_min_free_bytes is {floor // 2**20} MiB)")
        health.update(status="unavailable" if reason else "ok", ready=ready, reason=reason, disk_free_bytes=free,
                      disk_min_free_bytes=floor)
        return health

    # --- /metrics -----------------------------------------------------------------------------

    def route(self, method, route):
        """The RouteStats of one (method, route rule), made once when the route is set up."""
        key = (method, route)
        with self._routes_lock:
            stats = self._routes.get(key)
            if stats is None:
                stats = self._routes[key] = RouteStats(method, route)
            return stats

    def add_source(self, source: Source):
        self._sources.append(source)

    def _ingestion_samples(self):
        s = self.ingestion.stats()
        yield Sample("events_accepted_total", "counter", "Events acknowledged to clients (spooled).", s.accepted)
        yield Sample("events_stored_total", "counter", "Events stored in the database.", s.stored)
        for reason, n in sorted(s.dropped.items()):
            yield Sample("events_dropped_total", "counter", "Events the writer refused, by reason.", n,
                         (("reason", reason),))
        yield Sample("events_quarantined_total", "counter", "Events that could not be stored, set aside in quarantine.",
                     s.quarantined)
        yield Sample("queue_requests", "gauge", "Acknowledged requests not yet stored.", s.queued_records)
        yield Sample("queue_bytes", "gauge", "Bytes of acknowledged requests not yet stored.", s.queued_bytes)
        yield Sample("queue_max_bytes", "gauge", "queue_max_bytes: past it capture answers 503.", s.queue_max_bytes)
        yield Sample("writer_lag_seconds", "gauge", "How long the oldest request not yet stored has waited.",
                     s.lag_seconds)
        yield Sample("writer_healthy", "gauge", "1 while the writer runs and the store accepts writes.",
                     1 if s.writer == "running" else 0)
        yield Sample("spool_segments", "gauge", "Spool files on disk.", s.spool_segments)
        yield Sample("spool_bytes", "gauge", "Bytes of spool files on disk.", s.spool_bytes)

    def _disk_samples(self):
        free = self.disk_free()
        if free is not None:
            yield Sample("disk_free_bytes", "gauge", "Free bytes on the data dir's filesystem.", free)
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += os.stat(f"{self.config.db_path}{suffix}").st_size
            except OSError:
                pass
        yield Sample("database_bytes", "gauge", "Bytes of phlite.db with its WAL and shared-memory files.", size)

    def _process_samples(self):
        yield Sample("info", "gauge", "phlite's version.", 1, (("version", __version__),))
        yield Sample("uptime_seconds", "gauge", "Seconds since this phlite started.", self.clock() - self.started)
        rss = _rss_bytes()
        if rss is not None:
            yield Sample("process_resident_memory_bytes", "gauge", "Resident memory of the process.", rss)
        t = os.times()
        yield Sample("process_cpu_seconds_total", "counter", "CPU time of the process (user and system).",
                     t.user + t.system)
        try:
            yield Sample("process_open_fds", "gauge", "Open file descriptors.", len(os.listdir("/proc/self/fd")))
        except OSError:
            pass

    def exposition(self):
        """/metrics's body, in the Prometheus text format."""
        out = []
        families = {}  # name -> (kind, help, [lines]) in first-seen order
        for source in (self._process_samples, *self._sources):
            for s in source():
                name = "phlite_" + s.name
                family = families.setdefault(name, (s.kind, s.help, []))
                family[2].append(f"{name}{_labels(s.labels)} {_number(s.value)}")
        for name, (kind, help_, lines) in families.items():
            out.append(f"# HELP {name} {_escape_help(help_)}\n# TYPE {name} {kind}\n")
            out.extend(line + "\n" for line in lines)
        out.extend(self._request_families())
        return "".join(out).encode()

    def _request_families(self):
        with self._routes_lock:
            routes = sorted(self._routes.values(), key=lambda r: (r.route, r.method))
        counts, hist = [], []
        for r in routes:
            buckets, total, count, statuses = r.snapshot()
            if not count:
                continue
            base = (("method", r.method), ("route", r.route))
            for status, n in sorted(statuses.items()):
                counts.append(f"phlite_requests_total{_labels(base + (('status', str(status)),))} {n}\n")
            running = 0
            for bound, n in zip((*BUCKETS, math.inf), buckets):
                running += n
                le = "+Inf" if bound == math.inf else repr(bound)
                hist.append(f"phlite_request_duration_seconds_bucket{_labels(base + (('le', le),))} {running}\n")
            hist.append(f"phlite_request_duration_seconds_sum{_labels(base)} {_number(total)}\n")
            hist.append(f"phlite_request_duration_seconds_count{_labels(base)} {count}\n")
        return ["# HELP phlite_requests_total HTTP requests answered, by route and status.\n"
                "# TYPE phlite_requests_total counter\n", *counts,
                "# HELP phlite_request_duration_seconds Time from routing to the handler's answer "
                "(a streamed body excluded).\n# TYPE phlite_request_duration_seconds histogram\n", *hist]


def _rss_bytes():
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs):
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs) + "}"
