"""The one place that builds a running phlite: `open_app(config)` -> App.

The CLI, the tests and bench/ all start phlite through `open_app`, so they run the same wiring.
Nothing else constructs a service (tests/test_layout.py checks it); web handlers receive the App.
"""

import dataclasses
import time
from collections.abc import Callable

from phlite.config import Config, environ_get
from phlite.console import Console
from phlite.flags import FlagService
from phlite.ingest import Ingestion
from phlite.insights import InsightService
from phlite.lifecycle import Deleter, Forwarder
from phlite.monitor import ForwardingStats, Monitor
from phlite.query import QueryService
from phlite.ratelimit import RateLimiter
from phlite.store import Store


@dataclasses.dataclass
class App:
    config: Config
    store: Store
    ingestion: Ingestion
    flags: FlagService
    limiter: RateLimiter | None  # None: no per-project rate limit (the default)
    console: Console
    queries: QueryService
    insights: InsightService  # saved insights and dashboards (the API and the console)
    monitor: Monitor  # /healthz and /metrics
    forwarder: Forwarder  # sends forwarding projects' events on (docs/lifecycle.md "Forwarding")
    deleter: Deleter  # retention and deletions (docs/lifecycle.md "How deletion runs")
    clock: Callable[[], float] = time.time

    def close(self):
        self.deleter.stop()
        self.forwarder.stop()
        self.ingestion.stop()
        self.store.close()


def open_store(config):
    """The store alone, for admin commands that may run beside a server."""
    return Store(config.db_path)


def open_console(config):
    """The console over the store alone, for the `user` commands: (console, store to close)."""
    store = open_store(config)
    return Console(store), store


def forward_status(store, project_id=None):
    """Forwarding status from the store alone (`python app.py forward status`, beside a server)."""
    return Forwarder(store).status(project_id)


def forwarding_samples(forwarder):
    """/metrics' forwarding numbers, summed over the forwarding projects; none while no project forwards."""
    statuses = forwarder.status()
    if not statuses:
        return ()
    return ForwardingStats(pending_events=sum(s.waiting for s in statuses),
                           lag_seconds=max(s.oldest_age_seconds or 0.0 for s in statuses),
                           sent=sum(s.sent for s in statuses), failures=sum(s.failures for s in statuses)).samples()


def open_app(config, clock=time.time, start_writer=True, start_forwarder=None):
    """start_forwarder (default: as start_writer) False leaves forwarding to Forwarder.flush() (tests)."""
    # fsync=batch: commits are synced too, so a spool segment is deleted only once SQLite holds its records durably.
    store = Store(config.db_path, durable=config.fsync == "batch")
    ingestion = Ingestion(store, config, clock)
    kill = environ_get("PHLITE_FORWARD_KILL_AFTER_BATCHES")  # tests/test_lifecycle_forward.py's kill -9
    forwarder = Forwarder(store, clock=clock, batch_events=config.forward_batch_events,
                          kill_after_batches=int(kill) if kill else None)
    if start_writer:
        ingestion.start()
    if start_writer if start_forwarder is None else start_forwarder:
        forwarder.start()
    limiter = RateLimiter(config.rate_limit, clock=clock) if config.rate_limit > 0 else None
    queries = QueryService(store, clock=clock, timeout_s=config.query_timeout)
    monitor = Monitor(config, ingestion, clock=clock)
    monitor.add_source(lambda: forwarding_samples(forwarder))
    deleter = Deleter(store, ingestion, clock=clock, interval=config.retention_interval,
                      count_timeout=config.query_timeout)
    if start_writer and config.retention_interval > 0:
        deleter.start()
    return App(config=config, store=store, ingestion=ingestion, flags=FlagService(store, clock=clock), limiter=limiter,
               queries=queries, insights=InsightService(store, queries, clock=clock),
               console=Console(store, clock=clock), monitor=monitor, forwarder=forwarder, deleter=deleter, clock=clock)
