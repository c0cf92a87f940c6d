"""HogQL (PostHog's SQL, ClickHouse-flavoured) -> one read-only SQLite SELECT.

Pure. sqlglot's ClickHouse dialect parses the text; this module then writes the SQLite SQL itself,
node by node, from an allow-list: a node, table or function it does not know is a 400, never passed
through. Every table becomes a project-filtered subquery (tables.py). Types are tracked as far as the
response needs them (DateTimes are epoch ms inside SQLite and RFC 3339 strings in the answer).
"""

import re
import uuid

import sqlglot
from sqlglot import exp

from phlite.query.operators import Operators
from phlite.query.parse import (  # noqa: F401 (the names callers import from hogql)
    DEFAULT_LIMIT, MAX_LIMIT, Compiled, Context, HogQL, HogQLError, Scope, Source, lit, parse, quote,
)
from phlite.query.tables import ANY, BOOL, DT, FIELDS, FLOAT, INT, NO_PERSON, PERSON_KEY, PERSON_ROW, STR, subquery

# --- the compiler -----------------------------------------------------------------------------


class Compiler(Operators):
    def __init__(self, ctx, placeholders):
        self.ctx = ctx
        self.placeholders = placeholders
        self.tz = lit(ctx.timezone)
        self.array_joins = {}  # id(Explode node) -> the json_each column standing for it
        # The events subquery is written once the whole query is read (compile_query): only then is it
        # known which person joins it needs. Until then a token stands for it.
        self.events_token = f"__phlite_events_{uuid.uuid4().hex}__"
        self.person = NO_PERSON

    # statements

    def statement(self, node, scope, top=False):
        """-> (sql, [(column name, type)])"""
        if isinstance(node, exp.Subquery):
            if node.args.get("limit") or node.args.get("offset") or node.args.get("order"):
                raise HogQLError("ORDER BY / LIMIT after a parenthesised query is not supported.")
            return self.statement(node.this, scope)
        if isinstance(node, exp.SetOperation):
            if isinstance(node, exp.Union):
                op = "UNION" if node.args.get("distinct") else "UNION ALL"
            elif isinstance(node, exp.Intersect):
                op = "INTERSECT"
            else:
                op = "EXCEPT"
            for bad in ("order", "limit", "offset", "with_"):
                if node.args.get(bad):
                    raise HogQLError(f"{bad.rstrip('_').upper()} on a UNION is not supported; use a subquery.")
            left, lcols = self.statement(node.this, Scope(scope))
            right, rcols = self.statement(node.expression, Scope(scope))
            if len(lcols) != len(rcols):
                raise HogQLError("Each side of a UNION must select the same number of columns.")
            return f"SELECT * FROM ({left}) {op} SELECT * FROM ({right})", lcols
        if isinstance(node, exp.Select):
            return self.select(node, scope)
        raise HogQLError(f"Unsupported statement {node.key.upper()}.")

    _SELECT_ARGS = {"expressions", "from_", "joins", "where", "group", "having", "order", "limit", "offset",
                    "distinct", "with_", "kind"}

    def select(self, node, parent):
        for key, value in node.args.items():
            if value not in (None, [], False) and key not in self._SELECT_ARGS:
                raise HogQLError(f"Unsupported clause in SELECT: {key.rstrip('_').upper()}.")
        scope = Scope(parent)
        parts = []
        with_ = node.args.get("with_")
        if with_:
            if with_.args.get("recursive"):
                raise HogQLError("WITH RECURSIVE is not allowed.")
            ctes = []
            for cte in with_.expressions:
                name = cte.alias
                if not name or name in FIELDS:
                    raise HogQLError(f"A WITH name may not be empty or shadow a table: {name!r}.")
                sql, cols = self.statement(cte.this, Scope(scope))
                scope.ctes[name] = dict(cols)
                ctes.append(f"{quote(name)} AS ({sql})")
            parts.append("WITH " + ", ".join(ctes))
        froms = []
        from_ = node.args.get("from_")
        if from_:
            froms.append(self.source(from_.this, scope))
        for join in node.args.get("joins") or []:
            froms.append(self.join(join, scope))
        # arrayJoin(arr) in the SELECT list: one row per element, as a json_each join.
        for e in node.expressions:
            for explode in e.find_all(exp.Explode):
                arr = self.expr(explode.this, scope)[0]
                alias = f"__array_join_{len(self.array_joins)}"
                self.array_joins[id(explode)] = f"{quote(alias)}.value"
                froms.append(f"{', ' if froms else ''}json_each({arr}) AS {quote(alias)}")
        # Select aliases may be used in WHERE, GROUP BY and ORDER BY, as in ClickHouse.
        for e in node.expressions:
            if isinstance(e, exp.Alias):
                scope.aliases[e.alias] = ANY
        cols, out = [], []
        for e in node.expressions:
            for sql, name, typ in self.select_item(e, scope):
                cols.append((name, typ))
                out.append(f"{sql} AS {quote(name)}")
                if isinstance(e, exp.Alias):
                    scope.aliases[e.alias] = typ
        distinct = node.args.get("distinct")
        if distinct and distinct.args.get("on"):
            raise HogQLError("DISTINCT ON is not supported.")
        sql = "SELECT " + ("DISTINCT " if distinct else "") + ", ".join(out)
        if froms:
            sql += " FROM " + " ".join(froms)
        if node.args.get("where"):
            sql += " WHERE " + self.bool_expr(node.args["where"].this, scope)
        if node.args.get("group"):
            group = node.args["group"]
            if any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets", "totals")):
                raise HogQLError("ROLLUP, CUBE, GROUPING SETS and WITH TOTALS are not supported.")
            sql += " GROUP BY " + ", ".join(self.group_item(g, scope, node) for g in group.expressions)
        if node.args.get("having"):
            sql += " HAVING " + self.bool_expr(node.args["having"].this, scope)
        if node.args.get("order"):
            sql += " ORDER BY " + ", ".join(self.order_item(o, scope, node) for o in node.args["order"].expressions)
        parts.append(sql)
        self._limit_clause(node, parts, scope)
        return " ".join(parts), cols

    def _limit_clause(self, node, parts, scope):
        limit = node.args.get("limit")
        offset = node.args.get("offset")
        if limit is not None:
            if limit.args.get("by") if hasattr(limit, "args") else False:
                raise HogQLError("LIMIT BY is not supported.")
            parts.append(f"LIMIT min({self.int_expr(limit.expression, scope)}, {self.ctx.max_rows})")
        if offset is not None:
            if limit is None:
                parts.append(f"LIMIT {self.ctx.max_rows}")
            parts.append(f"OFFSET {self.int_expr(offset.expression, scope)}")

    def int_expr(self, node, scope):
        sql, typ = self.expr(node, scope)
        return f"CAST({sql} AS INTEGER)"

    def group_item(self, g, scope, node):
        # GROUP BY 1 means the first selected column, as in ClickHouse.
        if isinstance(g, exp.Literal) and not g.is_string:
            return str(int(g.this))
        return self.expr(g, scope)[0]

    def order_item(self, o, scope, node):
        inner = o.this if isinstance(o, exp.Ordered) else o
        if isinstance(inner, exp.Literal) and not inner.is_string:
            sql = str(int(inner.this))
        else:
            sql = self.expr(inner, scope)[0]
        if isinstance(o, exp.Ordered):
            sql += " DESC" if o.args.get("desc") else " ASC"
            nulls_first = o.args.get("nulls_first")
            if nulls_first is not None:
                sql += " NULLS FIRST" if nulls_first else " NULLS LAST"
        return sql

    # FROM

    def source(self, node, scope):
        alias = node.alias or None
        if isinstance(node, exp.Table):
            if node.args.get("db") or node.args.get("catalog"):
                raise HogQLError(f"Unknown table `{node.sql(dialect=HogQL)}`: tables are named without a database.")
            if not isinstance(node.this, exp.Identifier):
                raise HogQLError(f"Table functions are not allowed: `{node.this.sql(dialect=HogQL)}`.")
            for key in ("joins", "pivots", "laterals", "sample", "version", "when", "changes", "partition",
                        "hints", "only", "format", "pattern", "ordinality", "rows_from", "final"):
                if node.args.get(key):
                    raise HogQLError(f"Unsupported table modifier {key.upper()}.")
            name = node.name
            if name in scope.ctes:
                src = Source(alias or name, None, scope.ctes[name])
                scope.sources.append(src)
                return quote(name) + (f" AS {quote(alias)}" if alias else "")
            if name not in FIELDS:
                raise HogQLError(f"Unknown table `{name}`. Tables you can query: {', '.join(sorted(FIELDS))}.")
            src = Source(alias or name, name, FIELDS[name])
            scope.sources.append(src)
            if name == "events":
                return f"({self.events_token}) AS {quote(src.alias)}"
            return f"({subquery(name, self.ctx.project_id)}) AS {quote(src.alias)}"
        if isinstance(node, exp.Subquery):
            sql, cols = self.statement(node.this, Scope(scope))
            src = Source(alias or f"__sub{len(scope.sources)}", None, dict(cols))
            scope.sources.append(src)
            return f"({sql}) AS {quote(src.alias)}"
        raise HogQLError(f"Unsupported FROM item: `{node.sql(dialect=HogQL)}`.")

    def join(self, join, scope):
        for key in ("method", "global", "hint", "match_condition", "directed", "pivots"):
            if join.args.get(key):
                raise HogQLError(f"Unsupported JOIN modifier {key.upper()}.")
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if kind in ("ARRAY", "ASOF", "ANY", "SEMI", "ANTI", "PASTE"):
            raise HogQLError(f"{kind} JOIN is not supported.")
        words = " ".join(w for w in (side, "OUTER" if kind == "OUTER" else "", "CROSS" if kind == "CROSS" else "",
                                      "INNER" if kind == "INNER" else "") if w)
        sql = f"{words + ' ' if words else ''}JOIN " + self.source(join.this, scope)
        if join.args.get("on"):
            sql += " ON " + self.bool_expr(join.args["on"], scope)
        elif join.args.get("using"):
            sql += " USING (" + ", ".join(quote(u.name) for u in join.args["using"]) + ")"
        elif not kind == "CROSS":
            sql = sql.replace("JOIN", "CROSS JOIN", 1) if not words else sql
        return sql

    # SELECT items

    def select_item(self, e, scope):
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
            table = e.table if isinstance(e, exp.Column) else None
            sources = [scope.find(table)] if table else scope.sources
            if table and sources[0] is None:
                raise HogQLError(f"Unknown table or alias `{table}` in `{table}.*`.")
            if not sources:
                raise HogQLError("SELECT * needs a FROM.")
            out = []
            for s in sources:
                if s.table == "events":
                    self.person = PERSON_ROW  # `*` includes person_id
                for name, typ in s.fields.items():
                    out.append((f"{quote(s.alias)}.{quote(name)}", name, typ))
            return out
        if isinstance(e, exp.Alias):
            sql, typ = self.expr(e.this, scope)
            return [(sql, e.alias, typ)]
        sql, typ = self.expr(e, scope)
        return [(sql, self.column_name(e), typ)]

    def column_name(self, e):
        chain = self.chain(e)
        if chain and all(isinstance(p, str) and p not in self.placeholders for p in chain[0]):
            return chain[0][-1]
        return self.printed(e)

    def printed(self, e):
        """HogQL text of a node, as the response names columns and echoes the query."""
        text = e.sql(dialect=HogQL).replace("count(*)", "count()").replace("COUNT(*)", "count()")
        return re.sub(r"__placeholder_\d+", lambda m: "{" + self.placeholders.get(m.group(0), "?") + "}", text)


    # names

    def chain(self, node):
        """A column reference as ([names and bracket keys...], ) or None if it is not one."""
        keys = []
        while isinstance(node, (exp.Dot, exp.Bracket)):
            if isinstance(node, exp.Dot):
                if not isinstance(node.expression, exp.Identifier):
                    return None
                keys.insert(0, node.expression.name)
                node = node.this
            else:
                if len(node.expressions) != 1 or not isinstance(node.expressions[0], exp.Literal):
                    return None
                k = node.expressions[0]
                keys.insert(0, k.this if k.is_string else int(k.this))
                node = node.this
        if not isinstance(node, exp.Column) or isinstance(node.this, exp.Star):
            return None
        names = [p.name for p in node.parts]
        return (names + keys,)

    def x_Column(self, node, scope):
        return self.resolve(self.chain(node)[0], scope, node)

    def x_Dot(self, node, scope):
        ch = self.chain(node)
        if ch is None:
            raise HogQLError(f"Unsupported expression `{node.sql(dialect=HogQL)}`.")
        return self.resolve(ch[0], scope, node)

    def x_Bracket(self, node, scope):
        ch = self.chain(node)
        if ch is None:
            raise HogQLError(f"Unsupported subscript `{node.sql(dialect=HogQL)}`.")
        return self.resolve(ch[0], scope, node)

    def x_Identifier(self, node, scope):
        return self.resolve([node.name], scope, node)

    def resolve(self, parts, scope, node):
        name = parts[0]
        if isinstance(name, str) and name in self.placeholders:
            if len(parts) != 1:
                raise HogQLError("A placeholder cannot be followed by a field name.")
            return self.placeholder(self.placeholders[name], scope)
        src = None
        if len(parts) > 1 and isinstance(name, str):
            src = scope.find(name)
            if src is not None:
                parts = parts[1:]
        if src is None:
            if len(parts) == 1 and name in scope.aliases and scope.owner(name) is None:
                return quote(name), scope.aliases[name]
            src = scope.owner(parts[0])
            if src is None:
                if len(parts) == 1 and name in scope.aliases:
                    return quote(name), scope.aliases[name]
                raise HogQLError(f"Unable to resolve field: {'.'.join(map(str, parts))}")
        return self.field(src, parts)

    def field(self, src, parts):
        col = lambda c: f"{quote(src.alias)}.{quote(c)}"  # noqa: E731
        head, rest = parts[0], parts[1:]
        if src.table == "events" and head in ("person", "person_id"):
            self.person = PERSON_ROW
        if src.table == "events" and head == "__actor" and not rest:
            self.person = max(self.person, PERSON_KEY)
            return col("__actor"), ANY
        if src.table == "events" and head == "properties" and len(rest) == 1 and rest[0] in self.ctx.materialized:
            # The property's own column: the same value, without parsing the row's JSON.
            return col(f"__mp_{self.ctx.materialized[rest[0]]}"), STR
        if src.table == "events" and head == "person":
            if not rest:
                raise HogQLError("`person` is a table: name a field of it, such as person.properties.email.")
            if rest[0] == "properties":
                return self.property(col("__person_properties"), rest[1:])
            if rest[0] == "id" and len(rest) == 1:
                return col("person_id"), STR
            if rest[0] == "created_at" and len(rest) == 1:
                return col("__person_created_at"), DT
            raise HogQLError(f"Unable to resolve field: person.{'.'.join(map(str, rest))}")
        if src.table == "events" and head in ("team_id", "__n") and not rest:
            return col(head), INT
        if head not in src.fields:
            raise HogQLError(f"Unable to resolve field: {'.'.join(map(str, parts))}")
        if rest:
            if head == "properties" or src.table is None:
                return self.property(col(head), rest)
            raise HogQLError(f"`{head}` has no fields: {'.'.join(map(str, parts))}")
        return col(head), src.fields[head]

    def property(self, column, keys):
        if not keys:
            return column, STR
        # `->` with a JSON path keeps the value's JSON text (so booleans stay true/false); ph_prop
        # unquotes strings. Keys a path cannot spell go through ph_prop_key.
        if all(isinstance(k, str) and re.fullmatch(r"[^\"\\\x00-\x1f.\[\]]+", k) for k in keys):
            path = "$" + "".join(f'."{k}"' for k in keys)
            return f"ph_prop({column} -> {lit(path)})", STR
        return f"ph_prop_key({column}, {', '.join(lit(k) for k in keys)})", STR

    def placeholder(self, name, scope):
        if name == "filters":
            if not any(s.table == "events" for s in scope.sources):
                raise HogQLError("{filters} can only be used in a SELECT whose FROM is events.")
            if not self.ctx.filters_hogql:
                return "1", BOOL
            return f"({self.expr(sqlglot.parse_one(self.ctx.filters_hogql, read=HogQL), scope)[0]})", BOOL
        if name in self.ctx.values:
            v = self.ctx.values[name]
            if isinstance(v, (list, tuple)):
                return "(" + ", ".join(lit(x) for x in v) + ")", ANY
            if isinstance(v, dict):
                raise HogQLError(f"Placeholder {{{name}}} must be a string, number, boolean, null or list.")
            typ = BOOL if isinstance(v, bool) else INT if isinstance(v, int) else FLOAT if isinstance(v, float) else STR
            return lit(v), typ
        raise HogQLError(f"Placeholder {{{name}}} is not available in this context. Pass it in `values`.")


