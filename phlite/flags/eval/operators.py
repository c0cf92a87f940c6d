"""Property-filter operators, compiled once per flag definition (docs/flags-protocol.md "Flags: operators").

`compile_property(filter)` picks the operator and pre-parses the filter value (lowercased text,
numbers, semver ranges, dates, compiled regexes) so that matching a person is one dict lookup and
one comparison. Results follow the flags *server*: a missing property is a definite answer (the
"missing" column), never "inconclusive"; any evaluation error makes the filter false.
"""

import functools
from collections.abc import Callable
from datetime import datetime, tzinfo

import regex

from . import dates, semver
from .values import json_text, to_number

# Client-supplied property values run against stored patterns, so a pathological pattern must not
# hold a worker thread: after this many seconds the filter is false and the flag reports an error.
REGEX_TIMEOUT = 0.05

MISSING = object()

OPERATORS = frozenset(
    (
        "exact", "is_not", "is_set", "is_not_set", "icontains", "not_icontains",
        "icontains_multi", "not_icontains_multi", "regex", "not_regex", "starts_with",
        "not_starts_with", "ends_with", "not_ends_with", "gt", "gte", "lt", "lte", "between",
        "not_between", "is_date_before", "is_date_after", "is_date_exact", "semver_eq",
        "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte", "semver_tilde",
        "semver_caret", "semver_wildcard", "in", "not_in", "flag_evaluates_to",
    )
)  # fmt: skip


class Env:
    """Per-request state the matchers may read or set; one per evaluate() call, never shared."""

    __slots__ = ("now", "error", "static_cohorts", "cohort_memo", "values", "person_metadata", "read_clock")

    def __init__(self, now: datetime, static_cohorts=frozenset(), person_metadata=None):
        self.now = now
        # What `type: person_metadata` filters read: the stored person's own fields (created_at),
        # never its properties; empty when no person is stored.
        self.person_metadata: dict = person_metadata or {}
        self.read_clock = False  # set when a relative date was resolved against `now`
        self.error: str | None = None  # set by a filter that failed (regex timeout)
        self.static_cohorts = static_cohorts
        self.cohort_memo: dict = {}
        self.values: dict = {}  # {flag key: value} of the flags evaluated so far (dependencies)


Matcher = Callable[[dict, Env], bool]


def _never(props, env) -> bool:
    return False


# --- value helpers ---------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(text: str) -> str:
    # str.lower() is the fast C path and equals ASCII lowering when the text is ASCII.
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _text(value) -> str:
    return value if isinstance(value, str) else json_text(value)


def _boolish(value) -> bool:
    if value is True or value is False:
        return True
    if isinstance(value, str):
        return value.lower() in ("true", "false")
    if isinstance(value, list):
        return all(_boolish(v) for v in value)
    return False


def truthy(value) -> bool:
    """`true`, "true" in any case, or a list of only such values (the empty list included)."""
    if value is True:
        return True
    if isinstance(value, str):
        return value.lower() == "true"
    if isinstance(value, list):
        return all(truthy(v) for v in value)
    return False


# --- operator builders: filter value -> (test(property value) -> bool) ------------------------


def _exact(value):
    if _boolish(value):
        want = truthy(value)
        return lambda p: truthy(p) == want
    if isinstance(value, list):
        allowed = frozenset(_text(v).lower() for v in value)
        return lambda p: _text(p).lower() in allowed
    target = _text(value).lower()
    return lambda p: _text(p).lower() == target


def _is_not(value):
    exact = _exact(value)
    return lambda p: not exact(p)


def _text_op(method: str, negate: bool):
    def build(value):
        needle = _ascii_lower(_text(value))
        if method == "contains":
            test = lambda p: needle in _ascii_lower(_text(p))  # noqa: E731
        elif method == "starts":
            test = lambda p: _ascii_lower(_text(p)).startswith(needle)  # noqa: E731
        else:
            test = lambda p: _ascii_lower(_text(p)).endswith(needle)  # noqa: E731
        return (lambda p: not test(p)) if negate else test

    return build


def _contains_any(negate: bool):
    def build(value):
        needles = tuple(_ascii_lower(_text(v)) for v in (value if isinstance(value, list) else [value]))

        def test(p):
            haystack = _ascii_lower(_text(p))
            return any(n in haystack for n in needles) != negate

        return test

    return build


_NUMERIC = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _numeric(operator: str):
    compare = _NUMERIC[operator]

    def build(value):
        bound = to_number(value)
        if bound is None:
            return None

        def test(p):
            number = to_number(p)
            return number is not None and compare(number, bound)

        return test

    return build


def _between(negate: bool):
    def build(value):
        if not isinstance(value, list) or len(value) != 2:
            return None
        low, high = to_number(value[0]), to_number(value[1])
        if low is None or high is None or low != low or high != high or low > high:
            return None

        def test(p):
            number = to_number(p)
            if number is None or number != number:  # NaN is malformed: no match either way
                return False
            return (low <= number <= high) != negate

        return test

    return build


@functools.lru_cache(maxsize=4096)
def _version_of_text(text: str):
    return semver.parse_version(text)


def _version(value):
    return _version_of_text(value if isinstance(value, str) else json_text(value))


_SEMVER = {
    "semver_eq": lambda a, b: a == b,
    "semver_neq": lambda a, b: a != b,
    "semver_gt": lambda a, b: a > b,
    "semver_gte": lambda a, b: a >= b,
    "semver_lt": lambda a, b: a < b,
    "semver_lte": lambda a, b: a <= b,
}


def _semver_compare(operator: str):
    compare = _SEMVER[operator]

    def build(value):
        bound = semver.parse_version(value)
        if bound is None:
            return None

        def test(p):
            version = _version(p)
            return version is not None and compare(version, bound)

        return test

    return build


