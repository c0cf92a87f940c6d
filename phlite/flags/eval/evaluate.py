"""Evaluates compiled flags for one person/request: the server's algorithm of docs/flags-protocol.md "Flags: evaluation order".

Plain data in, results out: no I/O, no clock (the caller passes `now`). Order per flag:
dependencies, early-access gate (feature_enrollment / legacy super_groups), holdout, then the
release conditions in list order; an unmatched flag reports its highest-scored reason (docs/flags-protocol.md "Flags: reasons").
"""

from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timezone

from .cohorts import CohortNotFound
from .compile import CompiledFlags, Condition, Flag
from .hashing import holdout_hash, prefixed_hash
from .operators import Env
from .values import json_text

__all__ = ["Context", "FlagResult", "evaluate", "errors_while_computing"]


@dataclass(frozen=True)
class Context:
    """Everything about one request that flag evaluation reads. Resolved by the caller."""

    distinct_id: str
    person_properties: dict = field(default_factory=dict)  # stored, overlaid by the request's
    _: KW_ONLY
    now: datetime
    groups: dict = field(default_factory=dict)  # {"company": "acme"} from the request
    group_properties: dict = field(default_factory=dict)  # {"company": {...}}, stored + request
    group_type_mapping: dict = field(default_factory=dict)  # {0: "company"}
    static_cohorts: frozenset = frozenset()  # ids of static cohorts the person belongs to
    hash_key_overrides: dict = field(default_factory=dict)  # {flag key: hash key} (continuity)
    anon_distinct_id: str | None = None
    device_id: str | None = None
    person_created_at: datetime | None = None  # the stored person's creation time (person_metadata filters)


@dataclass(frozen=True, slots=True)
class FlagResult:
    """One flag's answer: what a /flags v2 FlagDetail needs."""

    key: str
    enabled: bool
    variant: str | None
    reason_code: str
    condition_index: int | None
    description: str  # the reason's description
    payload: str | None  # stored JSON text, only for an enabled flag
    id: int
    version: int
    failed: bool = False  # evaluation impossible (e.g. deleted cohort): enabled is false
    error: str | None = None  # a filter failed (regex timeout) and was taken as false
    name: str | None = None  # the flag's description (its `name` column), for metadata
    # Scratch space for consumers: forms derived from this immutable result (its serialised v2
    # detail), kept with it because evaluate() reuses results across requests. Never copied by replace().
    memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)
    # true / false / variant key, as in v1 responses and flag_evaluates_to. Set once at construction
    # (evaluate() reads it for every flag of every request).
    value: bool | str = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "value", self.variant if self.enabled and self.variant is not None else self.enabled)


_SCORES = {
    "super_condition_value": 6,
    "holdout_condition_value": 5,
    "condition_match": 4,
    "out_of_rollout_bound": 3,
    "no_condition_match": 2,
    "no_group_type": 1,
    "flag_disabled": 0,
    "missing_dependency": -1,
}
_BY_SCORE = {score: code for code, score in _SCORES.items()}
_DESCRIPTIONS = {
    "no_condition_match": "No matching condition set",
    "out_of_rollout_bound": "Out of rollout bound",
    "no_group_type": "No group type",
    "super_condition_value": "Super condition value",
    "holdout_condition_value": "Holdout condition value",
    "flag_disabled": "Feature flag is disabled",
    "missing_dependency": "Flag cannot be evaluated due to missing dependency",
}
_VARIANT_SALT = b"variant"


def errors_while_computing(results: dict[str, FlagResult]) -> bool:
    """The response's errorsWhileComputingFlags."""
    for r in results.values():  # a plain loop: any() over a generator costs twice as much here
        if r.failed or r.error is not None or r.reason_code == "missing_dependency":
            return True
    return False