def compile_query(text, ctx):
    """HogQL text -> Compiled. Raises HogQLError (a 400) pointing at the problem."""
    tree, placeholders = parse(text)
    compiler = Compiler(ctx, placeholders)
    sql, cols = compiler.statement(tree, Scope())
    sql = sql.replace(compiler.events_token,
                      subquery("events", ctx.project_id, ctx.materialized, person=compiler.person,
                               rollup=ctx.rollup, rollup_marked=ctx.rollup_marked, rollup_dims=ctx.rollup_dims,
                               rollup_days=ctx.rollup_days))
    limit = None
    has_limit = isinstance(tree, exp.Select) and tree.args.get("limit") is not None
    if not has_limit:
        limit = DEFAULT_LIMIT
        if isinstance(tree, exp.Select) and tree.args.get("offset") is None:
            sql += f" LIMIT {DEFAULT_LIMIT + 1}"
        else:
            sql = f"SELECT * FROM ({sql}) LIMIT {DEFAULT_LIMIT + 1}"
    printed = compiler.printed(tree)
    if limit is not None:
        printed += f" LIMIT {DEFAULT_LIMIT + 1}"
    names = [c[0] for c in cols]
    return Compiled(sql=sql, columns=names, types=[c[1] for c in cols], limit=limit, hogql=printed)
