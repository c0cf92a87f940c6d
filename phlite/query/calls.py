"""HogQL function calls -> SQLite, from an allow-list (docs/insights.md "HogQL functions").

Pure. sqlglot turns many ClickHouse functions into typed nodes (Count, TimestampTrunc, ...) and keeps
the rest as Anonymous by name; both end here. Anything not listed is a 400 naming the function.
"""

import re
from datetime import timedelta

from sqlglot import exp

from phlite import errors
from phlite.query import functions as fn
from phlite.query.tables import ANY, BOOL, DATE, DT, FLOAT, INT, STR

_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")


class _Err(errors.BadRequest):
    code = "invalid"


def _name(node):
    return node.sql(dialect="clickhouse")


def _args(c, nodes, scope):
    return [c.expr(n, scope) for n in nodes]


def _as_time(sql, typ, c):
    """An expression as epoch ms: DateTimes are already; dates and strings are read in the project zone."""
    if typ == DT or typ == INT:
        return sql
    return f"ph_parse_datetime({sql}, {c.tz})"


def _unit(node):
    if node is None:
        raise _Err("A unit is required, such as 'day'.")
    text = node.name if isinstance(node, (exp.Var, exp.Literal, exp.Identifier)) else _name(node)
    unit = text.strip("'").lower().rstrip("s")
    if unit not in _UNITS:
        raise _Err(f"Unknown date unit '{text}'. Use one of: {', '.join(_UNITS)}.")
    return unit


def interval_of(c, node, scope):
    """(count sql, unit) if node is an interval (INTERVAL 7 DAY or toIntervalDay(7)), else None."""
    if isinstance(node, exp.Interval):
        return c.interval(node, scope)
    if isinstance(node, exp.Anonymous):
        m = re.fullmatch(r"toInterval(Second|Minute|Hour|Day|Week|Month|Quarter|Year)", node.name)
        if m and len(node.expressions) == 1:
            return c.expr(node.expressions[0], scope)[0], m.group(1).lower()
    return None


def _agg(c, name, node, scope, filter_node=None, distinct=False):
    arg = c.expr(node, scope) if node is not None else ("*", INT)
    sql = f"{name}({'DISTINCT ' if distinct else ''}{arg[0]})"
    if filter_node is not None:
        sql += f" FILTER (WHERE {c.expr(filter_node, scope)[0]})"
    return sql, arg[1]


def _count(c, node, scope):
    this = node.this
    if this is None or isinstance(this, exp.Star):
        return "count(*)", INT
    if isinstance(this, exp.Distinct):
        if len(this.expressions) != 1:
            raise _Err("count(DISTINCT ...) takes one expression.")
        return f"count(DISTINCT {c.expr(this.expressions[0], scope)[0]})", INT
    return f"count({c.expr(this, scope)[0]})", INT


_COMBINED = {"sumIf": "sum", "avgIf": "avg", "minIf": "min", "maxIf": "max", "countIf": "count",
             "uniqIf": "uniq", "anyIf": "min", "uniqExactIf": "uniq"}


def _combined(c, node, scope):
    name = node.name
    base = _COMBINED.get(name)
    if base is None or len(node.expressions) != 2:
        raise _Err(f"Unsupported function {name}().")
    x, cond = node.expressions
    if base == "uniq":
        return _agg(c, "count", x, scope, cond, distinct=True)[0], INT
    sql, typ = _agg(c, base, x, scope, cond)
    return sql, (FLOAT if base == "avg" else INT if base == "count" else typ)


def _json_keys(path):
    keys = []
    for part in path.expressions:
        if isinstance(part, exp.JSONPathRoot):
            continue
        if isinstance(part, exp.JSONPathKey):
            keys.append(fn_lit(part.this))
        elif isinstance(part, exp.JSONPathSubscript):
            keys.append(str(int(part.this)))
        else:
            raise _Err("Unsupported JSON key.")
    return keys


def fn_lit(v):
    return "'" + str(v).replace("'", "''") + "'"


