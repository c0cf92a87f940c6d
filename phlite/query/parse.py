"""HogQL text -> a sqlglot tree (the dialect, literals, `{placeholders}`), and the scopes names resolve in.
Pure; the compiler is hogql.py (statements, sources, names) with operators.py (expressions)."""

import dataclasses
import re

import sqlglot
from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import ParseError, TokenError

from phlite import errors
from phlite.query.tables import HIDDEN

DEFAULT_LIMIT = 100
MAX_LIMIT = 50_000  # PostHog's MAX_SELECT_RETURNED_ROWS


class HogQLError(errors.BadRequest):
    code = "invalid"


class HogQL(ClickHouse):
    """ClickHouse as HogQL writes it: `$` in identifiers (`properties.$browser`), `//` comments."""

    class Tokenizer(ClickHouse.Tokenizer):
        COMMENTS = [*ClickHouse.Tokenizer.COMMENTS, "//"]
        VAR_SINGLE_TOKENS = {*ClickHouse.Tokenizer.VAR_SINGLE_TOKENS, "$"}
        SINGLE_TOKENS = {k: v for k, v in ClickHouse.Tokenizer.SINGLE_TOKENS.items() if k != "$"}


@dataclasses.dataclass
class Context:
    project_id: int
    timezone: str = "UTC"
    week_start_day: int = 0
    now_ms: int = 0
    values: dict = dataclasses.field(default_factory=dict)
    filters_hogql: str | None = None  # what `{filters}` becomes, as a HogQL expression; None = true
    max_rows: int = MAX_LIMIT  # insight runners that group rows themselves may read more
    # {property: column} of the events' materialized columns a query may read instead of the JSON
    # (docs/insights.md "Materialized columns"); empty: every property is read from the JSON.
    materialized: dict = dataclasses.field(default_factory=dict)
    # Insight runners only: `events` is the hourly roll-up (event, timestamp = the UTC hour, distinct_id,
    # __actor, __n = how many events), for questions it answers exactly (docs/insights.md "Roll-ups").
    rollup: bool = False
    # With rollup: the marked hours of the question's window, not counted in the roll-up yet; the subquery
    # reads those from the events.
    rollup_marked: tuple = ()
    # With rollup: whether the query reads the roll-up's property columns (tables.ROLLUP_DIMS); computed
    # only then, since the roll-up's subquery is not flattened into an aggregate over its UNION ALL.
    rollup_dims: bool = False
    # With rollup: None reads the hourly roll-up; a tuple reads the daily one (`actor_day`), with these
    # days ((start, end) ms) read through the hourly roll-up instead (query/rollup.py).
    rollup_days: tuple | None = None


@dataclasses.dataclass
class Compiled:
    sql: str
    columns: list
    types: list  # our types (tables.DT, ...) per column
    limit: int | None  # the implicit limit (hasMore is computed) or None when the query set one
    hogql: str


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def lit(value):
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}")


def _placeholders(text):
    """Replace `{name}` placeholders (outside strings, quoted names and comments) by identifiers
    the parser keeps, since sqlglot reads `{...}` as a map literal."""
    out, names, i, n = [], {}, 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"`":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("--", i) or text.startswith("//", i) or c == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(text[i:j])
            i = j
        elif c == "{":
            m = _PLACEHOLDER.match(text, i)
            if not m:
                raise HogQLError(f"Syntax error at character {i}: '{{' starts no placeholder.")
            ident = f"__placeholder_{len(names)}"
            names[ident] = m.group(1)
            out.append(ident)
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out), names


def parse(text):
    if not isinstance(text, str) or not text.strip():
        raise HogQLError("Query is empty.", attr="query")
    body, placeholders = _placeholders(text)
    try:
        trees = [t for t in sqlglot.parse(body, read=HogQL) if t is not None]
    except (ParseError, TokenError) as e:
        detail = str(e).split("\n")[0]
        if isinstance(e, ParseError) and e.errors:
            err = e.errors[0]
            detail = f"Syntax error at line {err.get('line')}, column {err.get('col')}: {err.get('description')}"
        raise HogQLError(detail) from None
    except RecursionError:  # sqlglot's parser recurses per nesting level: a few hundred brackets exhaust it
        raise HogQLError("The query is nested too deeply.") from None
    if len(trees) != 1:
        raise HogQLError("Only one SELECT statement is allowed per query.")
    tree = trees[0]
    if not isinstance(tree, (exp.Select, exp.SetOperation, exp.Subquery)):
        raise HogQLError(f"Only SELECT queries are allowed, not {tree.key.upper()}.")
    return tree, placeholders


# --- scopes ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Source:
    alias: str
    table: str | None  # an exposed table, or None for a subquery / CTE
    fields: dict  # name -> type


class Scope:
    def __init__(self, parent=None, ctes=None):
        self.parent = parent
        self.sources = []
        self.ctes = dict(ctes or (parent.ctes if parent else {}))
        self.aliases = {}  # select alias -> type

    def find(self, alias):
        for s in self.sources:
            if s.alias == alias:
                return s
        return self.parent.find(alias) if self.parent else None

    def owner(self, field):
        for s in self.sources:
            if field in s.fields or (s.table and field in HIDDEN.get(s.table, {})) or (
                    s.table == "events" and field == "person"):
                return s
        return self.parent.owner(field) if self.parent else None
