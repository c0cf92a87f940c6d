"""Differential test: phlite's evaluator against posthog-python 7.91.1's local evaluator.

Seeded random projects (flags with random conditions, operators, values, rollouts, variants,
overrides, payloads, holdouts, group and device-bucketed flags, dependencies, nested cohorts) are
evaluated for random persons by both. Wherever the SDK is conclusive (raises nothing), value and
payload must agree. The SDK is inconclusive on purpose in many places the server decides (missing
properties, unknown operators, ...): docs/flags-protocol.md "SDK local evaluators". Known SDK/server differences that the SDK
would answer *conclusively* are kept out by construction; each is named below with its section.

phlite goes through `phlite_evaluate` only, so the same cases can later run against `/flags`.
"""

import random
from datetime import datetime, timezone

from posthog.feature_flags import (
    PROPERTY_OPERATORS,
    InconclusiveMatchError,
    RequiresServerEvaluation,
    match_feature_flag_properties,
    resolve_bucketing_value,
)

from phlite.flags import Context, compile_flags, evaluate

SEED = 20240615
PROJECTS = 250
PERSONS_PER_PROJECT = 24
NOW = datetime.now(timezone.utc)  # the SDK reads the real clock for relative dates
GROUP_TYPES = {"0": "company", "1": "project"}

_compiled_cache: dict = {}


def phlite_evaluate(flags: list[dict], cohorts: dict, case: dict) -> dict:
    """{flag key: (value, payload)} from phlite for one case: swap this for a /flags call."""
    cache_key = id(flags)
    if cache_key not in _compiled_cache:
        _compiled_cache.clear()
        _compiled_cache[cache_key] = compile_flags(flags, cohorts)
    ctx = Context(
        case["distinct_id"],
        case["person_properties"],
        now=NOW,
        groups=case["groups"],
        group_properties=case["group_properties"],
        group_type_mapping={int(k): v for k, v in GROUP_TYPES.items()},
        device_id=case.get("device_id"),
    )
    results = evaluate(_compiled_cache[cache_key], ctx)
    return {key: (r.value, r.payload) for key, r in results.items()}


def sdk_evaluate(flag: dict, flags_by_key: dict, cohorts: dict, case: dict):
    """(value, payload) from posthog-python's local evaluator, or None when it is inconclusive.

    Mirrors Client._compute_flag_locally / _compute_payload_locally (posthog/client.py) around the
    module-level matcher, so no Client, thread or network is involved.
    """
    try:
        value = _sdk_value(flag, flags_by_key, cohorts, case)
    except (InconclusiveMatchError, RequiresServerEvaluation):
        return None
    lookup = str(value).lower() if isinstance(value, bool) else str(value)
    return value, ((flag.get("filters") or {}).get("payloads") or {}).get(lookup)


def _sdk_value(flag, flags_by_key, cohorts, case):
    if not flag.get("active"):
        return False
    if flag.get("ensure_experience_continuity"):
        raise InconclusiveMatchError("continuity")
    common = dict(
        cohort_properties=cohorts,
        flags_by_key=flags_by_key,
        evaluation_cache={},
        device_id=case.get("device_id"),
        group_type_mapping=GROUP_TYPES,
        groups=case["groups"],
        group_properties=case["group_properties"],
    )
    aggregation = (flag.get("filters") or {}).get("aggregation_group_type_index")
    if aggregation is not None:
        name = GROUP_TYPES[str(aggregation)]
        if name not in case["groups"]:
            return False
        if name not in case["group_properties"]:
            raise InconclusiveMatchError("no group properties")
        key = case["groups"][name]
        return match_feature_flag_properties(
            flag, key, case["group_properties"][name], bucketing_value=key, **common
        )
    bucketing = resolve_bucketing_value(flag, case["distinct_id"], case.get("device_id"))
    return match_feature_flag_properties(
        flag, case["distinct_id"], case["person_properties"], bucketing_value=bucketing, **common
    )


# --- generators -------------------------------------------------------------------------------

KEYS = ["email", "plan", "age", "score", "beta", "signup", "version", "country", "tier"]
# Floats stay in plain decimal notation: the SDK prints exponents as "1e+16" where the server's
# serde_json prints "1e16" (docs/flags-protocol.md "Flags: how values are read"). NaN/inf text is left out: the server parses it as a
# number, the SDK does not (docs/flags-protocol.md "Numeric operators").
NUMBERS = [0, 1, 5, 17, 18, 42, 99, 100, -3, 2.5, 17.999, 1000000, "42", "17", "3.5", "-1", "5.", ".5", "1e3"]
TEXTS = ["pro", "Pro", "free", "enterprise", "", "alice@acme.com", "bob@example.org", "DE", "us", "US",
         "null", "ab12", "x y", "Ünïcode"]  # fmt: skip