def call(c, node, scope):
    """A function node -> (sql, type)."""
    typed = _TYPED.get(type(node).__name__)
    if typed is not None:
        return typed(c, node, scope)
    if isinstance(node, exp.Anonymous):
        return _anonymous(c, node, scope)
    if isinstance(node, exp.AnonymousAggFunc):
        name = node.name
        if name == "uniqExact" and len(node.expressions) == 1:
            return f"count(DISTINCT {c.expr(node.expressions[0], scope)[0]})", INT
        if name in ("groupArray", "groupUniqArray") and len(node.expressions) == 1:
            return _agg(c, "ph_group_array", node.expressions[0], scope, distinct=name == "groupUniqArray")[0], STR
        raise _Err(f"Unsupported function {name}().")
    raise _Err(f"Unsupported function `{_name(node)}`.")


_UTC_NAMES = {"UTC", "Etc/UTC", "GMT", "Etc/GMT", ""}
_UNIT_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
_WEEK_MS, _SUNDAY_MS = 7 * 86_400_000, 3 * 86_400_000  # 1970-01-04 was a Sunday


def start_of(c, t, unit, week_start):
    """toStartOf<unit>(t) as SQL. In UTC minutes to weeks are integer arithmetic, many times cheaper
    than a Python call per row (it was most of a daily trend's time); elsewhere ph_start_of."""
    if c.ctx.timezone in _UTC_NAMES and (unit in _UNIT_MS or unit == "week"):
        if unit == "week":
            shift = _SUNDAY_MS + (86_400_000 if week_start else 0)
            return f"(({t}) - ((({t}) - {shift}) % {_WEEK_MS} + {_WEEK_MS}) % {_WEEK_MS})"
        n = _UNIT_MS[unit]
        return f"(({t}) - (({t}) % {n} + {n}) % {n})"
    return f"ph_start_of({t}, {fn_lit(unit)}, {c.tz}, {week_start})"


def _trunc(c, node, scope):
    unit = node.args["unit"].name.lower()
    sql, typ = c.expr(node.this, scope)
    return start_of(c, _as_time(sql, typ, c), unit, c.ctx.week_start_day), DT


def _date_diff(c, node, scope):
    unit = _unit(node.args.get("unit"))
    end, tend = c.expr(node.this, scope)
    start, tstart = c.expr(node.expression, scope)
    return f"ph_date_diff({fn_lit(unit)}, {_as_time(start, tstart, c)}, {_as_time(end, tend, c)}, {c.tz})", INT


def _date_add(sign):
    def handler(c, node, scope):
        unit = _unit(node.args.get("unit"))
        t, tt = c.expr(node.this, scope)
        n = c.expr(node.expression, scope)[0]
        return f"ph_add_interval({_as_time(t, tt, c)}, {sign}({n}), {fn_lit(unit)}, {c.tz})", DT
    return handler


def _coalesce(c, node, scope):
    items = _args(c, [node.this, *node.expressions], scope)
    typ = next((t for _, t in items if t), ANY)
    if len(items) == 1:
        return items[0][0], typ
    return f"coalesce({', '.join(s for s, _ in items)})", typ


def _if(c, node, scope):
    cond = c.expr(node.this, scope)[0]
    a, ta = c.expr(node.args["true"], scope)
    b, tb = c.expr(node.args["false"], scope) if node.args.get("false") is not None else ("NULL", ANY)
    return f"(CASE WHEN {cond} THEN {a} ELSE {b} END)", ta or tb


def _concat(c, node, scope):
    parts = [f"coalesce({_stringify(*c.expr(e, scope), c)}, '')" for e in node.expressions]
    return "(" + " || ".join(parts) + ")", STR


def _stringify(sql, typ, c):
    if typ == DT:
        return f"ph_format_datetime({sql}, '%Y-%m-%d %H:%M:%S', {c.tz})"
    if typ == BOOL or typ == INT or typ == STR:
        return f"CAST({sql} AS TEXT)" if typ != STR else sql
    return f"ph_to_string({sql})"


def _simple(name, typ=None, nargs=None):
    def handler(c, node, scope):
        args = [node.this] + [node.args[k] for k in ("expression", "decimals", "start", "length", "substr")
                              if node.args.get(k) is not None] + list(node.expressions or [])
        args = [a for a in args if a is not None]
        compiled = _args(c, args, scope)
        if nargs is not None and len(compiled) not in nargs:
            raise _Err(f"{_name(node)}: wrong number of arguments.")
        return f"{name}({', '.join(s for s, _ in compiled)})", typ or (compiled[0][1] if compiled else ANY)
    return handler


