"""Validation of a flag's `filters` before it is stored (docs/flags-protocol.md "Flags: definition format", docs/flags-protocol.md "Flags: property filters").

Rejects what PostHog refuses too (unknown operators or property types, variant percentages not
summing to 100, unknown cohorts, payloads that are not JSON text) with a BadRequest whose detail
names the offending field, e.g. `groups[0].properties[1].value`. What PostHog stores and its
server evaluates in a defined way (a non-numeric `gt` value, an invalid regex, an override naming
no variant, a dependency on a missing flag, ...) is accepted and named in the returned warnings.
"""

import json
import math

from phlite import errors

from ..filters import CONDITION_LISTS
from . import dates, semver
from .operators import OPERATORS, compile_regex
from .values import json_text, to_number

PROPERTY_TYPES = frozenset(("person", "group", "cohort", "flag", "person_metadata"))
MAX_GROUP_TYPE_INDEX = 4  # five group types per project (docs/protocol.md "Groups: group types")


def _fail(path: str, problem: str):
    raise errors.BadRequest(f"Invalid filters: {path}: {problem}", attr="filters")


def _warn(warnings: list, path: str, problem: str) -> None:
    warnings.append(f"{path}: {problem}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _percentage(path: str, value, required=False):
    if value is None and not required:
        return
    if not _is_number(value) or not 0 <= value <= 100:
        _fail(path, "must be a number between 0 and 100")


def _group_index(path: str, value):
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_GROUP_TYPE_INDEX:
        _fail(path, f"must be an integer between 0 and {MAX_GROUP_TYPE_INDEX}")


def validate_flag(
    filters,
    cohorts_known: set[int] | None = None,
    flag_keys_known: set[str] | None = None,
    flag_ids_known: set[int] | None = None,
) -> list[str]:
    """Raise errors.BadRequest (attr="filters") if `filters` is a definition PostHog refuses too;
    else the warnings ("<path>: <problem>") about parts that are stored but never match.

    :param cohorts_known: ids of the project's cohorts; None skips the existence check.
    :param flag_keys_known: keys (and/or :param flag_ids_known: ids) of the project's other flags,
        which `type: flag` dependencies may name; both None skips the existence check.
    """
    if not isinstance(filters, dict):
        _fail("filters", "must be an object")
    variants = _validate_variants(filters.get("multivariate"))
    _group_index("aggregation_group_type_index", filters.get("aggregation_group_type_index"))
    known = (cohorts_known, flag_keys_known, flag_ids_known)
    warnings: list[str] = []
    for name in CONDITION_LISTS:
        conditions = filters.get(name)
        if conditions is None:
            continue
        if not isinstance(conditions, list):
            _fail(name, "must be a list")
        for index, condition in enumerate(conditions):
            _validate_condition(f"{name}[{index}]", condition, variants, known, warnings)
    _validate_payloads(filters.get("payloads"))
    holdout = filters.get("holdout")
    if holdout is not None:
        if not isinstance(holdout, dict) or not isinstance(holdout.get("id"), int):
            _fail("holdout", 'must be {"id": <int>, "exclusion_percentage": <0-100>}')
        _percentage("holdout.exclusion_percentage", holdout.get("exclusion_percentage"), required=True)
    if filters.get("feature_enrollment") not in (None, True, False):
        _fail("feature_enrollment", "must be a boolean")
    return warnings


def _validate_variants(multivariate) -> set[str]:
    if multivariate is None:
        return set()
    variants = multivariate.get("variants") if isinstance(multivariate, dict) else None
    if not isinstance(variants, list) or not variants:
        _fail("multivariate.variants", "must be a non-empty list")
    keys: set[str] = set()
    total = 0.0
    for index, variant in enumerate(variants):
        path = f"multivariate.variants[{index}]"
        key = variant.get("key") if isinstance(variant, dict) else None
        if not isinstance(key, str) or not key:
            _fail(f"{path}.key", "must be a non-empty string")
        if key in keys:
            _fail(f"{path}.key", f"duplicate variant key {key!r}")
        keys.add(key)
        _percentage(f"{path}.rollout_percentage", variant.get("rollout_percentage"), required=True)
        total += variant["rollout_percentage"]
    if abs(total - 100) > 1e-9:
        _fail("multivariate.variants", "variant rollout percentages must sum to 100")
    return keys


def _validate_condition(path: str, condition, variants: set[str], known, warnings: list) -> None:
    if not isinstance(condition, dict):
        _fail(path, "must be an object")
    properties = condition.get("properties")
    if properties is not None and not isinstance(properties, list):
        _fail(f"{path}.properties", "must be a list")
    for index, filt in enumerate(properties or []):
        _validate_property(f"{path}.properties[{index}]", filt, known, warnings)
    _percentage(f"{path}.rollout_percentage", condition.get("rollout_percentage"))
    variant = condition.get("variant")
    if variant is not None and not isinstance(variant, str):
        _fail(f"{path}.variant", "must be a string or null")
    if variant and variant not in variants:
        _warn(warnings, f"{path}.variant", f"variant override {variant!r} does not exist: the hashed variant is served")
    _group_index(f"{path}.aggregation_group_type_index", condition.get("aggregation_group_type_index"))


def _validate_property(path: str, filt, known, warnings: list) -> None:
    cohorts_known, flag_keys_known, flag_ids_known = known
    if not isinstance(filt, dict):
        _fail(path, "must be an object")
    kind = filt.get("type") or "person"
    operator = filt.get("operator") or "exact"
    if not isinstance(kind, str):
        _fail(f"{path}.type", "must be a string")
    if not isinstance(operator, str):
        _fail(f"{path}.operator", "must be a string")
    value = filt.get("value")
    key = filt.get("key")
    if kind not in PROPERTY_TYPES:
        _fail(f"{path}.type", f"unknown property type {kind!r}")
    if operator not in OPERATORS:
        _fail(f"{path}.operator", f"unknown operator {operator!r}")
    if kind == "flag":
        # PostHog stores malformed dependencies; its server never matches them (and a missing
        # flag makes the whole flag false, reason missing_dependency).
        if operator != "flag_evaluates_to":
            _warn(warnings, f"{path}.operator", "flag dependencies take flag_evaluates_to: this filter never matches")
        elif not isinstance(value, (bool, str)):
            _warn(warnings, f"{path}.value", "must be true, false or a variant key: this filter never matches")
        if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
            _warn(warnings, f"{path}.key", "names no flag: the flag is false (missing_dependency)")
        elif flag_keys_known is not None or flag_ids_known is not None:
            text = str(key)
            if text not in (flag_keys_known or ()) and not (
                text.isdigit() and int(text) in (flag_ids_known or ())
            ):
                _warn(warnings, f"{path}.key", f"flag {key} does not exist: the flag is false (missing_dependency)")
        return
    if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
        _fail(f"{path}.key", "must be a non-empty string")
    if kind == "cohort":
        if operator not in ("in", "not_in", "exact"):
            _fail(f"{path}.operator", "cohort filters take in or not_in")
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            _fail(f"{path}.value", "must be a cohort id")
        if cohorts_known is not None and int(value) not in cohorts_known:
            _fail(f"{path}.value", f"cohort {value} does not exist")
        return
    if operator in ("in", "not_in", "flag_evaluates_to"):
        _fail(f"{path}.operator", f"{operator} only applies to cohort or flag filters")
    if operator not in ("is_set", "is_not_set"):
        problem = _value_problem(operator, value)
        if problem in _NEVER_MATCHES:
            _warn(warnings, f"{path}.value", f"{problem}: this filter never matches")
        elif problem:
            _fail(f"{path}.value", problem)


# Values PostHog stores although its server can never match them (docs/flags-protocol.md "Flags: definition format").
_NOT_A_NUMBER = "must be a number"
_BAD_REGEX = "invalid regex pattern"
_NOT_A_DATE = "must be a date (2024-01-31, an ISO timestamp) or a relative date like -7d"
_NOT_A_VERSION = "must be a semantic version"
_NEVER_MATCHES = frozenset((_NOT_A_NUMBER, _BAD_REGEX, _NOT_A_DATE, _NOT_A_VERSION))


def _value_problem(operator: str, value) -> str | None:
    if value is None:
        return "is required"
    if operator in ("gt", "gte", "lt", "lte"):
        return None if to_number(value) is not None else _NOT_A_NUMBER
    if operator in ("between", "not_between"):
        bounds = [to_number(v) for v in value] if isinstance(value, list) and len(value) == 2 else None
        if not bounds or None in bounds or bounds[0] > bounds[1]:
            return "must be [min, max] numbers with min <= max"
    elif operator in ("regex", "not_regex"):
        if compile_regex(json_text(value)) is None:
            return _BAD_REGEX
    elif operator in ("is_date_before", "is_date_after", "is_date_exact"):
        if not isinstance(value, str) or (
            dates.parse_relative(value) is None and dates.parse_absolute(value) is None
        ):
            return _NOT_A_DATE
    elif operator.startswith("semver_"):
        if operator in ("semver_tilde", "semver_caret", "semver_wildcard"):
            valid = semver.parse_requirement(operator, value) is not None
        else:
            valid = semver.parse_version(value) is not None
        if not valid:
            return _NOT_A_VERSION
    return None


def _not_json(word):
    raise ValueError(f"{word} is not JSON")


def _validate_payloads(payloads) -> None:
    if payloads is None:
        return
    if not isinstance(payloads, dict):
        _fail("payloads", "must be an object")
    for key, payload in payloads.items():
        if not isinstance(payload, str):
            _fail(f"payloads.{key}", "must be JSON text (a JSON-encoded string)")
        try:
            # NaN and Infinity are not JSON (RFC 8259); the json module would take them, and the stored
            # payload could then not be served to a strict client.
            json.loads(payload, parse_constant=_not_json)
        except ValueError:
            _fail(f"payloads.{key}", "is not valid JSON")