def evaluate(
    compiled: CompiledFlags,
    ctx: Context,
    flag_keys: list[str] | None = None,
    *,
    excluded: frozenset[str] | set[str] = frozenset(),
    report: dict | None = None,
) -> dict[str, FlagResult]:
    """Evaluate every active flag (or only `flag_keys` plus what they depend on) for one request.

    Inactive and deleted flags are absent from the result. `excluded` names flags the request may
    not see (runtime, evaluation tags): absent too, and false to the flags that depend on them.
    :param report: if given, gets "read_clock": whether some answer depended on `now`.
    """
    env = Env(ctx.now, ctx.static_cohorts, _person_metadata(ctx))
    groups = _group_contexts(compiled, ctx) if compiled.group_indexes else {}
    wanted = None if flag_keys is None else with_dependencies(compiled, flag_keys)
    values = env.values
    results: dict[str, FlagResult] = {}
    for flag in compiled.order:
        key = flag.key
        if wanted is not None and key not in wanted:
            continue
        if not flag.active or key in excluded:
            values[key] = False
            continue
        if flag.gated or flag.missing_dependency:
            result = _evaluate_flag(flag, ctx, env, groups)
        else:
            # _evaluate_flag inlined for the common flag (no gate, dependencies present): one call less per flag.
            env.error = None
            try:
                outcome = _conditions(flag, ctx, env, groups)
            except CohortNotFound as exc:
                result = _cohort_failure(flag, exc)
            else:
                result = flag.results.get(outcome) if env.error is None else None
                if result is None:
                    result = _outcome_result(flag, outcome, env)
        values[key] = result.value
        results[key] = result
    if report is not None:
        report["read_clock"] = env.read_clock
    return results