def _quantile(c, node, scope):
    q = node.args.get("quantile")
    p = float(q.this) if isinstance(q, exp.Literal) else None
    if p is None or not 0 <= p <= 1:
        raise _Err("quantile(p)(x) needs a constant p between 0 and 1.")
    return f"ph_quantile({c.expr(node.this, scope)[0]}, {p!r})", FLOAT


def _json(func, typ):
    def handler(c, node, scope):
        j = c.expr(node.this, scope)[0]
        keys = _json_keys(node.expression) if node.expression is not None else []
        return f"{func}({', '.join([j, *keys])})", typ
    return handler


def _day_of_week(c, node, scope):
    t, tt = c.expr(node.this, scope)
    return f"ph_date_part({_as_time(t, tt, c)}, 'dayofweek', {c.tz})", INT


def _format(c, node, scope):
    t, tt = c.expr(node.this, scope)
    f = c.expr(node.args["format"], scope)[0]
    return f"ph_format_datetime({_as_time(t, tt, c)}, {f}, {c.tz})", STR


def _split(c, node, scope):
    s = c.expr(node.this, scope)[0]
    sep = c.expr(node.expression, scope)[0]
    return f"ph_split_by_char({sep}, {s})", STR


def _substring(c, node, scope):
    args = [node.this, node.args.get("start")] + ([node.args["length"]] if node.args.get("length") else [])
    return f"ph_substring({', '.join(s for s, _ in _args(c, args, scope))})", STR


def _position(c, node, scope):
    s, sub = c.expr(node.this, scope)[0], c.expr(node.args["substr"], scope)[0]
    return f"ph_position({s}, {sub})", INT


def _regexp_like(c, node, scope):
    return f"ph_match({c.expr(node.this, scope)[0]}, {c.expr(node.expression, scope)[0]})", BOOL


def _has(c, node, scope):
    return f"ph_has({c.expr(node.this, scope)[0]}, {c.expr(node.expression, scope)[0]})", BOOL


def _arg_m(name):
    def handler(c, node, scope):
        x, tx = c.expr(node.this, scope)
        return f"{name}({x}, {c.expr(node.expression, scope)[0]})", tx
    return handler


def _extreme(name):
    def handler(c, node, scope):
        items = _args(c, [node.this, *node.expressions], scope)
        if len(items) == 1:
            return f"{name}({items[0][0]}, {items[0][0]})", items[0][1]
        return f"{name}({', '.join(s for s, _ in items)})", items[0][1]
    return handler


def _explode(c, node, scope):
    column = c.array_joins.get(id(node))
    if column is None:
        raise _Err("arrayJoin() is supported only in the SELECT list.")
    return column, STR


_TYPED = {
    "Count": _count,
    "ApproxDistinct": lambda c, n, s: (f"count(DISTINCT {c.expr(n.this, s)[0]})", INT),
    "CountIf": lambda c, n, s: (f"count(*) FILTER (WHERE {c.expr(n.this, s)[0]})", INT),
    "CombinedAggFunc": _combined,
    "Sum": lambda c, n, s: _agg(c, "sum", n.this, s),
    "Avg": lambda c, n, s: (_agg(c, "avg", n.this, s)[0], FLOAT),
    "Min": lambda c, n, s: _agg(c, "min", n.this, s),
    "Max": lambda c, n, s: _agg(c, "max", n.this, s),
    "AnyValue": lambda c, n, s: _agg(c, "min", n.this, s),
    "ArgMin": _arg_m("ph_arg_min"),
    "ArgMax": _arg_m("ph_arg_max"),
    "Quantile": _quantile,
    "TimestampTrunc": _trunc,
    "DateDiff": _date_diff,
    "DateAdd": _date_add(""),
    "DateSub": _date_add("-"),
    "DayOfWeekIso": _day_of_week,
    "TimeToStr": _format,
    "Lower": _simple("lower", STR, (1,)),
    "Upper": _simple("upper", STR, (1,)),
    "Length": _simple("length", INT, (1,)),
    "Trim": _simple("trim", STR, (1,)),
    "Concat": _concat,
    "Substring": _substring,
    "Split": _split,
    "StrPosition": _position,
    "RegexpLike": _regexp_like,
    "If": _if,
    "Coalesce": _coalesce,
    "Nullif": _simple("nullif", None, (2,)),
    "JSONExtractScalar": _json("ph_json_string", STR),
    "JSONExtract": _json("ph_json_raw", STR),
    "ArrayContains": _has,
    "Round": _simple("round", FLOAT, (1, 2)),
    "Floor": _simple("floor", FLOAT, (1,)),
    "Ceil": _simple("ceil", FLOAT, (1,)),
    "Abs": _simple("abs", None, (1,)),
    "Greatest": _extreme("max"),
    "Least": _extreme("min"),
    "Explode": _explode,
}