BOOLS = [True, False, "true", "false", "TRUE", "False"]
# Naive dates are UTC on both sides (team timezone = UTC). Relative dates as *property* values are
# left out: the SDK cannot parse them (inconclusive) and they move with the clock.
DATES = ["2024-01-15", "2023-06-01T10:00:00Z", "2025-02-28 08:30:00", "2022-12-31T23:59:59+02:00",
         "2030-01-01", "2019-07-04T00:00:00.250000Z"]  # fmt: skip
# Plain X[.Y[.Z]] versions only: the SDK drops pre-release/build parts and rejects leading zeros,
# the server orders pre-releases and strips zeros (docs/flags-protocol.md "Semver operators").
VERSIONS = ["1.2.3", "1.2", "2.0.0", "0.9.1", "10.0.0", "1.10.4", "1", "0.0.3", "0.2.5", 2, 1.5]
VALUE_POOLS = [NUMBERS, TEXTS, BOOLS, DATES, VERSIONS, [None]]
REGEXES = ["^pro$", r"acme\.com$", r"^\d+$", "[0-9]", "(", "Pro|free", "^$", "a.*e", "^[A-Z]{2}$", "rue"]
DATE_FILTERS = ["2024-01-01", "2023-06-01T00:00:00Z", "-30d", "-1y", "-6m", "-2w", "-12h",
                "2024-06-01T12:00:00+02:00", "2026-01-01 00:00:00", "not a date"]  # fmt: skip
SEMVER_FILTERS = ["1.2.3", "2.0.0", "0.9.0", "1.2", "0.0.3", "banana"]
WILDCARDS = ["1.*", "1.2.*", "2.*", "0.*"]


# Semver filters only use "version", which never holds a date or "5.": the SDK reads "2024-01-15"
# as 2024.0.0 (it cuts everything after "-") and "5." as 5.0.0, the server the first as the
# pre-release 2024.0.0-01-15 and the second as no version at all (docs/flags-protocol.md "Semver operators").
VERSION_POOLS = [VERSIONS, TEXTS, BOOLS, [None], [0, 1, 5, 17, -3, 2.5, "42", "-1"]]


def random_value(rng, key=None):
    return rng.choice(rng.choice(VERSION_POOLS if key == "version" else VALUE_POOLS))


def random_filter(rng):
    key = rng.choice(KEYS)
    op = rng.choice(
        ["exact", "exact", "is_not", "is_set", "is_not_set", "icontains", "not_icontains", "regex",
         "not_regex", "starts_with", "not_starts_with", "ends_with", "not_ends_with", "gt", "gte",
         "lt", "lte", "is_date_before", "is_date_after", "semver_eq", "semver_neq", "semver_gt",
         "semver_gte", "semver_lt", "semver_lte", "semver_tilde", "semver_caret", "semver_wildcard",
         # server-only operators: the SDK answers "unknown operator" (inconclusive)
         "between", "icontains_multi", "is_date_exact"]
    )  # fmt: skip
    if op in ("exact", "is_not"):
        value = rng.choice([random_value(rng), [random_value(rng) for _ in range(rng.randint(1, 3))]])
        value = value if value is not None else "x"  # a null filter value: the SDK compares "null"
    elif op in ("icontains", "not_icontains", "starts_with", "not_starts_with", "ends_with", "not_ends_with"):
        value = rng.choice(["pro", "acme", "1", "E", "", "true", 5, "@"])
    elif op in ("regex", "not_regex"):
        value = rng.choice(REGEXES)
    elif op in ("gt", "gte", "lt", "lte"):
        value = rng.choice([0, 5, 17.5, 18, 100, "18", "2.5", -1])
    elif op.startswith("is_date"):
        value = rng.choice(DATE_FILTERS)
    elif op == "semver_wildcard":
        key, value = "version", rng.choice(WILDCARDS)
    elif op.startswith("semver"):
        key, value = "version", rng.choice(SEMVER_FILTERS)
    elif op == "between":
        value = [rng.randint(0, 20), rng.randint(20, 100)]
    elif op == "icontains_multi":
        value = ["pro", "acme"]
    else:
        value = None
    return {"key": key, "operator": op, "value": value, "type": "person"}


def random_props(rng, keep=0.85):
    return {key: random_value(rng, key) for key in KEYS if rng.random() < keep}


