"""Turns stored flag rows into ready-to-run structures, once per definition change.

Everything that does not depend on the person is decided here: operators and filter values, the
variant table, valid overrides, payloads, the dependency order between flags, and which flags can
never be evaluated (missing, deleted or cyclic dependencies).
"""

from dataclasses import dataclass, field, replace
from datetime import tzinfo

from . import dates
from .cohorts import Cohorts
from .operators import Matcher, compile_filter, flag_value_matches, property_key
from ..filters import effective_filters, walk


@dataclass(frozen=True, slots=True)
class Condition:
    index: int
    group_index: int | None  # effective aggregation: None = person
    rollout: float | None  # fraction of 1; None = everyone (absent, null or exactly 100)
    variant: str | None  # override, kept only if it names an existing variant
    # All filters, AND-ed in the server's order: flag dependencies, properties, cohorts (the most
    # expensive) last.
    matchers: tuple[Matcher, ...]
    property_keys: frozenset[str]  # keys that decide whether a legacy super condition applies


@dataclass(frozen=True, slots=True)
class Flag:
    key: str
    id: int
    version: int
    name: str | None
    active: bool
    hash_prefix: bytes  # b"<key>." for hashing.prefixed_hash
    group_index: int | None
    conditions: tuple[Condition, ...]
    variants: tuple[tuple[str, float], ...]  # (key, cumulative upper bound)
    payloads: dict
    holdout: tuple[str, float | None] | None  # (variant, fraction or None = everyone)
    legacy_holdout: tuple[Condition, str | None] | None  # (condition, variant override)
    enrollment_key: str | None  # "$feature_enrollment/<key>" when feature_enrollment is on
    super_condition: Condition | None
    continuity: bool
    device_bucketing: bool
    dependencies: tuple[str, ...]  # keys of the flags this one reads
    missing_dependency: bool
    # filters.early_exit: a condition whose filters match but whose rollout excludes the person
    # ends the flag (false) instead of trying later conditions.
    early_exit: bool = False
    gated: bool = False  # has an early-access gate or a holdout (the slow path of evaluation)
    # Results are immutable and a flag has few distinct outcomes, so evaluate() reuses them:
    # {(enabled, variant, reason, condition index): FlagResult}. Filled lazily, never cleared.
    results: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CompiledFlags:
    """Compiled definitions of one project; safe to share between threads (never mutated)."""

    flags: dict[str, Flag]  # only flags that are not deleted
    order: tuple[Flag, ...]  # evaluation order: every flag after the flags it depends on
    group_indexes: frozenset[int]  # aggregation indexes some condition uses
    cohorts: Cohorts


def _fraction(percentage) -> float | None:
    if percentage is None or percentage == 100:
        return None
    try:
        return float(percentage) / 100
    except (TypeError, ValueError):
        return -1.0  # an unreadable percentage admits nobody (every hash is >= 0)


