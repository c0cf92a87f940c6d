"""The one place that builds a running phlite: `open_app(config)` -> App.

The CLI, the tests and bench/ all start phlite through `open_app`, so they run the same wiring.
Nothing else constructs a service (tests/test_layout.py checks it); web handlers receive the App.
"""

import dataclasses
import fcntl
import os
import time
from collections.abc import Callable

from phlite.config import Config
from phlite.flags import FlagService
from phlite.ingest import Ingestion
from phlite.ratelimit import RateLimiter
from phlite.store import Store


@dataclasses.dataclass
class App:
    config: Config
    store: Store
    ingestion: Ingestion
    flags: FlagService
    limiter: RateLimiter | None  # None: no per-project rate limit (the default)
    clock: Callable[[], float] = time.time

    def close(self):
        self.ingestion.stop()
        self.store.close()


def open_store(config):
    """The store alone, for admin commands that may run beside a server."""
    return Store(config.db_path)


def lock_data_dir(config):
    """Hold the data dir's ingestion lock for this process's life; SystemExit if another process
    holds it. The server and `import` each run a writer over the one spool: two at once would
    replay and release each other's records. Read-only commands (export) need no lock. The kernel
    drops the lock when the process ends, kill -9 included."""
    path = os.path.join(str(config.data_dir), "phlite.lock")
    os.makedirs(str(config.data_dir), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(f"phlite: another phlite process is using {config.data_dir} (its server, or an import);"
                         " stop it first") from None
    return fd


def open_app(config, clock=time.time, start_writer=True):
    store = Store(config.db_path)
    ingestion = Ingestion(store, config, clock)
    if start_writer:
        ingestion.start()
    limiter = RateLimiter(config.rate_limit, clock=clock) if config.rate_limit > 0 else None
    return App(config=config, store=store, ingestion=ingestion, flags=FlagService(store, clock=clock), limiter=limiter,
               clock=clock)