def random_cohorts(rng):
    cohorts = {}
    for cohort_id in (1, 2, 3):
        groups = []
        for _ in range(rng.randint(1, 2)):
            leaves = []
            for _ in range(rng.randint(1, 3)):
                leaf = random_filter(rng)
                if rng.random() < 0.2:
                    leaf["negation"] = True
                leaves.append(leaf)
            if cohort_id == 3 and rng.random() < 0.5:  # cohorts referencing earlier cohorts
                leaves.append({"key": "id", "type": "cohort", "value": rng.choice([1, 2]),
                               "operator": rng.choice(["in", "not_in"]), "negation": rng.random() < 0.2})  # fmt: skip
            groups.append({"type": rng.choice(["AND", "OR"]), "values": leaves})
        cohorts[str(cohort_id)] = {"type": rng.choice(["AND", "OR"]), "values": groups}
    return cohorts


def random_variants(rng):
    count = rng.randint(2, 4)
    if rng.random() < 0.3:
        shares = [100 / 3, 100 / 3, 100 - 2 * (100 / 3)] if count == 3 else [12.5] * (count - 1)
        shares = shares + [100 - sum(shares)] if len(shares) < count else shares
    else:
        cuts = sorted(rng.sample(range(1, 100), count - 1))
        shares = [b - a for a, b in zip([0] + cuts, cuts + [100])]
    if rng.random() < 0.1:
        shares[-1] -= 10  # variants summing below 100: some matches get plain `true`
    return [{"key": f"v{i}", "rollout_percentage": s} for i, s in enumerate(shares)]


def dependency_chain(key, flags_by_key):
    chain, seen = [], set()

    def visit(k):
        for cond in flags_by_key[k]["filters"].get("groups") or []:
            for p in cond.get("properties") or []:
                if p.get("type") == "flag" and p["key"] not in seen:
                    visit(p["key"])
        if k not in seen:
            seen.add(k)
            chain.append(k)

    visit(key)
    return chain


def random_flag(rng, index, earlier):
    key = f"flag-{index}"
    filters = {"groups": []}
    variants = random_variants(rng) if rng.random() < 0.4 else []
    if variants:
        filters["multivariate"] = {"variants": variants}
    kind = rng.random()
    if kind < 0.15:
        filters["aggregation_group_type_index"] = 0
    for _ in range(rng.randint(1, 3)):
        cond = {"properties": [random_filter(rng) for _ in range(rng.randint(0, 3))]}
        if rng.random() < 0.15:
            cond["properties"].append({"key": "id", "type": "cohort", "value": rng.choice([1, 2, 3]),
                                       "operator": rng.choice(["in", "not_in"])})  # fmt: skip
        if earlier and rng.random() < 0.2:
            target = rng.choice(earlier)
            expected = rng.choice([True, False, "v0", "v1"])
            cond["properties"].insert(0, {"key": target["key"], "type": "flag", "value": expected,
                                          "operator": "flag_evaluates_to"})  # fmt: skip
        cond["rollout_percentage"] = rng.choice([None, 100, 0, 50, 37.5, 12.345, 99.9, rng.randint(1, 99)])
        if variants and rng.random() < 0.3:
            cond["variant"] = rng.choice([v["key"] for v in variants] + ["not-a-variant"])
        if kind >= 0.15 and rng.random() < 0.1:
            cond["aggregation_group_type_index"] = 0  # a group condition in a person flag
        filters["groups"].append(cond)
    if rng.random() < 0.15:
        filters["holdout"] = {"id": rng.randint(1, 9), "exclusion_percentage": rng.choice([0, 5, 20, 100])}
    if rng.random() < 0.05:
        filters["feature_enrollment"] = True
    # Payloads for "true" and variants only: the SDK also looks up a "false" payload, the server
    # never returns one for a disabled flag (docs/flags-protocol.md "Flags: payloads").
    filters["payloads"] = {k: f'{{"for": "{k}"}}' for k in ["true"] + [v["key"] for v in variants]
                           if rng.random() < 0.6}  # fmt: skip
    row = {"id": 1000 + index, "key": key, "active": rng.random() > 0.05, "deleted": False,
           "ensure_experience_continuity": False, "version": 1, "filters": filters}  # fmt: skip
    if rng.random() < 0.1:
        row["bucketing_identifier"] = "device_id"
    # filters.early_exit from a side generator, so the main stream (and every other case) stays as it was.
    if random.Random(SEED * 31 + index * 7919 + len(earlier)).random() < 0.25:
        filters["early_exit"] = True
    return row


def random_project(rng):
    flags = []
    for index in range(6):
        flags.append(random_flag(rng, index, flags))
    by_key = {f["key"]: f for f in flags}
    for f in flags:  # the local-evaluation payload names dependencies by key plus their chain
        for cond in f["filters"]["groups"]:
            for p in cond["properties"]:
                if p.get("type") == "flag":
                    p["dependency_chain"] = dependency_chain(p["key"], by_key)
    return flags, random_cohorts(rng)


