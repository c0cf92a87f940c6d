"""Table tests for every property operator of docs/flags-protocol.md "Flags: operators", with the server's results for
missing properties, the truthiness rule of `exact`, semver ranges, dates and the regex timeout."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from phlite.flags.eval import dates, semver
from phlite.flags.eval.operators import Env, compile_property
from phlite.flags.eval.values import json_text, to_number

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=timezone.utc)
MISSING = object()


def match(operator, value, prop=MISSING, tz=dates.UTC, now=NOW):
    filt = {"key": "k", "operator": operator, "value": value, "type": "person"}
    props = {} if prop is MISSING else {"k": prop}
    return compile_property(filt, tz)(props, Env(now))


# (operator, filter value, property value or MISSING, expected)
CASES = [
    # exact: truthiness when the filter value is boolean-like
    ("exact", True, True, True),
    ("exact", True, "TRUE", True),
    ("exact", "true", True, True),
    ("exact", "False", False, True),
    ("exact", False, "abc", True),  # false matches any non-truthy value
    ("exact", False, 0, True),
    ("exact", False, None, True),
    ("exact", False, "true", False),
    ("exact", ["true", False], True, False),  # a list is truthy only if all items are
    ("exact", ["true", "TRUE"], "true", True),
    ("exact", [], "us", False),
    ("exact", [], True, True),  # [] is "all truthy": only truthy properties match
    ("exact", "value", "VALUE", True),
    ("exact", "value", "value2", False),
    ("exact", 5, "5", True),
    ("exact", 5, 5.0, False),  # "5" vs "5.0"
    ("exact", 5.0, 5.0, True),
    ("exact", ["US", "CA"], "us", True),
    ("exact", ["US", "CA"], "de", False),
    ("exact", [1, 2], 2, True),
    ("exact", "null", None, True),
    ("exact", "x", MISSING, False),
    ("exact", None, "x", False),  # no filter value: never matches
    ("is_not", "value", "other", True),
    ("is_not", "value", "Value", False),
    ("is_not", ["a", "b"], "c", True),
    ("is_not", "x", None, True),
    ("is_not", "x", MISSING, True),
    ("is_not", True, "false", True),
    ("is_not", None, MISSING, False),
    ("is_set", None, None, True),
    ("is_set", "any", "", True),
    ("is_set", "any", MISSING, False),
    ("is_not_set", "any", MISSING, True),
    ("is_not_set", "any", None, False),
    # text operators: ASCII case-insensitive on str(x)
    ("icontains", "valUe", "343tfvalue5", True),
    ("icontains", "3", 323, True),
    ("icontains", "valUe", 123, False),
    ("icontains", "x", MISSING, False),
    ("icontains", "true", True, True),
    ("not_icontains", "abc", "xxABCxx", False),
    ("not_icontains", "abc", "xyz", True),
    ("not_icontains", "abc", MISSING, True),
    ("icontains_multi", ["foo", "BAR"], "xbarx", True),
    ("icontains_multi", ["foo", "bar"], "baz", False),
    ("icontains_multi", ["foo"], MISSING, False),
    ("not_icontains_multi", ["foo", "bar"], "baz", True),
    ("not_icontains_multi", ["foo", "bar"], "FOO", False),
    ("not_icontains_multi", ["foo"], MISSING, True),
    ("starts_with", "Val", "value", True),
    ("starts_with", "val", "avalue", False),
    ("starts_with", "x", MISSING, False),
    ("not_starts_with", "val", "avalue", True),
    ("not_starts_with", "val", MISSING, True),
    ("ends_with", "UE", "value", True),
    ("ends_with", "ue", "values", False),
    ("ends_with", "x", MISSING, False),
    ("not_ends_with", "ue", "values", True),
    ("not_ends_with", "x", MISSING, True),
    # regex: unanchored search on str(x); invalid pattern is false for both
    ("regex", r"^\d+$", "123", True),
    ("regex", r"^\d+$", 123, True),
    ("regex", r"^\d+$", "123\n", False),  # Rust's $ is end of text only
    ("regex", "bc", "abcd", True),
    ("regex", "(", "abc", False),
    ("regex", "x", MISSING, False),
    ("not_regex", "(", "abc", False),
    ("not_regex", "bc", "abcd", False),
    ("not_regex", "zz", "abcd", True),
    ("not_regex", "x", MISSING, True),
    ("regex", "[$]", "a$", True),
    # numeric: both sides numbers or numeric text; anything else is false
    ("gt", 5, 6, True),
    ("gt", 5, "6", True),
    ("gt", "5", 6.5, True),
    ("gt", 5, 5, False),
    ("gte", 5, 5, True),
    ("lt", 5, 4, True),
    ("lt", 5, "abc", False),  # no lexicographic fallback
    ("lt", "abc", 4, False),
    ("lte", 5, 5.0, True),
    ("gt", 5, True, False),
    ("gt", 5, None, False),
    ("gt", 5, " 6", False),  # Rust's float grammar: no whitespace
    ("gt", 5, "1e3", True),
    ("gt", 5, MISSING, False),
    ("lt", 5, MISSING, False),
    ("between", [1, 10], 1, True),
    ("between", [1, 10], "10", True),
    ("between", [1, 10], 11, False),
    ("between", [1, 10], "nan", False),
    ("between", [1, 10], MISSING, False),
    ("between", [10, 1], 5, False),  # min > max is an invalid filter
    ("not_between", [1, 10], 11, True),
    ("not_between", [1, 10], 5, False),
    ("not_between", [1, 10], MISSING, True),
    ("not_between", [1, 10], "nan", False),
    # semver
    ("semver_eq", "1.2.3", "1.2.3", True),
    ("semver_eq", "1.2.3", "v1.2.3", True),
    ("semver_eq", "1.2.0", "1.2", True),
    ("semver_eq", "3.8.0", "3.08", True),
    ("semver_eq", "1.2.3", "1.2.3-beta", False),
    ("semver_neq", "1.2.3", "1.2.4", True),
    ("semver_gt", "1.2.3", "1.10.0", True),
    ("semver_gt", "1.2.3", "1.2.3-rc.1", False),
    ("semver_gte", "1.2.3", "1.2.3", True),
    ("semver_lt", "1.2.3-alpha", "1.2.3-alpha.1", False),
    ("semver_lt", "1.2.3", "1.2.3-alpha", True),
    ("semver_lte", "2.0.0", "1.99.99", True),
    ("semver_eq", "1.2.3", "not a version", False),
    ("semver_eq", "garbage", "1.2.3", False),
    ("semver_gt", "1.0.0", MISSING, False),
    ("semver_tilde", "1.2.3", "1.2.9", True),
    ("semver_tilde", "1.2.3", "1.3.0", False),
    ("semver_tilde", "1.2.3", "1.2.2", False),
    ("semver_caret", "1.2.3", "1.9.0", True),
    ("semver_caret", "1.2.3", "2.0.0", False),
    ("semver_caret", "0.2.3", "0.2.9", True),
    ("semver_caret", "0.2.3", "0.3.0", False),
    ("semver_caret", "0.0.3", "0.0.3", True),
    ("semver_caret", "0.0.3", "0.0.4", False),
    ("semver_caret", "1.2.3", "1.5.0-beta", False),  # ranges exclude other pre-releases
    ("semver_wildcard", "1.*", "1.99.0", True),
    ("semver_wildcard", "1.*", "2.0.0", False),
    ("semver_wildcard", "1.2.*", "1.2.7", True),
    ("semver_wildcard", "1.2.*", "1.3.0", False),
    ("semver_wildcard", "1.*.3", "1.2.3", False),  # invalid pattern
    ("semver_tilde", "1.2.3", MISSING, False),
    # dates (NOW = 2024-06-15 12:00 UTC)
    ("is_date_before", "2024-01-01", "2023-12-31", True),
    ("is_date_before", "2024-01-01", "2024-01-01", False),
    ("is_date_after", "2024-01-01", "2024-01-01T00:00:01Z", True),
    ("is_date_after", "2024-01-01", 1704067201, True),  # epoch seconds
    ("is_date_after", "2024-01-01", "1704067201", True),
    ("is_date_exact", "2024-01-01", "2024-01-01T00:00:00+00:00", True),
    ("is_date_exact", "2024-01-01T02:00:00+02:00", "2024-01-01", True),
    ("is_date_after", "-7d", "2024-06-10", True),
    ("is_date_after", "-7d", "2024-06-07", False),
    ("is_date_before", "-1m", "2024-05-14", True),
    ("is_date_before", "-1y", "2023-06-16", False),
    ("is_date_before", "2024-01-01", "not a date", False),
    ("is_date_before", "not a date", "2023-01-01", False),
    ("is_date_before", 20240101, "2023-01-01", False),  # the filter value must be text
    ("is_date_before", "2024-01-01", True, False),
    ("is_date_before", "2024-01-01", MISSING, False),
    ("is_date_after", "-7d", MISSING, False),
    # cohort/flag operators on a property filter are errors: false
    ("in", 1, "x", False),
    ("flag_evaluates_to", True, True, False),
    ("no_such_operator", "x", "x", False),
]


@pytest.mark.parametrize("operator,value,prop,expected", CASES)
def test_operator(operator, value, prop, expected):
    assert match(operator, value, prop) is expected


def test_naive_dates_use_the_team_timezone():
    ny = ZoneInfo("America/New_York")
    # Midnight in New York is 04:00 UTC in June.
    assert match("is_date_after", "2024-06-01", "2024-06-01T03:00:00Z", tz=ny) is False
    assert match("is_date_after", "2024-06-01", "2024-06-01T05:00:00Z", tz=ny) is True
    assert match("is_date_exact", "2024-06-01", "2024-06-01 00:00", tz=ny) is True


def test_relative_months_clamp_the_day():
    now = datetime(2020, 3, 31, 12, 0, tzinfo=timezone.utc)
    assert dates.resolve_relative(1, "m", now) == datetime(2020, 2, 29, 12, 0, tzinfo=timezone.utc)
    assert dates.resolve_relative(2, "m", now) == datetime(2020, 1, 29, 12, 0, tzinfo=timezone.utc)
    assert dates.parse_relative("10000d") is None
    assert dates.parse_relative("3x") is None


def test_catastrophic_regex_finishes_fast():
    # That it returns at all shows the bound (unbounded, the first would run for hours); no
    # timed assertion, which fails on a loaded machine.
    assert match("regex", "(a+)+$", "a" * 30 + "b") is False
    env = Env(NOW)
    matcher = compile_property({"key": "k", "operator": "regex", "value": "(x+x+)+y"})
    assert matcher({"k": "x" * 5000}, env) is False
    assert env.error == "regex_timeout"


@pytest.mark.parametrize(
    "value,text",
    [("abc", "abc"), (5, "5"), (5.0, "5.0"), (True, "true"), (None, "null"), (1e16, "1e16"),
     (1e-5, "0.00001"), (1e-7, "1e-7"), ({"b": 1, "a": [1, "x"]}, '{"a":[1,"x"],"b":1}')],
)  # fmt: skip
def test_json_text_is_serde_json(value, text):
    assert json_text(value) == text


@pytest.mark.parametrize(
    "value,number",
    [("5", 5.0), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0), (" 5", None), ("1_0", None),
     ("abc", None), (True, None), (None, None), (7, 7.0)],
)  # fmt: skip
def test_to_number_uses_rusts_grammar(value, number):
    assert to_number(value) == number


def test_semver_parse_rules():
    assert semver.parse_version("v1.2") == semver.parse_version("1.2.0")
    assert semver.parse_version("V1.2.3") is None  # only a lowercase v is stripped
    assert semver.parse_version("1.2.3.4") is None
    assert semver.parse_version("1.2.3-01") is None  # numeric pre-release with a leading zero
    assert semver.parse_version("1.2.3+build") != semver.parse_version("1.2.3")
