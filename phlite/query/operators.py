"""The expression half of the HogQL compiler: operators, comparisons, CASE, intervals. A mixin of
hogql.Compiler, which owns statements, sources and names. Pure."""

from sqlglot import exp

from phlite.query import functions as fn
from phlite.query.calls import call, interval_of
from phlite.query.parse import HogQL, HogQLError, Scope, lit
from phlite.query.tables import ANY, BOOL, DATE, DT, FLOAT, INT, STR


class Operators:
    # expressions

    _BARE = {exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}

    def bool_expr(self, node, scope):
        """A WHERE, HAVING or ON condition. There a NULL drops the row as false does, also through AND,
        OR and parentheses (not through NOT), so a comparison there needs no coalesce(..., 0): written
        bare, SQLite can answer `timestamp >= x` from an index."""
        if isinstance(node, exp.Paren):
            return f"({self.bool_expr(node.this, scope)})"
        if isinstance(node, (exp.And, exp.Or)):
            op = "AND" if isinstance(node, exp.And) else "OR"
            return f"({self.bool_expr(node.this, scope)} {op} {self.bool_expr(node.expression, scope)})"
        op = self._BARE.get(type(node))
        if op is not None:
            a, b = self._cmp_pair(node, scope)
            return f"({a} {op} {b})"
        return self.expr(node, scope)[0]

    def expr(self, node, scope):
        """-> (sql, type)"""
        method = getattr(self, "x_" + type(node).__name__, None)
        if method is not None:
            return method(node, scope)
        if isinstance(node, exp.Func):
            return call(self, node, scope)
        raise HogQLError(f"Unsupported expression `{node.sql(dialect=HogQL)}`.")

    def x_Paren(self, node, scope):
        sql, typ = self.expr(node.this, scope)
        return f"({sql})", typ

    def x_Literal(self, node, scope):
        if node.is_string:
            return lit(node.this), STR
        text = node.this
        try:
            value = int(text)
            return str(value), INT
        except ValueError:
            return repr(float(text)), FLOAT

    def x_Subquery(self, node, scope):
        sql, cols = self.statement(node, Scope(scope))
        return f"({sql})", (cols[0][1] if len(cols) == 1 else ANY)

    def x_Exists(self, node, scope):
        sql, _ = self.statement(node.this, Scope(scope))
        return f"EXISTS ({sql})", BOOL

    def x_Null(self, node, scope):
        return "NULL", ANY

    def x_Boolean(self, node, scope):
        return ("1" if node.this else "0"), BOOL

    def x_Neg(self, node, scope):
        sql, typ = self.expr(node.this, scope)
        return f"(-{sql})", typ

    def x_Not(self, node, scope):
        return f"(NOT {self.expr(node.this, scope)[0]})", BOOL

    def x_And(self, node, scope):
        return f"({self.expr(node.this, scope)[0]} AND {self.expr(node.expression, scope)[0]})", BOOL

    def x_Or(self, node, scope):
        return f"({self.expr(node.this, scope)[0]} OR {self.expr(node.expression, scope)[0]})", BOOL

    def x_Tuple(self, node, scope):
        return "(" + ", ".join(self.expr(e, scope)[0] for e in node.expressions) + ")", ANY

    def x_Array(self, node, scope):
        items = [self.expr(e, scope)[0] for e in node.expressions]
        return f"json_array({', '.join(items)})", STR

    def _arith(self, node, scope, op):
        a, ta = self.expr(node.this, scope)
        iv = interval_of(self, node.expression, scope) if op in "+-" else None
        if iv is not None:
            n, unit = iv
            if op == "-":
                n = f"(-{n})"
            base = a if ta in (DT, INT) else f"ph_parse_datetime({a}, {self.tz})"
            return f"ph_add_interval({base}, {n}, {lit(unit)}, {self.tz})", DT
        b, tb = self.expr(node.expression, scope)
        if op == "-" and ta == DT and tb == DT:
            return f"(({a} - {b}) / 1000)", INT
        typ = FLOAT if FLOAT in (ta, tb) else INT if ta == tb == INT else FLOAT if ANY in (ta, tb) else ta
        return f"({a} {op} {b})", typ

    def x_Add(self, node, scope):
        return self._arith(node, scope, "+")

    def x_Sub(self, node, scope):
        return self._arith(node, scope, "-")

    def x_Mul(self, node, scope):
        return self._arith(node, scope, "*")

    def x_Div(self, node, scope):
        # HogQL's `/` is always float division (ClickHouse divide).
        a, b = self.expr(node.this, scope)[0], self.expr(node.expression, scope)[0]
        return f"(CAST({a} AS REAL) / {b})", FLOAT

    def x_IntDiv(self, node, scope):
        a, b = self.expr(node.this, scope)[0], self.expr(node.expression, scope)[0]
        return f"(CAST({a} AS INTEGER) / CAST({b} AS INTEGER))", INT

    def x_Mod(self, node, scope):
        return self._arith(node, scope, "%")

    def x_DPipe(self, node, scope):
        return f"(coalesce({self.expr(node.this, scope)[0]}, '') || coalesce({self.expr(node.expression, scope)[0]}, ''))", STR

    def interval(self, node, scope):
        unit = (node.args.get("unit").name if node.args.get("unit") else "").lower().rstrip("s")
        if unit not in ("second", "minute", "hour", "day", "week", "month", "quarter", "year"):
            raise HogQLError(f"Unknown interval unit `{unit}`.")
        n = node.this
        if isinstance(n, exp.Literal):
            try:
                return str(int(n.this)), unit
            except ValueError:
                raise HogQLError(f"Interval count must be an integer: `{n.this}`.") from None
        return self.expr(n, scope)[0], unit

    def x_Interval(self, node, scope):
        raise HogQLError("An INTERVAL can only be added to or subtracted from a date or time.")

    # comparisons: NULL rules of HogQL (docs/insights.md "Value rules")

    def _cmp_pair(self, node, scope):
        left = node.this
        right = node.expression
        a, ta = self.expr(left, scope)
        b, tb = self.expr(right, scope)
        # A DateTime compared with a string literal: the literal is a time in the project's zone.
        if ta == DT and tb == STR and isinstance(right, exp.Literal):
            b = self._time_literal(right.this)
        elif tb == DT and ta == STR and isinstance(left, exp.Literal):
            a = self._time_literal(left.this)
        elif ta == DT and tb == DATE:
            b = f"ph_parse_datetime({b}, {self.tz})"
        elif tb == DT and ta == DATE:
            a = f"ph_parse_datetime({a}, {self.tz})"
        # A property compared with a number is read as a number, as PostHog does for a property whose
        # values are numeric (docs/insights.md "Value rules").
        elif ta == STR and tb in (INT, FLOAT) and not isinstance(left, exp.Literal):
            a = f"ph_to_float({a})"
        elif tb == STR and ta in (INT, FLOAT) and not isinstance(right, exp.Literal):
            b = f"ph_to_float({b})"
        return a, b

    def _time_literal(self, text):
        ms = fn.parse_datetime(text, self.ctx.timezone)
        if ms is None:
            raise HogQLError(f"Cannot read '{text}' as a date or time.")
        return str(ms)

    def x_EQ(self, node, scope):
        if isinstance(node.expression, exp.Null):
            return f"({self.expr(node.this, scope)[0]} IS NULL)", BOOL
        a, b = self._cmp_pair(node, scope)
        return f"({a} = {b})", BOOL

    def x_NullSafeEQ(self, node, scope):
        a, b = self._cmp_pair(node, scope)
        return f"({a} IS {b})", BOOL

    def x_NEQ(self, node, scope):
        if isinstance(node.expression, exp.Null):
            return f"({self.expr(node.this, scope)[0]} IS NOT NULL)", BOOL
        a, b = self._cmp_pair(node, scope)
        # `!=` is true against NULL in HogQL.
        return f"({a} IS NOT {b})", BOOL

    def _cmp(self, node, scope, op):
        a, b = self._cmp_pair(node, scope)
        return f"coalesce({a} {op} {b}, 0)", BOOL

    def x_GT(self, node, scope):
        return self._cmp(node, scope, ">")

    def x_GTE(self, node, scope):
        return self._cmp(node, scope, ">=")

    def x_LT(self, node, scope):
        return self._cmp(node, scope, "<")

    def x_LTE(self, node, scope):
        return self._cmp(node, scope, "<=")

    def x_Is(self, node, scope):
        a = self.expr(node.this, scope)[0]
        if isinstance(node.expression, exp.Null):
            return f"({a} IS NULL)", BOOL
        return f"({a} IS {self.expr(node.expression, scope)[0]})", BOOL

    def x_Between(self, node, scope):
        a, ta = self.expr(node.this, scope)
        lo = node.args["low"]
        hi = node.args["high"]
        los, his = self.expr(lo, scope)[0], self.expr(hi, scope)[0]
        if ta == DT:
            if isinstance(lo, exp.Literal) and lo.is_string:
                los = self._time_literal(lo.this)
            if isinstance(hi, exp.Literal) and hi.is_string:
                his = self._time_literal(hi.this)
        return f"coalesce({a} BETWEEN {los} AND {his}, 0)", BOOL

    def x_In(self, node, scope):
        a = self.expr(node.this, scope)[0]
        if node.args.get("query"):
            sub, cols = self.statement(node.args["query"].this, Scope(scope))
            return f"coalesce({a} IN ({sub}), 0)", BOOL
        if node.args.get("unnest") or node.args.get("field"):
            raise HogQLError("Unsupported IN form.")
        items = [self.expr(e, scope)[0] for e in node.expressions]
        return f"coalesce({a} IN ({', '.join(items) or 'NULL'}), 0)", BOOL

    def _like(self, node, scope, insensitive):
        a, b = self.expr(node.this, scope)[0], self.expr(node.expression, scope)[0]
        if node.args.get("escape"):
            raise HogQLError("LIKE ... ESCAPE is not supported.")
        if insensitive:
            return f"coalesce(lower({a}) LIKE lower({b}), 0)", BOOL
        # The connection runs with case_sensitive_like, so LIKE is case-sensitive as in HogQL.
        return f"coalesce({a} LIKE {b}, 0)", BOOL

    def x_Like(self, node, scope):
        return self._like(node, scope, False)

    def x_ILike(self, node, scope):
        return self._like(node, scope, True)

    def x_Case(self, node, scope):
        sql = "CASE"
        if node.this:
            sql += " " + self.expr(node.this, scope)[0]
        typ = ANY
        for if_ in node.args.get("ifs") or []:
            then, typ = self.expr(if_.args["true"], scope)
            sql += f" WHEN {self.expr(if_.this, scope)[0]} THEN {then}"
        if node.args.get("default") is not None:
            d, td = self.expr(node.args["default"], scope)
            typ = typ or td
            sql += f" ELSE {d}"
        return sql + " END", typ
