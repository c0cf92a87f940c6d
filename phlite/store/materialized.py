"""Materialized property columns: event properties copied into their own columns of `event` at insert,
so a query that names one reads a short column instead of parsing every row's JSON
(docs/insights.md "Materialized columns").

The registry is the `materialized_property` table: property -> column, and how far its backfill went.
The writer fills every registered column (`event_rows` here computes the values); a query uses a
column only once its backfill is done (`ready_materialized`). A column is added by migration m0006
(the defaults) or by `python app.py materialize PROPERTY` (`add_materialized`), beside a running
server: the writer notices the new column at its next transaction (the schema version changed) and
fills it from then on; the backfill fills the older rows, a bounded batch per transaction.
"""

import logging
import re
import time

import orjson

log = logging.getLogger(__name__)

BACKFILL_BATCH = 5_000  # rows per backfill transaction: each holds the write lock for tens of ms
_OPT = orjson.OPT_NON_STR_KEYS
_COLUMN = re.compile(r"mp_[a-z0-9_]{1,50}")  # what column_name makes


def value(props, key):
    """The stored value of property `key` of a properties dict: what HogQL reads from the JSON
    (docs/insights.md "Value rules"): a string as itself ('' and 'null' are NULL), anything else
    as its JSON text, NULL when absent or null."""
    v = props.get(key)
    if v is None:
        return None
    if v.__class__ is str:
        return None if v == "" or v == "null" else v
    return orjson.dumps(v, option=_OPT).decode()


def values(props, keys):
    """(value(props, k) for k in keys) as a tuple, or None when every one is NULL; at the writer's
    speed: most values are absent or plain strings, which pass through as they are."""
    out = tuple(map(props.get, keys))
    some = False
    for v in out:
        if v is not None:
            if v.__class__ is not str or v == "" or v == "null":
                out = tuple(value(props, k) for k in keys)
                return out if any(v is not None for v in out) else None
            some = True
    return out if some else None


class _FromText:
    """ph_materialize(properties text, key) for the backfill: one parse per row, however many keys."""

    def __init__(self):
        self.text, self.props = None, {}

    def __call__(self, text, key):
        if text != self.text:
            self.text = text
            try:
                props = orjson.loads(text)
            except orjson.JSONDecodeError:
                props = {}
            self.props = props if isinstance(props, dict) else {}
        return value(self.props, key)


def column_name(prop, taken):
    base = "mp_" + (re.sub(r"[^a-z0-9]+", "_", prop.lower()).strip("_")[:40] or "p")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


class MaterializedMixin:
    def _init_cache(self):
        self._mat_schema = None  # the schema version the cached columns were read at
        self._mat_columns = ()  # ((property, column), ...) the writer fills
        self._mat_insert = None

    # the writer's side

    def materialized_columns(self):
        """((property, column), ...) every row inserted now must fill, in the caller's connection;
        re-read when the schema changed (a `materialize` in another process added one)."""
        version = self.db.execute_sql("PRAGMA schema_version").fetchone()[0]
        if version != self._mat_schema:
            rows = self.db.execute_sql(
                "SELECT property, column_name FROM materialized_property ORDER BY rowid").fetchall()
            self._mat_columns = tuple((p, c) for p, c in rows if _COLUMN.fullmatch(c))
            cols = "".join(f", {c}" for _p, c in self._mat_columns)
            marks = ", ?" * len(self._mat_columns)
            self._mat_insert = (
                "INSERT OR IGNORE INTO event"
                f" (project_id, uuid, event, distinct_id, properties, timestamp, created_at, person_id{cols})"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?{marks})")
            self._mat_schema = version
        return self._mat_columns

    def _event_insert_sql(self):
        self.materialized_columns()
        return self._mat_insert

    # the query side

    def ready_materialized(self):
        """{property: column} of the columns whose backfill is done: the ones a query may read."""
        rows = self.db.execute_sql(
            "SELECT property, column_name FROM materialized_property WHERE todo_from > todo_to").fetchall()
        return {p: c for p, c in rows if _COLUMN.fullmatch(c)}  # names go into SQL: only ours

    def list_materialized(self):
        rows = self.db.execute_sql(
            "SELECT property, column_name, todo_from, todo_to, created_at FROM materialized_property"
            " ORDER BY rowid").fetchall()
        return [{"property": p, "column": c, "ready": f > t, "todo_rows": max(0, t - f + 1), "created_at": at}
                for p, c, f, t, at in rows]

    # adding and backfilling

    def add_materialized(self, prop, now_ms=None):
        """Register a column for property `prop` (idempotent); returns its column name. Rows already
        stored are filled by `backfill_materialized`; rows stored from now on by the writer."""
        if not isinstance(prop, str) or not prop or len(prop) > 200:
            raise ValueError("a property name is 1 to 200 characters")
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self.db.atomic("IMMEDIATE"):
            row = self.db.execute_sql("SELECT column_name FROM materialized_property WHERE property = ?",
                                      (prop,)).fetchone()
            if row:
                return row[0]
            taken = {r[1] for r in self.db.execute_sql("PRAGMA table_info(event)").fetchall()}
            name = column_name(prop, taken)
            self.db.execute_sql(f"ALTER TABLE event ADD COLUMN {name} TEXT")
            # Rows up to the current last id are the backfill's; later ones are written by a writer
            # that knows the column (it takes the write lock after this commit, and re-reads the schema).
            self.db.execute_sql(
                "INSERT INTO materialized_property (property, column_name, todo_from, todo_to, created_at)"
                " VALUES (?, ?, 1, (SELECT coalesce(max(id), 0) FROM event), ?)", (prop, name, now_ms))
        return name

    def backfill_materialized(self, batch=BACKFILL_BATCH, progress=None):
        """Fill the registered columns of rows stored before they existed, `batch` rows per
        transaction; resumable (the registry records how far it got). Returns rows filled.
        `progress(done, total)` is called after each batch."""
        if not self.db.execute_sql("SELECT 1 FROM materialized_property WHERE todo_from <= todo_to LIMIT 1").fetchone():
            return 0  # nothing to fill: no write lock taken (every store open, read-only commands too, asks)
        conn = self.db.connection()
        conn.create_function("ph_materialize", 2, _FromText(), deterministic=True)
        done = 0
        while True:
            with self.db.atomic("IMMEDIATE"):
                # Read inside the write transaction: another process (the server, a second
                # `materialize`) may be filling the same rows; each batch then moves only forward.
                rows = self.db.execute_sql(
                    "SELECT property, column_name, todo_from, todo_to FROM materialized_property"
                    " WHERE todo_from <= todo_to ORDER BY todo_from, rowid").fetchall()
                if not rows:
                    return done
                # Columns at the same point are filled together: one parse of each row's JSON for all.
                lo = rows[0][2]
                group = [r for r in rows if r[2] == lo]
                hi = min(lo + batch - 1, min(r[3] for r in group))
                sets = ", ".join(f"{c} = ph_materialize(properties, ?)" for _p, c, _f, _t in group)
                cur = self.db.execute_sql(f"UPDATE event SET {sets} WHERE id BETWEEN ? AND ?",
                                          [p for p, *_ in group] + [lo, hi])
                self.db.execute_sql(
                    f"UPDATE materialized_property SET todo_from = ? WHERE property IN ({', '.join('?' * len(group))})",
                    [hi + 1] + [p for p, *_ in group])
            done += max(cur.rowcount, 0)
            if progress:
                progress(done, sum(max(0, r[3] - r[2] + 1) for r in rows))
