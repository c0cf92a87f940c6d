"""The SQLite database: opening it with the right pragmas, and numbered migrations.

The only place that creates the peewee database object. Each thread gets its own
connection (peewee keeps connection state thread-local); the writer thread owns all
event writes, request threads read (WAL lets them read while it writes).
"""

import importlib
import logging
import pkgutil
import time

import peewee

from phlite.errors import StartupError

log = logging.getLogger(__name__)

# synchronous=NORMAL in WAL survives a process crash (kill -9) without an fsync per
# commit; a power cut may lose the last commits, but never corrupts (docs/design.md "Durability costs").
PRAGMAS = {
    # First, so that it is set before a new database's first table: freed pages can then be given back
    # a few at a time (docs/lifecycle.md "Giving the space back"). On an existing database it is a no-op.
    "auto_vacuum": "incremental",
    "journal_mode": "wal",
    "synchronous": "normal",
    "cache_size": -16000,  # 16 MB per connection: RSS matters on a small VPS.
    "temp_store": "memory",
    "foreign_keys": 0,
}


def open_database(path, durable=False):
    """durable: synchronous=FULL, every commit fsynced (the `fsync` setting at batch: a committed
    spool position must survive a power cut, since the spool segments behind it are then deleted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pragmas = {**PRAGMAS, "synchronous": "full"} if durable else PRAGMAS
    # timeout is SQLite's busy timeout: a request thread that writes (a flag edit)
    # waits for the writer's group commit instead of failing.
    return peewee.SqliteDatabase(str(path), pragmas=pragmas, timeout=10)


def path_of(db):
    return db.database


def _migration_modules():
    from phlite.store import migrations

    names = sorted(m.name for m in pkgutil.iter_modules(migrations.__path__) if m.name.startswith("m"))
    mods = [importlib.import_module(f"phlite.store.migrations.{n}") for n in names]
    versions = [m.VERSION for m in mods]
    if len(set(versions)) != len(versions) or versions != sorted(versions):
        raise RuntimeError(f"migration versions must be unique and ordered: {names}")
    return mods


def migrate(db, upto=None):
    """Apply every migration not yet recorded (up to version `upto`), each in its own transaction."""
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_migration ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    done = {row[0] for row in db.execute_sql("SELECT version FROM schema_migration")}
    mods = _migration_modules()
    unknown = sorted(done - {m.VERSION for m in mods})
    if unknown:
        # Written by a newer phlite: its schema may mean things this build would get wrong. Refuse.
        raise StartupError(f"{path_of(db)} was written by a newer phlite (schema migrations {unknown} are unknown "
                           f"to this version, which knows up to {mods[-1].VERSION}); upgrade phlite to open it")
    for mod in mods:
        if mod.VERSION in done or (upto is not None and mod.VERSION > upto):
            continue
        with db.atomic("IMMEDIATE"):
            for statement in mod.STATEMENTS:
                db.execute_sql(statement)
            db.execute_sql(
                "INSERT INTO schema_migration (version, name, applied_at) VALUES (?, ?, ?)",
                (mod.VERSION, mod.__name__.rsplit(".", 1)[-1], int(time.time() * 1000)),
            )
        log.info("applied migration %s", mod.__name__.rsplit(".", 1)[-1])