def random_case(rng, flags):
    props = random_props(rng)
    for f in flags:
        if f["filters"].get("feature_enrollment") and rng.random() < 0.5:
            props[f"$feature_enrollment/{f['key']}"] = rng.choice([True, False, "true"])
    case = {"distinct_id": f"user-{rng.randrange(10**6)}", "person_properties": props,
            "groups": {}, "group_properties": {}}  # fmt: skip
    if rng.random() < 0.7:
        case["groups"]["company"] = rng.choice(["acme", "globex", "initech", "umbrella"])
        case["group_properties"]["company"] = random_props(rng)
    if rng.random() < 0.7:
        case["device_id"] = f"device-{rng.randrange(10**6)}"
    return case


# --- exclusions -------------------------------------------------------------------------------


def _closure(flag, by_key):
    keys = dependency_chain(flag["key"], by_key)
    return [by_key[k] for k in keys]


def _referenced_keys(flags, cohorts):
    keys = set()
    for f in flags:
        for cond in f["filters"]["groups"]:
            for p in cond["properties"]:
                if p.get("type") == "cohort":
                    keys.update(leaf["key"] for g in cohorts[str(p["value"])]["values"] for leaf in g["values"]
                                if leaf.get("type") == "person")  # fmt: skip
                    keys.update(KEYS)  # nested cohorts: be conservative
                elif p.get("type") == "person":
                    keys.add(p["key"])
    return keys


def _order_sensitive(flag):
    conds = flag["filters"]["groups"]
    mixed = len({c.get("aggregation_group_type_index", "flag") for c in conds}) > 1
    return mixed or any(c.get("variant") for c in conds)


def _aggregations(flag):
    level = flag["filters"].get("aggregation_group_type_index")
    return {level} | {c.get("aggregation_group_type_index", level) for c in flag["filters"]["groups"]}


def excluded(flag, by_key, cohorts, case):
    """Cases where the SDK answers conclusively but differently from the server, by design."""
    closure = _closure(flag, by_key)
    # docs/flags-protocol.md "SDK local evaluators": the SDK evaluates a dependency in the dependent's context (its properties, bucketing
    # and no groups), the server every flag in its own: only same-aggregation chains compare.
    if len(closure) > 1 and len(set().union(*map(_aggregations, closure))) > 1:
        return True
    # docs/flags-protocol.md "SDK local evaluators": with a key missing, the SDK skips an inconclusive condition and may match a later one,
    # where the server decides the earlier one (e.g. is_not on a missing key is true). The value
    # can then only differ if conditions carry different variant overrides or bucket differently.
    prop_sets = [case["person_properties"], *case["group_properties"].values()]
    missing = any(key not in props for key in _referenced_keys(closure, cohorts) for props in prop_sets)
    # With filters.early_exit the SDK skips an inconclusive condition (a missing key, an operator it
    # lacks) and may match a later one, where the server may have stopped at it: false.
    if any(f["filters"].get("early_exit") for f in closure):
        if missing or any(p.get("operator", "exact") not in PROPERTY_OPERATORS
                          for f in closure for c in f["filters"]["groups"] for p in c["properties"]
                          if p.get("type") not in ("cohort", "flag")):
            return True
    if not any(_order_sensitive(f) for f in closure):
        return False
    return missing


# --- the test ---------------------------------------------------------------------------------


def test_phlite_agrees_with_posthog_python_local_evaluation():
    rng = random.Random(SEED)
    total = conclusive = 0
    seen = {"enabled": 0, "variant": 0, "payload": 0, "group": 0, "holdout": 0, "dependency": 0}
    mismatches = []
    for _ in range(PROJECTS):
        flags, cohorts = random_project(rng)
        by_key = {f["key"]: f for f in flags}
        for _ in range(PERSONS_PER_PROJECT):
            case = random_case(rng, flags)
            ours = phlite_evaluate(flags, cohorts, case)
            for flag in flags:
                total += 1
                theirs = sdk_evaluate(flag, by_key, cohorts, case)
                if theirs is None or excluded(flag, by_key, cohorts, case):
                    continue
                conclusive += 1
                mine = ours.get(flag["key"], (False, None))  # inactive flags are absent, SDK says False
                if mine != theirs:
                    mismatches.append((flag, case, mine, theirs))
                value = theirs[0]
                seen["enabled"] += value is not False
                seen["variant"] += isinstance(value, str)
                seen["payload"] += theirs[1] is not None
                seen["group"] += flag["filters"].get("aggregation_group_type_index") is not None
                seen["holdout"] += isinstance(value, str) and value.startswith("holdout-")
                seen["dependency"] += len(_closure(flag, by_key)) > 1
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[0]}"
    assert total == PROJECTS * PERSONS_PER_PROJECT * 6
    assert conclusive >= 10_000, (conclusive, total)
    assert min(seen.values()) >= 100, seen
