"""phlite's one SQLite store: every table and every query lives in this package.

`Store` is composed of one mixin per area (projects and keys, events, ...), each in
its own module; they share `self.db`. Only this package imports peewee.
"""

import threading

import peewee

from phlite.store.db import migrate, open_database
from phlite.store.events import EventsMixin
from phlite.store.flags import FlagsMixin
from phlite.store.persons import PersonsMixin
from phlite.store.projects import ProjectsMixin

# The errors callers may need to catch, without importing peewee themselves.
DatabaseError = peewee.DatabaseError
OperationalError = peewee.OperationalError


class Store(ProjectsMixin, EventsMixin, PersonsMixin, FlagsMixin):
    def __init__(self, path):
        self.path = path
        self.db = open_database(path)
        self._lock = threading.Lock()
        with self.db.connection_context():
            migrate(self.db)
        self._init_caches()

    def _init_caches(self):
        for base in type(self).__mro__:
            init = base.__dict__.get("_init_cache")
            if init:
                init(self)

    def transaction(self):
        """A write transaction taking SQLite's write lock at BEGIN."""
        return self.db.atomic("IMMEDIATE")

    def close(self):
        self.db.close()
