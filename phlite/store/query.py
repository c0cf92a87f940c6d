"""Running a translated query: read-only, bounded in time and rows, on its own connections.

The SQL comes from phlite.query (already scoped to one project). Three walls stand behind that
translation: the connection is opened read-only (`mode=ro`, `query_only`), an authorizer lets it read
only the tables the query package exposes and call only known functions, and a progress handler stops
it at its deadline (docs/insights.md "Limits").
"""

import sqlite3
import threading
import time

from phlite import errors

# Functions SQLite itself provides that a translated query may call.
NATIVE_FUNCTIONS = frozenset({
    "count", "sum", "avg", "min", "max", "total", "coalesce", "nullif", "lower", "upper", "length", "trim",
    "replace", "round", "abs", "floor", "ceil", "json_array", "json_extract", "->", "->>", "iif", "cast", "like",
})
MMAP_BYTES = 4 << 30  # address space, not memory: the OS keeps what fits of the file's pages
PROGRESS_STEPS = 10_000  # SQLite VM instructions between deadline checks (~1 ms)


class QueryTimeout(errors.BadRequest):
    code = "timeout_exceeded"


class QueryMixin:
    def _init_cache(self):
        # Idle query connections, the most recently used last: a query takes the warmest one whatever
        # thread runs it. Each connection maps the file on its own, and a fresh mapping pays a page fault
        # per page it reads (~30 ms more for a count over 750,000 index entries), so reusing the last
        # one beats a connection per server thread.
        self._query_idle = []  # (key, connection)
        self._query_conns = []  # every query connection, closed with the store
        self._query_conns_lock = threading.Lock()

    def close_query_connections(self):
        with self._query_conns_lock:
            conns, self._query_conns, self._query_idle = self._query_conns, [], []
        for conn in conns:
            conn.close()

    def _query_connection(self, functions, tables):
        key = (id(functions), tables)
        with self._query_conns_lock:
            for i in range(len(self._query_idle) - 1, -1, -1):
                if self._query_idle[i][0] == key:
                    return key, self._query_idle.pop(i)[1]
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                               cached_statements=64)
        conn.execute("PRAGMA query_only = 1")
        conn.execute("PRAGMA case_sensitive_like = 1")  # HogQL's LIKE is case-sensitive
        conn.execute("PRAGMA cache_size = -32000")
        # Insights scan whole time ranges of event rows: reading them through a memory map instead of
        # copying each page into the page cache halved such scans (docs/insights.md "Fast on SQLite").
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        scalars, aggregates = functions
        for name, (nargs, f) in scalars.items():
            conn.create_function(name, nargs, f, deterministic=True)
        for name, (nargs, cls) in aggregates.items():
            conn.create_aggregate(name, nargs, cls)
        allowed_functions = NATIVE_FUNCTIONS | set(scalars) | set(aggregates)

        def authorize(action, arg1, arg2, db, trigger):
            if action == sqlite3.SQLITE_SELECT:
                return sqlite3.SQLITE_OK
            if action == sqlite3.SQLITE_READ:
                # db is None when SQLite reads a table without naming a column (count(*), joins).
                ok = arg1 in tables and db in ("main", None) or (
                    arg1 == "sqlite_master" and arg2 == "ROWID" and "json_each" in tables)  # json_each's constructor
            elif action == sqlite3.SQLITE_FUNCTION:
                ok = bool(arg2) and arg2.lower() in allowed_functions
            elif action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and "json_each" in tables:
                # Constructing the json_each virtual table asks this; the connection is read-only anyway.
                ok = True
            else:
                ok = False  # ATTACH, PRAGMA, writes, temp objects, transactions...
            return sqlite3.SQLITE_OK if ok else sqlite3.SQLITE_DENY

        conn.set_authorizer(authorize)
        with self._query_conns_lock:
            self._query_conns.append(conn)
        return key, conn

    def run_read_query(self, sql, *, functions, tables, timeout_s, max_rows):
        """(column names, rows) of one SELECT; at most max_rows rows. Raises QueryTimeout past
        timeout_s, errors.BadRequest if SQLite refuses the statement."""
        key, conn = self._query_connection(functions, tables)
        deadline = time.monotonic() + timeout_s
        timed_out = []

        def progress():
            if time.monotonic() > deadline:
                timed_out.append(True)
                return 1
            return 0

        conn.set_progress_handler(progress, PROGRESS_STEPS)
        try:
            cur = conn.execute(sql)
            rows = cur.fetchmany(max_rows)
            names = [d[0] for d in cur.description or ()]
            cur.close()
            return names, rows
        except sqlite3.OperationalError as e:
            if timed_out:
                raise QueryTimeout(f"Query exceeded the time limit of {timeout_s:g} s.") from None
            raise errors.BadRequest(f"Query failed: {e}.", code="invalid") from None
        except sqlite3.DatabaseError as e:
            raise errors.BadRequest(f"Query failed: {e}.", code="invalid") from None
        finally:
            conn.set_progress_handler(None, 0)
            with self._query_conns_lock:
                if conn in self._query_conns:  # not closed meanwhile (close_query_connections)
                    self._query_idle.append((key, conn))