def _aggregation(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _resolve_dependency(key, by_key: dict, by_id: dict) -> str | None:
    """Server rows name the dependency by id (as text), local-eval payloads by key: accept both."""
    text = key if isinstance(key, str) else str(key)
    if text in by_id:
        return by_id[text]
    return text if text in by_key else None


def _dependency_matcher(dependency: str, expected) -> Matcher:
    # Dependencies are evaluated first; their values are in env.values (false if not evaluated).
    return lambda props, env: flag_value_matches(expected, env.values.get(dependency, False))


def _condition(index, raw, flag_level, variant_keys, by_key, by_id, cohorts, tz):
    """Returns (Condition, dependency keys, has an unresolvable dependency)."""
    raw = raw if isinstance(raw, dict) else {}
    if "aggregation_group_type_index" in raw:
        group_index = _aggregation(raw["aggregation_group_type_index"])
    else:
        group_index = flag_level
    flag_filters, matchers, cohort_matchers, keys, deps = [], [], [], set(), []
    missing = False
    for filt in _list(raw.get("properties")):
        if not isinstance(filt, dict):
            continue
        kind = filt.get("type")
        if kind == "flag":
            dep = _resolve_dependency(filt.get("key"), by_key, by_id)
            if dep is None:
                missing = True
            else:
                deps.append(dep)
                # Only flag_evaluates_to compares flag values; anything else never matches.
                expected = filt.get("value") if filt.get("operator") == "flag_evaluates_to" else None
                flag_filters.append(_dependency_matcher(dep, expected))
        elif kind == "cohort":
            cohort_matchers.append(cohorts.filter_matcher(filt))
        else:
            if kind != "person_metadata":
                keys.add(property_key(filt))
            matchers.append(compile_filter(filt, tz))
    variant = raw.get("variant")
    condition = Condition(
        index=index,
        group_index=group_index,
        rollout=_fraction(raw.get("rollout_percentage")),
        variant=variant if isinstance(variant, str) and variant in variant_keys else None,
        matchers=tuple(flag_filters + matchers + cohort_matchers),
        property_keys=frozenset(keys),
    )
    return condition, deps, missing


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _variants(filters: dict) -> tuple[tuple[str, float], ...]:
    table, cumulative = [], 0.0
    for variant in _list(_dict(filters.get("multivariate")).get("variants")):
        if not isinstance(variant, dict) or not isinstance(variant.get("key"), str):
            continue  # the server could not read such a flag at all; phlite skips the variant
        # Summed in order exactly like the server, so float boundaries land identically.
        try:
            cumulative += float(variant.get("rollout_percentage") or 0) / 100
        except (TypeError, ValueError):
            pass  # an unreadable share is an empty range
        table.append((variant.get("key"), cumulative))
    return tuple(table)


def _holdout(filters: dict) -> tuple[str, float | None] | None:
    holdout = filters.get("holdout")
    if not isinstance(holdout, dict) or holdout.get("id") is None:
        return None
    try:
        percentage = min(max(float(holdout.get("exclusion_percentage")), 0.0), 100.0)
    except (TypeError, ValueError):
        return None
    return f"holdout-{holdout['id']}", (None if percentage == 100.0 else percentage / 100)


def _compile_flag(row: dict, by_key, by_id, cohorts, tz) -> Flag:
    filters = effective_filters(row.get("filters"), row.get("rollout_percentage"))
    key = row["key"]
    flag_level = _aggregation(filters.get("aggregation_group_type_index"))
    variants = _variants(filters)
    variant_keys = frozenset(k for k, _ in variants)
    conditions, dependencies, missing = [], [], False

    def build(index, raw, level=flag_level):
        nonlocal missing
        condition, deps, lacks = _condition(index, raw, level, variant_keys, by_key, by_id, cohorts, tz)
        dependencies.extend(deps)
        missing |= lacks
        return condition

    for index, raw in enumerate(_list(filters.get("groups"))):
        conditions.append(build(index, raw))
    super_groups = _list(filters.get("super_groups"))
    super_condition = build(0, super_groups[0], None) if super_groups else None
    legacy_holdout = None
    holdout_groups = _list(filters.get("holdout_groups"))
    if holdout_groups and not filters.get("holdout") and isinstance(holdout_groups[0], dict):
        first = holdout_groups[0]
        # Legacy holdout groups only ever supported a plain percentage; with properties they never match.
        if not first.get("properties"):
            override = first.get("variant")
            legacy_holdout = (build(0, first, None), override if isinstance(override, str) else None)
    bucketing = row.get("bucketing_identifier") or filters.get("bucketing_identifier")
    holdout = _holdout(filters)
    enrollment_key = f"$feature_enrollment/{key}" if filters.get("feature_enrollment") is True else None
    return Flag(
        key=key,
        id=row.get("id"),
        version=row.get("version"),
        name=row.get("name"),
        active=bool(row.get("active")),
        hash_prefix=f"{key}.".encode(),
        group_index=flag_level,
        conditions=tuple(conditions),
        variants=variants,
        payloads=_dict(filters.get("payloads")),
        holdout=holdout,
        legacy_holdout=legacy_holdout,
        enrollment_key=enrollment_key,
        super_condition=super_condition,
        continuity=bool(row.get("ensure_experience_continuity")),
        device_bucketing=bucketing == "device_id",
        dependencies=tuple(dict.fromkeys(dependencies)),
        missing_dependency=missing,
        early_exit=filters.get("early_exit") is True,
        gated=any(x is not None for x in (holdout, legacy_holdout, enrollment_key, super_condition)),
    )


def _order(flags: dict[str, Flag]) -> tuple[tuple[str, ...], set[str]]:
    """Topological order (dependencies first) and the keys that can never be evaluated: those on
    a dependency cycle or depending on a flag with a missing dependency."""
    graph = {key: flag.dependencies for key, flag in flags.items()}
    order, broken = walk(graph, broken=[key for key, flag in flags.items() if flag.missing_dependency])
    return tuple(order), broken


def compile_flags(flags: list[dict], cohorts: dict | None = None, tz: tzinfo = dates.UTC) -> CompiledFlags:
    """Compile a project's flag rows and cohorts. Call again whenever any definition changes.

    :param flags: flag rows as stored (deleted ones may be included; they are dropped here).
    :param cohorts: {cohort id: {"properties": group, "is_static": bool}} of the project.
    :param tz: the team timezone naive dates are read in.
    """
    rows = [row for row in flags if not row.get("deleted")]
    by_key = {row["key"]: row for row in rows}
    by_id = {str(row["id"]): row["key"] for row in rows if row.get("id") is not None}
    compiled_cohorts = Cohorts(cohorts or {}, tz)
    compiled = {row["key"]: _compile_flag(row, by_key, by_id, compiled_cohorts, tz) for row in rows}
    order, broken = _order(compiled)
    for key in broken:
        compiled[key] = replace(compiled[key], missing_dependency=True)
    group_indexes = frozenset(
        index
        for f in compiled.values()
        for index in (f.group_index, *(c.group_index for c in f.conditions))
        if index is not None
    )
    return CompiledFlags(compiled, tuple(compiled[key] for key in order), group_indexes, compiled_cohorts)