def _need(node, *counts):
    if len(node.expressions) not in counts:
        want = " or ".join(map(str, counts))
        raise _Err(f"{node.name}() takes {want} argument{'s' if counts != (1,) else ''}, not {len(node.expressions)}.")


def _anonymous(c, node, scope):
    name = node.name
    args = node.expressions
    tz = c.tz
    if name == "multiIf":
        if len(args) < 3 or len(args) % 2 == 0:
            raise _Err("multiIf(cond1, then1, ..., else) takes an odd number of arguments (at least 3).")
        parts, typ = [], ANY
        for i in range(0, len(args) - 1, 2):
            then, t = c.expr(args[i + 1], scope)
            typ = typ or t
            parts.append(f"WHEN {c.expr(args[i], scope)[0]} THEN {then}")
        return f"(CASE {' '.join(parts)} ELSE {c.expr(args[-1], scope)[0]} END)", typ
    if name == "toStartOfWeek":
        _need(node, 1, 2)
        t, tt = c.expr(args[0], scope)
        mode = c.ctx.week_start_day
        if len(args) == 2:
            if not isinstance(args[1], exp.Literal):
                raise _Err("toStartOfWeek(t, mode): mode must be a constant.")
            mode = 1 if int(args[1].this) % 2 else 0
        return start_of(c, _as_time(t, tt, c), "week", mode), DT
    if name in ("toDate",):
        _need(node, 1)
        t, tt = c.expr(args[0], scope)
        return f"ph_to_date({t}, {tz})", DATE
    if name in ("toDateTime", "parseDateTimeBestEffort", "parseDateTimeBestEffortOrNull", "toDateTime64"):
        t, tt = c.expr(args[0], scope) if args else (None, None)
        if not args:
            raise _Err(f"{name}() takes a value.")
        if tt == DT:
            return t, DT
        return f"ph_to_datetime({t}, {tz})", DT
    if name == "toTimeZone":
        _need(node, 2)
        t, tt = c.expr(args[0], scope)
        return _as_time(t, tt, c), DT
    if name == "toUnixTimestamp":
        _need(node, 1)
        t, tt = c.expr(args[0], scope)
        return f"({_as_time(t, tt, c)} / 1000)", INT
    if name == "fromUnixTimestamp":
        _need(node, 1)
        return f"(CAST({c.expr(args[0], scope)[0]} AS INTEGER) * 1000)", DT
    if name == "now":
        return str(c.ctx.now_ms), DT
    if name in ("today", "yesterday"):
        d = fn.to_local(c.ctx.now_ms, c.ctx.timezone).date() - timedelta(days=1 if name == "yesterday" else 0)
        return fn_lit(d.isoformat()), DATE
    m = re.fullmatch(r"(add|subtract)(Second|Minute|Hour|Day|Week|Month|Quarter|Year)s", name)
    if m:
        _need(node, 2)
        t, tt = c.expr(args[0], scope)
        n = c.expr(args[1], scope)[0]
        sign = "-" if m.group(1) == "subtract" else ""
        return f"ph_add_interval({_as_time(t, tt, c)}, {sign}({n}), '{m.group(2).lower()}', {tz})", DT
    parts = {"toYear": "year", "toMonth": "month", "toDayOfMonth": "day", "toHour": "hour",
             "toMinute": "minute", "toSecond": "second"}
    if name in parts:
        _need(node, 1)
        t, tt = c.expr(args[0], scope)
        return f"ph_date_part({_as_time(t, tt, c)}, '{parts[name]}', {tz})", INT
    if name == "toString":
        _need(node, 1)
        return _stringify(*c.expr(args[0], scope), c), STR
    casts = {"toInt": ("ph_to_int", INT), "toInt64": ("ph_to_int", INT), "toFloat": ("ph_to_float", FLOAT),
             "toFloat64": ("ph_to_float", FLOAT), "toUUID": ("ph_to_string", STR)}
    if name in casts:
        _need(node, 1)
        f, typ = casts[name]
        return f"{f}({c.expr(args[0], scope)[0]})", typ
    if name in ("toIntOrZero", "toFloatOrZero"):
        _need(node, 1)
        f = "ph_to_int" if name == "toIntOrZero" else "ph_to_float"
        return f"coalesce({f}({c.expr(args[0], scope)[0]}), 0)", INT if "Int" in name else FLOAT
    if name == "toBool":
        _need(node, 1)
        x = c.expr(args[0], scope)[0]
        return f"(CASE lower(CAST({x} AS TEXT)) WHEN 'true' THEN 1 WHEN '1' THEN 1 WHEN 'false' THEN 0" \
               f" WHEN '0' THEN 0 END)", BOOL
    if name in ("replaceOne", "replaceAll", "replaceRegexpOne", "replaceRegexpAll"):
        _need(node, 3)
        s, a, b = (x for x, _ in _args(c, args, scope))
        if name == "replaceAll":
            return f"replace({s}, {a}, {b})", STR
        if name == "replaceOne":
            return f"ph_replace_one({s}, {a}, {b})", STR
        return f"ph_replace_regexp({s}, {a}, {b}, {1 if name.endswith('One') else 0})", STR
    if name == "extract":
        _need(node, 2)
        s, p = (x for x, _ in _args(c, args, scope))
        return f"ph_extract({s}, {p})", STR
    if name in ("isNull", "isNotNull"):
        _need(node, 1)
        return f"({c.expr(args[0], scope)[0]} IS {'NOT ' if name == 'isNotNull' else ''}NULL)", BOOL
    if name == "assumeNotNull":
        _need(node, 1)
        return c.expr(args[0], scope)
    json_fns = {"JSONExtractInt": ("ph_json_number", INT), "JSONExtractFloat": ("ph_json_number", FLOAT),
                "JSONExtractBool": ("ph_json_number", BOOL), "JSONExtractArrayRaw": ("ph_json_array_raw", STR),
                "JSONHas": ("ph_json_has", BOOL), "JSONLength": ("ph_json_length", INT),
                "JSONExtractString": ("ph_json_string", STR), "JSONExtractRaw": ("ph_json_raw", STR)}
    if name in json_fns:
        if not args:
            raise _Err(f"{name}() takes a JSON value and keys.")
        f, typ = json_fns[name]
        return f"{f}({', '.join(x for x, _ in _args(c, args, scope))})", typ
    if name in ("empty", "notEmpty"):
        _need(node, 1)
        x = c.expr(args[0], scope)[0]
        test = f"({x} IS NULL OR {x} = '' OR {x} = '[]' OR {x} = '{{}}')"
        return (test if name == "empty" else f"(NOT {test})"), BOOL
    if name == "intDiv":
        _need(node, 2)
        a, b = (x for x, _ in _args(c, args, scope))
        return f"(CAST({a} AS INTEGER) / CAST({b} AS INTEGER))", INT
    if name == "modulo":
        _need(node, 2)
        a, b = (x for x, _ in _args(c, args, scope))
        return f"({a} % {b})", INT
    if name in ("like", "ilike", "notLike", "notILike"):
        _need(node, 2)
        a, b = (x for x, _ in _args(c, args, scope))
        if "ilike" in name.lower():
            a, b = f"lower({a})", f"lower({b})"
        test = f"coalesce({a} LIKE {b}, 0)"
        return (f"(NOT {test})" if name.startswith("not") else test), BOOL
    if name in ("median", "uniq", "uniqExact"):
        raise _Err(f"{name}() takes one argument.")
    if name.startswith("toInterval"):
        raise _Err(f"{name}() can only be added to or subtracted from a date or time.")
    raise _Err(f"Unsupported function call `{name}(...)`. See docs/insights.md for the functions phlite supports.")
