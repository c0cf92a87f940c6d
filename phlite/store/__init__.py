"""phlite's one SQLite store: every table and every query lives in this package.

`Store` is composed of one mixin per area (projects and keys, events, ...), each in
its own module; they share `self.db`. Only this package imports peewee.
"""

import logging
import sqlite3
import threading

import peewee

from phlite.store.backup import backup_database, verify_database  # noqa: F401 (the face)
from phlite.store.console import ConsoleMixin
from phlite.store.db import migrate, open_database
from phlite.store.deletion import DeletionMixin
from phlite.store.events import EventsMixin
from phlite.store.flags import FlagsMixin
from phlite.store.insights import InsightsMixin
from phlite.store.forwarding import ForwardingMixin
from phlite.store.lifecycle import LifecycleMixin
from phlite.store.materialized import MaterializedMixin
from phlite.store.persons import PersonsMixin
from phlite.store.projects import ProjectsMixin
from phlite.store.query import QueryMixin
from phlite.store.rollups import RollupsMixin

log = logging.getLogger(__name__)


def _log_backfill(done, total):
    if done % 100_000 < 5_000:
        log.info("materialized columns: filling stored events, %d done, about %d to go", done, total)


# The errors callers may need to catch, without importing peewee themselves.
DatabaseError = peewee.DatabaseError
OperationalError = peewee.OperationalError
# What means "the store refuses writes now" (retry the same work later), as opposed to "this data
# cannot be stored": peewee's errors, and the driver's OperationalError (locked, full, I/O) from code
# that writes through the raw connection (executemany).
WRITE_ERRORS = (peewee.DatabaseError, sqlite3.OperationalError)


class Store(ProjectsMixin, EventsMixin, PersonsMixin, FlagsMixin, InsightsMixin, QueryMixin, LifecycleMixin,
            ConsoleMixin, ForwardingMixin, DeletionMixin, MaterializedMixin, RollupsMixin):
    def __init__(self, path, durable=False):
        self.path = path
        self.db = open_database(path, durable=durable)
        self._lock = threading.Lock()
        with self.db.connection_context():
            migrate(self.db)
        self._init_caches()
        with self.db.connection_context():
            # Columns a migration (or an interrupted `materialize`) added: fill the rows stored before.
            filled = self.backfill_materialized(progress=_log_backfill)
            if filled:
                log.info("materialized columns: filled %d stored events", filled)

    def _init_caches(self):
        for base in type(self).__mro__:
            init = base.__dict__.get("_init_cache")
            if init:
                init(self)

    def transaction(self):
        """A write transaction taking SQLite's write lock at BEGIN."""
        return _Transaction(self.db.atomic("IMMEDIATE"), self)

    def close(self):
        self.close_query_connections()
        self.db.close()


class _Transaction:
    # On some errors (a full disk, an I/O error) SQLite rolls the transaction back by itself;
    # peewee's ROLLBACK then fails with "cannot rollback - no transaction is active", which
    # stood in for the error that matters in the writer's log and 503 answer. Raise that one,
    # as peewee's type (store code that uses the raw connection raises the driver's).
    def __init__(self, atomic, store):
        self._atomic = atomic
        self._store = store

    def __enter__(self):
        return self._atomic.__enter__()

    def __exit__(self, exc_type, exc, tb):
        try:
            return self._exit(exc_type, exc, tb)
        finally:
            if not self._atomic.db.in_transaction():
                self._store._after_transaction()  # committed (or rolled back): persons may have moved

    def _exit(self, exc_type, exc, tb):
        try:
            return self._atomic.__exit__(exc_type, exc, tb)
        except peewee.OperationalError as e:
            if self._atomic.db.in_transaction():
                raise
            cause = e
            while cause is not None and (not isinstance(cause, (sqlite3.Error, peewee.PeeweeException))
                                         or "no transaction is active" in str(cause)):
                cause = cause.__context__
            if cause is None:
                raise
            if not isinstance(cause, peewee.DatabaseError):
                cls = getattr(peewee, type(cause).__name__, None)
                if not (isinstance(cls, type) and issubclass(cls, peewee.DatabaseError)):
                    cls = peewee.DatabaseError
                cause = cls(*cause.args)
            raise cause from None