def _person_metadata(ctx: Context) -> dict | None:
    """The person's own fields that person_metadata filters read; None without a stored person,
    so such a filter sees its key missing (docs/flags-protocol.md "Flags: property filters")."""
    if ctx.person_created_at is None:
        return None
    return {"created_at": ctx.person_created_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")}


def with_dependencies(compiled: CompiledFlags, flag_keys) -> set[str]:
    """The keys of flag_keys that exist, plus every flag they depend on, transitively."""
    wanted: set[str] = set()
    pending = [key for key in flag_keys if key in compiled.flags]
    while pending:
        key = pending.pop()
        if key not in wanted:
            wanted.add(key)
            pending.extend(compiled.flags[key].dependencies)
    return wanted


def _group_contexts(compiled: CompiledFlags, ctx: Context) -> dict[int, tuple[str, dict]]:
    """{group type index: (bucketing key, properties + $group_key)} for groups the request names."""
    contexts = {}
    for index in compiled.group_indexes:
        name = ctx.group_type_mapping.get(index, ctx.group_type_mapping.get(str(index)))
        if name is None or name not in ctx.groups:
            continue
        key = ctx.groups[name]
        if isinstance(key, bool) or not isinstance(key, (str, int, float)) or key == "":
            continue  # the server skips empty and non-string, non-number group keys
        stored = ctx.group_properties.get(name)
        props = dict(stored) if isinstance(stored, dict) else {}
        props["$group_key"] = key
        contexts[index] = (key if isinstance(key, str) else json_text(key), props)
    return contexts


def _person_bucket(flag: Flag, ctx: Context) -> str | None:
    if flag.device_bucketing:
        return ctx.device_id or None
    if flag.continuity:
        override = ctx.hash_key_overrides.get(flag.key)
        if override is not None:
            return override
        return ctx.anon_distinct_id or ctx.distinct_id
    return ctx.distinct_id


def _variant(flag: Flag, bucket: str) -> str | None:
    if not flag.variants:
        return None
    hashed = prefixed_hash(flag.hash_prefix, bucket, _VARIANT_SALT)
    for key, upper in flag.variants:
        if hashed < upper:
            return key
    return None


def _filters_pass(condition: Condition, props: dict, env: Env) -> bool:
    for matcher in condition.matchers:
        if not matcher(props, env):
            return False
    return True


def _evaluate_flag(flag: Flag, ctx: Context, env: Env, groups: dict) -> FlagResult:
    if flag.missing_dependency:
        return _result(flag, False, None, "missing_dependency", None, None)
    env.error = None
    try:
        if flag.gated:
            outcome = _gates(flag, ctx, env, groups) or _conditions(flag, ctx, env, groups)
        else:
            outcome = _conditions(flag, ctx, env, groups)
    except CohortNotFound as exc:
        return _cohort_failure(flag, exc)
    return _outcome_result(flag, outcome, env)


def _cohort_failure(flag: Flag, exc: CohortNotFound) -> FlagResult:
    return FlagResult(
        flag.key, False, None, exc.code, None, str(exc), None, flag.id, flag.version,
        failed=True, name=flag.name,
    )  # fmt: skip


def _outcome_result(flag: Flag, outcome, env: Env) -> FlagResult:
    if env.error is not None:
        return _result(flag, *outcome, env.error)
    # Building a frozen dataclass costs more than evaluating a simple flag: reuse the result.
    result = flag.results.get(outcome)
    if result is None:
        result = flag.results[outcome] = _result(flag, *outcome, None)
    return result


def _result(flag: Flag, enabled, variant, code, index, error) -> FlagResult:
    if code == "condition_match":
        description = f"Matched condition set {index + 1}"
    else:
        description = _DESCRIPTIONS[code]
    payload = None
    if enabled:
        payload = flag.payloads.get(variant if variant is not None else "true")
        if payload is not None and not isinstance(payload, str):
            payload = json_text(payload)  # legacy rows stored objects; the wire wants JSON text
    return FlagResult(
        flag.key, enabled, variant, code, index, description, payload, flag.id, flag.version,
        error=error, name=flag.name,
    )  # fmt: skip


def _gates(flag: Flag, ctx: Context, env: Env, groups):
    """Early-access gate, then holdout: an outcome tuple if one decides the flag, else None."""
    # A group flag whose group the request does not name can only report no_group_type (unless a
    # condition aggregates by person): the gate and the holdout need that group.
    if flag.group_index is not None and flag.group_index not in groups:
        return None
    person = ctx.person_properties
    # Early access: the person's own opt-in/out decides, whatever the release conditions say.
    if flag.enrollment_key is not None and flag.enrollment_key in person:
        enrolled = person[flag.enrollment_key]
        return (enrolled is True or enrolled == "true"), None, "super_condition_value", 0
    gate = flag.super_condition
    if gate is not None and any(key in person for key in gate.property_keys):
        bucket = _person_bucket(flag, ctx)
        passed = bucket is not None and _filters_pass(gate, person, env)
        if passed and gate.rollout is not None:
            passed = prefixed_hash(flag.hash_prefix, bucket) <= gate.rollout
        return passed, None, "super_condition_value", 0
    held = _holdout(flag, ctx, groups)
    if held is not None:
        return True, held, "holdout_condition_value", None
    return None


def _conditions(flag: Flag, ctx: Context, env: Env, groups):
    """Release conditions in list order: the first match wins, else the best-scored reason."""
    person = ctx.person_properties
    person_bucket = ctx.distinct_id
    if flag.device_bucketing or flag.continuity:
        person_bucket = _person_bucket(flag, ctx)
    best, best_index = 1, None  # no_group_type: what a flag without conditions reports
    hashed_bucket, hashed = None, 0.0
    for condition in flag.conditions:
        if condition.group_index is None:
            props, bucket = person, person_bucket
            if bucket is None:  # device-id bucketing but the request has no device id
                if best <= 3:
                    best, best_index = 3, condition.index
                continue
        else:
            group = groups.get(condition.group_index)
            if group is None:
                if best <= 1:
                    best, best_index = 1, condition.index
                continue
            bucket, props = group
        for matcher in condition.matchers:  # _filters_pass, inlined on the hot path
            if not matcher(props, env):
                break
        else:
            matcher = None
        if matcher is not None:
            if best <= 2:
                best, best_index = 2, condition.index
            continue
        if condition.rollout is not None:
            if bucket != hashed_bucket:  # conditions of one flag usually share the bucket
                hashed_bucket, hashed = bucket, prefixed_hash(flag.hash_prefix, bucket)
            if hashed > condition.rollout:
                if flag.early_exit:
                    return False, None, "out_of_rollout_bound", condition.index
                if best <= 3:
                    best, best_index = 3, condition.index
                continue
        variant = condition.variant or (_variant(flag, bucket) if flag.variants else None)
        return True, variant, "condition_match", condition.index
    return False, None, _BY_SCORE[best], best_index


def _holdout(flag: Flag, ctx: Context, groups) -> str | None:
    """The holdout variant this request falls into, or None."""
    if flag.holdout is None and flag.legacy_holdout is None:
        return None
    # Holdouts bucket by group key / device id / distinct id, never by a continuity override.
    if flag.group_index is not None:
        bucket = groups[flag.group_index][0]
    elif flag.device_bucketing:
        bucket = ctx.device_id or None
    else:
        bucket = ctx.distinct_id
    if bucket is None:
        return None
    if flag.holdout is not None:
        variant, fraction = flag.holdout
        if fraction is None or holdout_hash(bucket) <= fraction:
            return variant
        return None
    condition, override = flag.legacy_holdout
    if condition.rollout is not None and holdout_hash(bucket) > condition.rollout:
        return None
    return override or _variant(flag, bucket) or "holdout"