def _semver_range(operator: str):
    def build(value):
        requirement = semver.parse_requirement(operator, value)
        if requirement is None:
            return None

        def test(p):
            version = _version(p)
            return version is not None and requirement.matches(version)

        return test

    return build


def _rust_dollar(pattern: str) -> str:
    """fancy_regex's `$` only matches at the very end; Python's also before a final newline."""
    if regex.search(r"\(\?[a-zA-Z]*m", pattern):
        return pattern  # multi-line mode: `$` means end of line in both
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i : i + 2]
            out.append(r"\Z" if escaped == r"\z" else escaped)
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A "]" right after "[" or "[^" is a literal member, not the end of the class.
            j = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[j : j + 1] == "]":
                out.append(pattern[i : j + 1])
                i = j + 1
                continue
        elif char == "$":
            char = r"\Z"
        out.append(char)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str):
    """The compiled pattern, or None if the server could not compile it either."""
    try:
        return regex.compile(_rust_dollar(pattern))
    except (regex.error, ValueError, OverflowError, RecursionError):
        return None


# --- compile ----------------------------------------------------------------------------------

_MISSING_IS_TRUE = frozenset(
    ("is_not", "not_icontains", "not_icontains_multi", "not_regex", "not_starts_with",
     "not_ends_with", "not_between")
)  # fmt: skip

_BUILDERS = {
    "exact": _exact,
    "is_not": _is_not,
    "icontains": _text_op("contains", False),
    "not_icontains": _text_op("contains", True),
    "starts_with": _text_op("starts", False),
    "not_starts_with": _text_op("starts", True),
    "ends_with": _text_op("ends", False),
    "not_ends_with": _text_op("ends", True),
    "icontains_multi": _contains_any(False),
    "not_icontains_multi": _contains_any(True),
    "between": _between(False),
    "not_between": _between(True),
    **{op: _numeric(op) for op in _NUMERIC},
    **{op: _semver_compare(op) for op in _SEMVER},
    **{op: _semver_range(op) for op in ("semver_tilde", "semver_caret", "semver_wildcard")},
}


def property_key(filt: dict) -> str:
    key = filt.get("key")
    return key if isinstance(key, str) else json_text(key)


def compile_filter(filt: dict, tz: tzinfo = dates.UTC) -> Matcher:
    """compile_property, but a `person_metadata` filter matches against the person's own fields
    (env.person_metadata) instead of the properties it is given."""
    matcher = compile_property(filt, tz)
    if filt.get("type") != "person_metadata":
        return matcher
    return lambda props, env: matcher(env.person_metadata, env)


def compile_property(filt: dict, tz: tzinfo = dates.UTC) -> Matcher:
    """A matcher(props, env) -> bool for one person/group property filter."""
    key = property_key(filt)
    operator = filt.get("operator") or "exact"
    if not isinstance(operator, str):
        return _never
    if operator == "is_set":
        return lambda props, env: key in props
    if operator == "is_not_set":
        return lambda props, env: key not in props
    value = filt.get("value")
    if value is None:
        return _never  # the server's "no value, no match", before it even looks at the property
    missing = operator in _MISSING_IS_TRUE
    if operator in ("regex", "not_regex"):
        return _regex_matcher(key, value, operator == "not_regex")
    if operator in ("is_date_before", "is_date_after", "is_date_exact"):
        return _date_matcher(key, value, operator, tz)
    builder = _BUILDERS.get(operator)
    test = builder(value) if builder else None
    if test is None:  # unknown operator or an unusable filter value: only "missing" can match
        return (lambda props, env: key not in props) if missing else _never

    def match(props, env):
        found = props.get(key, MISSING)
        if found is MISSING:
            return missing
        return test(found)

    return match


def _regex_matcher(key: str, pattern, negate: bool) -> Matcher:
    compiled = compile_regex(_text(pattern))

    def match(props, env):
        found = props.get(key, MISSING)
        if found is MISSING:
            return negate
        if compiled is None:
            return False
        try:
            # concurrent=False keeps the GIL during the search: the timeout counts wall-clock
            # time, so a search that let other threads run could time out on a busy server
            # while merely waiting (and ran half as fast). The timeout still bounds it.
            return (compiled.search(_text(found), timeout=REGEX_TIMEOUT, concurrent=False) is not None) != negate
        except TimeoutError:
            env.error = "regex_timeout"
            return False

    return match


def _date_matcher(key: str, value, operator: str, tz: tzinfo) -> Matcher:
    if not isinstance(value, str):
        return _never
    relative = dates.parse_relative(value)
    fixed = None if relative else dates.parse_absolute(value, tz)
    if relative is None and fixed is None:
        return _never
    if operator == "is_date_before":
        compare = lambda a, b: a < b  # noqa: E731
    elif operator == "is_date_after":
        compare = lambda a, b: a > b  # noqa: E731
    else:
        compare = lambda a, b: a == b  # noqa: E731

    def match(props, env):
        found = props.get(key, MISSING)
        if found is MISSING:
            return False
        if relative is not None or (isinstance(found, str) and dates.parse_relative(found) is not None):
            env.read_clock = True  # this answer moves with the clock: it must not be cached
        moment = dates.parse_property_date(found, env.now, tz)
        bound = fixed if relative is None else dates.resolve_relative(*relative, env.now, tz)
        return moment is not None and bound is not None and compare(moment, bound)

    return match


def flag_value_matches(expected, actual) -> bool:
    """flag_evaluates_to: true = any enabled value, false = disabled, text = that exact variant."""
    if expected is True:
        return actual is not False
    if expected is False:
        return actual is False
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    return False
