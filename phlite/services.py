"""Builds the long-lived parts of a running phlite (store, spool, writer) from a Config.

The CLI and the tests both start phlite through `open_services`, so they run the same
wiring. Processors are the writer's per-batch steps (person and group effects).
"""

import dataclasses
import time

from phlite.config import Config
from phlite.flags import FlagService
from phlite.persons import PersonProcessor
from phlite.ratelimit import RateLimiter
from phlite.spool import Spool
from phlite.store import Store
from phlite.writer import Writer


@dataclasses.dataclass
class Services:
    config: Config
    store: Store
    writer: Writer
    flags: FlagService
    clock: object = time.time
    # Filled by later features (rate limiter, ...).
    extras: dict = dataclasses.field(default_factory=dict)

    def close(self):
        self.writer.stop()
        self.writer.spool.close()
        self.store.close()


def writer_processors():
    """The writer's per-batch steps, in order. Person processing registers here."""
    return [PersonProcessor()]


def open_services(config, clock=time.time, start_writer=True):
    store = Store(config.db_path)
    spool = Spool(config.spool_dir, config.spool_segment_bytes)
    writer = Writer(
        store, spool,
        max_bytes=config.queue_max_bytes,
        batch_events=config.writer_batch_events,
        clock=clock,
        processors=writer_processors(),
    )
    if start_writer:
        writer.start()
    extras = {"rate_limiter": RateLimiter(config.rate_limit, clock=clock)} if config.rate_limit > 0 else {}
    return Services(config=config, store=store, writer=writer, flags=FlagService(store, clock=clock), clock=clock,
                    extras=extras)
