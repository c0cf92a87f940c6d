"""Flag evaluation: the server algorithm of docs/flags-protocol.md "Flags: evaluation order" (hash, rollout, variants,
reasons, dependencies, groups, holdouts, early access, continuity, cohorts, payloads)."""

import math
from datetime import datetime, timezone

import pytest

from phlite import errors
from phlite.flags import (
    Context,
    compile_flags,
    errors_while_computing,
    evaluate,
    hash_value,
    holdout_hash,
    person_props_for_flags,
    validate_flag,
)

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=timezone.utc)
_ids = iter(range(1, 10_000))


def flag(key, conditions=None, **filters):
    row = {
        "id": filters.pop("id", next(_ids)),
        "key": key,
        "name": f"{key} description",
        "active": filters.pop("active", True),
        "deleted": filters.pop("deleted", False),
        "version": 3,
        "ensure_experience_continuity": filters.pop("continuity", False),
    }
    if "bucketing_identifier" in filters:
        row["bucketing_identifier"] = filters.pop("bucketing_identifier")
    row["filters"] = {"groups": conditions if conditions is not None else [{"properties": []}], **filters}
    return row


def prop(key, value, operator="exact", **extra):
    return {"key": key, "value": value, "operator": operator, "type": "person", **extra}


def run(flags, distinct_id="user-1", props=None, cohorts=None, flag_keys=None, **ctx):
    compiled = compile_flags(flags, cohorts or {})
    return evaluate(compiled, Context(distinct_id, props or {}, now=NOW, **ctx), flag_keys)


def one(row, *args, **kwargs):
    return run([row], *args, **kwargs)[row["key"]]


VARIANTS = {
    "variants": [
        {"key": "first-variant", "rollout_percentage": 50},
        {"key": "second-variant", "rollout_percentage": 20},
        {"key": "third-variant", "rollout_percentage": 20},
        {"key": "fourth-variant", "rollout_percentage": 5},
        {"key": "fifth-variant", "rollout_percentage": 5},
    ]
}


# --- hash, docs/flags-protocol.md "Flags: bucketing hash" -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,distinct_id,rollout,variant",
    [
        ("simple-flag", "some-distinct-id", 0.4777557959, 0.7770474308),
        ("beta-feature", "user-123", 0.6535168611, 0.5365856665),
        ("multivariate-flag", "distinct_id_1", 0.3180303232, 0.6473165157),
    ],
)
def test_hash_vectors(key, distinct_id, rollout, variant):
    assert hash_value(key, distinct_id) == pytest.approx(rollout, abs=1e-10)
    assert hash_value(key, distinct_id, "variant") == pytest.approx(variant, abs=1e-10)


def test_holdout_hash_vector_and_empty_id_quirk():
    assert holdout_hash("user-123") == pytest.approx(0.0956861376, abs=1e-10)
    assert hash_value("any", "") == 0.0


@pytest.mark.parametrize(
    "distinct_id,expected",
    [("11", "second-variant"), ("example_id", "first-variant"), ("3", "first-variant"),
     ("distinct_id_1", "second-variant")],
)  # fmt: skip
def test_variant_assignment(distinct_id, expected):
    result = one(flag("multivariate-flag", multivariate=VARIANTS), distinct_id)
    assert (result.enabled, result.variant) == (True, expected)


# --- rollout, docs/flags-protocol.md "Flags: rollout and variants" ----------------------------------------------------------------------------


def _exact_boundary(key):
    for n in range(1000):
        h = hash_value(key, f"id-{n}")
        if (h * 100) / 100 == h:
            return f"id-{n}", h * 100
    raise AssertionError("no exactly representable boundary found")


def test_rollout_is_inclusive_at_the_boundary():
    distinct_id, percentage = _exact_boundary("edge")
    assert one(flag("edge", [{"rollout_percentage": percentage}]), distinct_id).enabled
    below = math.nextafter(percentage, 0)
    result = one(flag("edge", [{"rollout_percentage": below}]), distinct_id)
    assert (result.enabled, result.reason_code) == (False, "out_of_rollout_bound")


def test_zero_percent_matches_only_the_empty_id():
    row = flag("zero", [{"rollout_percentage": 0}])
    assert not one(row, "someone").enabled
    assert one(row, "").enabled  # hash 0.0 <= 0


def test_variants_below_100_percent_give_true():
    row = flag("partial", multivariate={"variants": [{"key": "a", "rollout_percentage": 1}]})
    results = [one(row, f"u{i}") for i in range(200)]
    assert {r.variant for r in results} == {"a", None}
    assert all(r.enabled for r in results)


def test_variant_override_only_if_it_exists():
    row = flag("ov", [{"variant": "third-variant"}], multivariate=VARIANTS)
    assert one(row, "11").variant == "third-variant"
    row = flag("ov", [{"variant": "nope"}], multivariate=VARIANTS)
    assert one(row, "11").variant == one(flag("ov", multivariate=VARIANTS), "11").variant


def test_conditions_in_list_order_not_sorted():
    row = flag("multivariate-flag", [{"properties": []}, {"properties": [], "variant": "fifth-variant"}],
               multivariate=VARIANTS)  # fmt: skip
    result = one(row, "11")
    assert (result.variant, result.condition_index) == ("second-variant", 0)


# --- reasons, docs/flags-protocol.md "Flags: reasons" --------------------------------------------------------------


def test_condition_match_reason():
    result = one(flag("r", [{"properties": [prop("plan", "pro")]}, {"properties": []}]), props={"plan": "free"})
    assert (result.reason_code, result.condition_index, result.description) == (
        "condition_match", 1, "Matched condition set 2")


def test_highest_reason_wins_and_later_index_breaks_ties():
    distinct_id, _ = _exact_boundary("reasons")
    conditions = [
        {"properties": [prop("plan", "pro")]},  # no_condition_match
        {"rollout_percentage": 0},  # out_of_rollout_bound
        {"properties": [prop("plan", "enterprise")]},  # no_condition_match
        {"rollout_percentage": 0},  # out_of_rollout_bound, later index
    ]
    result = one(flag("reasons", conditions), distinct_id, props={"plan": "free"})
    assert (result.enabled, result.reason_code, result.condition_index) == (False, "out_of_rollout_bound", 3)
    assert result.description == "Out of rollout bound"
    result = one(flag("reasons", conditions[:1]), props={"plan": "free"})
    assert (result.reason_code, result.condition_index, result.description) == (
        "no_condition_match", 0, "No matching condition set")


def test_flag_without_conditions_reports_no_group_type():
    result = one(flag("empty", []))
    assert (result.enabled, result.reason_code, result.condition_index) == (False, "no_group_type", None)


def test_inactive_and_deleted_flags_are_absent():
    results = run([flag("off", active=False), flag("gone", deleted=True), flag("on")])
    assert list(results) == ["on"]


def test_result_metadata():
    row = flag("meta", payloads={"true": '{"a": 1}'})
    result = one(row)
    assert (result.id, result.version, result.name, result.payload, result.value) == (
        row["id"], 3, "meta description", '{"a": 1}', True)
    assert not errors_while_computing({"meta": result})


# --- payloads, docs/flags-protocol.md "Flags: payloads" ---------------------------------------------------------------------------


def test_payloads_only_for_enabled_flags_and_per_variant():
    row = flag("pay", [{"properties": [prop("plan", "pro")], "variant": "second-variant"}],
               multivariate=VARIANTS, payloads={"second-variant": '"two"', "true": '"t"'})  # fmt: skip
    assert one(row, props={"plan": "pro"}).payload == '"two"'
    assert one(row, props={"plan": "free"}).payload is None
    row = flag("pay", [{"properties": [], "variant": "first-variant"}], multivariate=VARIANTS,
               payloads={"true": '"t"'})  # fmt: skip
    assert one(row).payload is None  # no fallback from a variant to "true"
    assert one(flag("legacy", payloads={"true": {"x": 1}})).payload == '{"x":1}'


# --- dependencies, docs/flags-protocol.md "Flags: dependencies and flag_keys" -----------------------------------------------------------------------


def dep(target, value):
    return {"key": target, "type": "flag", "operator": "flag_evaluates_to", "value": value}


def test_dependencies_by_id_and_by_key():
    base = flag("base", [{"properties": [prop("plan", "pro")]}])
    by_id = flag("by-id", [{"properties": [dep(str(base["id"]), True)]}])
    by_key = flag("by-key", [{"properties": [dep("base", False)]}])
    results = run([by_id, by_key, base], props={"plan": "pro"})
    assert (results["by-id"].enabled, results["by-key"].enabled) == (True, False)
    results = run([by_id, by_key, base], props={"plan": "free"})
    assert (results["by-id"].enabled, results["by-key"].enabled) == (False, True)


def test_dependency_on_a_variant():
    base = flag("multivariate-flag", multivariate=VARIANTS)
    wants_second = flag("w", [{"properties": [dep("multivariate-flag", "second-variant")]}])
    wants_any = flag("a", [{"properties": [dep("multivariate-flag", True)]}])
    results = run([base, wants_second, wants_any], "11")
    assert results["w"].enabled and results["a"].enabled
    results = run([base, wants_second, wants_any], "example_id")
    assert not results["w"].enabled and results["a"].enabled


def test_missing_deleted_and_cyclic_dependencies():
    a = flag("a", [{"properties": [dep("b", True)]}])
    b = flag("b", [{"properties": [dep("a", True)]}])
    c = flag("c", [{"properties": [dep("a", True)]}])
    d = flag("d", [{"properties": [dep("nope", True)]}])
    e = flag("e", [{"properties": [dep("gone", True)]}])
    gone = flag("gone", deleted=True)
    results = run([a, b, c, d, e, gone])
    for key in "abcde":
        r = results[key]
        assert (r.enabled, r.reason_code, r.condition_index) == (False, "missing_dependency", None)
        assert r.description == "Flag cannot be evaluated due to missing dependency"
    assert errors_while_computing(results)


def test_inactive_or_excluded_dependency_is_false():
    base = flag("base", active=False)
    dependent = flag("dependent", [{"properties": [dep("base", False)]}])
    assert run([base, dependent])["dependent"].enabled
    base = flag("base")
    compiled = compile_flags([base, dependent])
    results = evaluate(compiled, Context("u", {}, now=NOW), excluded={"base"})
    assert list(results) == ["dependent"] and results["dependent"].enabled


def test_flag_keys_include_transitive_dependencies():
    rows = [flag("x"), flag("y", [{"properties": [dep("x", True)]}]),
            flag("z", [{"properties": [dep("y", True)]}]), flag("other")]  # fmt: skip
    assert set(run(rows, flag_keys=["z", "unknown"])) == {"x", "y", "z"}


# --- groups ---------------------------------------------------------------------------------


MAPPING = {0: "company", 1: "project"}


def test_group_flags_bucket_by_group_key_and_see_group_key():
    row = flag("g", [{"properties": [prop("$group_key", "acme")], "rollout_percentage": 50}],
               aggregation_group_type_index=0)  # fmt: skip
    result = one(row, groups={"company": "acme"}, group_type_mapping=MAPPING)
    assert result.enabled == (hash_value("g", "acme") <= 0.5)
    assert one(row, groups={"company": "other"}, group_type_mapping=MAPPING).reason_code == "no_condition_match"


def test_group_properties_and_missing_group():
    row = flag("g", [{"properties": [prop("size", 10, "gt")]}], aggregation_group_type_index=0)
    ctx = {"group_type_mapping": MAPPING, "groups": {"company": "acme"}}
    assert one(row, group_properties={"company": {"size": 20}}, **ctx).enabled
    assert not one(row, props={"size": 20}, **ctx).enabled  # person props are not group props
    result = one(row, group_type_mapping=MAPPING)
    assert (result.enabled, result.reason_code, result.condition_index) == (False, "no_group_type", 0)
    assert one(row, group_type_mapping=MAPPING, groups={"company": ""}).reason_code == "no_group_type"


def test_per_condition_aggregation():
    row = flag("mixed", [
        {"properties": [prop("size", 10, "gt")], "aggregation_group_type_index": 1},
        {"properties": [prop("plan", "pro")], "aggregation_group_type_index": None},
    ], aggregation_group_type_index=1)  # fmt: skip
    ctx = {"group_type_mapping": MAPPING, "props": {"plan": "pro"}}
    assert one(row, **ctx).condition_index == 1
    result = one(row, groups={"project": 7}, group_properties={"project": {"size": 11}}, **ctx)
    assert (result.enabled, result.condition_index) == (True, 0)


# --- holdout, early access ------------------------------------------------------------------


def test_holdout():
    row = flag("h", multivariate=VARIANTS, holdout={"id": 42, "exclusion_percentage": 100},
               payloads={"holdout-42": '"held"'})  # fmt: skip
    result = one(row)
    assert (result.enabled, result.variant, result.reason_code, result.condition_index, result.payload) == (
        True, "holdout-42", "holdout_condition_value", None, '"held"')
    assert result.description == "Holdout condition value"
    # 10%: user-123 hashes to 0.0957, so it is held out, and a 9% holdout misses it.
    assert one(flag("h", holdout={"id": 1, "exclusion_percentage": 10}), "user-123").variant == "holdout-1"
    assert one(flag("h", holdout={"id": 1, "exclusion_percentage": 9}), "user-123").variant is None


def test_legacy_holdout_groups():
    row = flag("lh", holdout_groups=[{"properties": [], "rollout_percentage": 100, "variant": "holdout"}])
    assert one(row).variant == "holdout"
    row = flag("lh", holdout_groups=[{"properties": [prop("a", 1)], "rollout_percentage": 100}])
    assert one(row).variant is None  # holdouts with properties are not supported: no holdout


def test_feature_enrollment():
    row = flag("beta", [{"rollout_percentage": 0}], feature_enrollment=True, payloads={"true": "1"})
    result = one(row, props={"$feature_enrollment/beta": True})
    assert (result.enabled, result.reason_code, result.condition_index, result.payload) == (
        True, "super_condition_value", 0, "1")
    assert one(row, props={"$feature_enrollment/beta": "true"}).enabled
    assert not one(row, props={"$feature_enrollment/beta": False}).enabled
    assert one(row).reason_code == "out_of_rollout_bound"  # not decided: the conditions run


def test_legacy_super_groups():
    gate = {"properties": [prop("$feature_enrollment/old", ["true"])], "rollout_percentage": None}
    row = flag("old", [{"rollout_percentage": 0}], super_groups=[gate])
    assert one(row, props={"$feature_enrollment/old": "true"}).reason_code == "super_condition_value"
    result = one(row, props={"$feature_enrollment/old": False})
    assert (result.enabled, result.reason_code) == (False, "super_condition_value")
    assert one(row).reason_code == "out_of_rollout_bound"


# --- continuity, device bucketing ------------------------------------------------------------


def test_experience_continuity_overrides():
    row = flag("multivariate-flag", multivariate=VARIANTS, continuity=True)
    assert one(row, "whoever", hash_key_overrides={"multivariate-flag": "11"}).variant == "second-variant"
    assert one(row, "whoever", anon_distinct_id="example_id").variant == "first-variant"
    assert one(row, "11").variant == "second-variant"
    plain = flag("multivariate-flag", multivariate=VARIANTS)
    assert one(plain, "example_id", hash_key_overrides={"multivariate-flag": "11"}).variant == "first-variant"


def test_device_id_bucketing():
    row = flag("multivariate-flag", multivariate=VARIANTS, bucketing_identifier="device_id")
    assert one(row, "example_id", device_id="11").variant == "second-variant"
    result = one(row, "11")
    assert (result.enabled, result.reason_code) == (False, "out_of_rollout_bound")


# --- cohorts --------------------------------------------------------------------------------


def cohort_filter(cohort_id, operator="in"):
    return {"key": "id", "type": "cohort", "value": cohort_id, "operator": operator}


COHORTS = {
    1: {"properties": {"type": "OR", "values": [
        {"type": "AND", "values": [prop("email", "@acme.com", "icontains"), prop("age", 18, "gte")]},
        {"type": "AND", "values": [prop("vip", True)]},
    ]}},
    2: {"properties": {"type": "AND", "values": [
        {"type": "AND", "values": [cohort_filter(1), prop("country", "DE", negation=True)]},
    ]}},
    3: {"is_static": True, "properties": {}},
    4: {"properties": {"type": "AND", "values": [{"type": "AND", "values": [cohort_filter(5)]}]}},
    5: {"properties": {"type": "AND", "values": [{"type": "AND", "values": [cohort_filter(4)]}]}},
    6: {"properties": {"type": "AND", "values": [{"type": "OR", "values": [
        {"key": "pageview", "type": "behavioral", "value": "performed_event"}]}]}},
}  # fmt: skip


@pytest.mark.parametrize(
    "cohort,operator,props,static,expected",
    [
        (1, "in", {"email": "a@ACME.com", "age": 20}, (), True),
        (1, "in", {"email": "a@acme.com", "age": 17}, (), False),
        (1, "in", {"vip": "true"}, (), True),
        (1, "not_in", {"vip": "true"}, (), False),
        (1, "not_in", {}, (), True),
        (2, "in", {"vip": True, "country": "FR"}, (), True),
        (2, "in", {"vip": True, "country": "DE"}, (), False),  # negated leaf
        (2, "in", {"vip": True}, (), True),  # missing country: exact is false, negated true
        (3, "in", {}, {3}, True),
        (3, "in", {}, (), False),
        (3, "not_in", {}, (), True),
        (4, "in", {}, (), False),  # cycle: never a member
        (4, "not_in", {}, (), True),
        (6, "in", {}, (), False),  # behavioural: not evaluated
    ],
)
def test_cohorts(cohort, operator, props, static, expected):
    row = flag("c", [{"properties": [cohort_filter(cohort, operator)]}])
    assert one(row, props=props, cohorts=COHORTS, static_cohorts=frozenset(static)).enabled is expected


def test_unknown_cohort_fails_the_flag():
    result = run([flag("c", [{"properties": [cohort_filter(99)]}]), flag("ok")], cohorts=COHORTS)
    failed = result["c"]
    assert (failed.enabled, failed.failed, failed.payload, failed.reason_code) == (
        False, True, None, "dependency_not_found_cohort")
    assert result["ok"].enabled and errors_while_computing(result)


def test_regex_timeout_is_an_error_not_a_stall():
    row = flag("re", [{"properties": [prop("name", "(x+x+)+y", "regex")]}, {"properties": []}])
    result = one(row, props={"name": "x" * 5000})
    assert (result.enabled, result.condition_index, result.error) == (True, 1, "regex_timeout")
    assert errors_while_computing({"re": result})


# --- person properties, docs/flags-protocol.md "Flags: property sources" ------------------------------------------------------------------


def test_person_props_for_flags():
    stored = {"$browser": "Chrome", "$initial_os": "Mac", "$os": "Linux", "plan": "free"}
    props = person_props_for_flags(stored, {"plan": "pro", "utm_source": "ads"}, "d1")
    assert props == {
        "$browser": "Chrome", "$initial_os": "Mac", "$os": "Linux", "plan": "pro", "distinct_id": "d1",
        "utm_source": "ads", "$initial_browser": "Chrome", "$initial_utm_source": "ads",
    }  # fmt: skip
    assert person_props_for_flags(None, {"$referrer": "x"}, "d1") == {"$referrer": "x", "$initial_referrer": "x"}


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters,fragment",
    [
        ([], "filters: must be an object"),
        ({"groups": [{"properties": [prop("a", 1, "nope")]}]}, "groups[0].properties[0].operator"),
        ({"groups": [{"properties": [prop("a", [5, 1], "between")]}]}, "min <= max"),
        ({"groups": [{"rollout_percentage": 101}]}, "groups[0].rollout_percentage"),
        ({"multivariate": {"variants": [{"key": "a", "rollout_percentage": 60}]}}, "sum to 100"),
        ({"payloads": {"true": "{not json"}}, "payloads.true"),
        ({"groups": [{"properties": [cohort_filter(9)]}]}, "cohort 9 does not exist"),
        ({"aggregation_group_type_index": 7}, "aggregation_group_type_index"),
        ({"holdout": {"id": 1, "exclusion_percentage": -1}}, "holdout.exclusion_percentage"),
    ],
)  # fmt: skip
def test_validate_flag_rejects(filters, fragment):
    with pytest.raises(errors.BadRequest) as raised:
        validate_flag(filters, cohorts_known={1}, flag_keys_known={"base"}, flag_ids_known={7})
    assert raised.value.attr == "filters" and fragment in raised.value.detail


def test_validate_flag_accepts_a_full_definition():
    validate_flag(
        {
            "groups": [
                {"properties": [prop("email", "@x.com", "icontains"), cohort_filter(1), dep("7", True)],
                 "rollout_percentage": 33.3, "variant": "a"},
                {"properties": [prop("v", "1.2.*", "semver_wildcard"), prop("d", "-7d", "is_date_after")],
                 "aggregation_group_type_index": None},
            ],
            "multivariate": {"variants": [{"key": "a", "rollout_percentage": 33.33},
                                          {"key": "b", "rollout_percentage": 66.67}]},
            "payloads": {"a": '{"x": 1}', "true": "true"},
            "holdout": {"id": 1, "exclusion_percentage": 10},
        },
        cohorts_known={1},
        flag_ids_known={7},
    )  # fmt: skip


# --- robustness: stored junk never crashes compile or evaluate -------------------------------

import contextlib  # noqa: E402
import random  # noqa: E402

from phlite.flags.eval.operators import OPERATORS  # noqa: E402

_SCALARS = [None, True, False, 0, 1, -1, 50, 1e300, float("inf"), float("nan"), 10**30, "", "a", "id",
            "0", "1.2.3", "-7d", "2024-01-01", "(a+)+$", "(", "true", "AND", "OR"]  # fmt: skip


def _junk(rng, depth=0):
    roll = rng.random()
    if depth > 2 or roll < 0.6:
        return rng.choice(_SCALARS)
    if roll < 0.8:
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "key", "values", "type"]): _junk(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _maybe(rng, good):
    return good if rng.random() < 0.7 else _junk(rng)


def _junk_filter(rng):
    return {"key": _maybe(rng, rng.choice(["a", "b", "0"])),
            "operator": _maybe(rng, rng.choice(sorted(OPERATORS))),
            "value": _junk(rng),
            "type": _maybe(rng, rng.choice(["person", "group", "cohort", "flag", "behavioral"])),
            "negation": _junk(rng)}  # fmt: skip


def _junk_condition(rng):
    return {"properties": _maybe(rng, [_junk_filter(rng) for _ in range(rng.randint(0, 3))]),
            "rollout_percentage": _maybe(rng, rng.choice([None, 0, 50, 100])),
            "variant": _maybe(rng, "a"), "aggregation_group_type_index": _maybe(rng, rng.choice([None, 0, 1]))}


def _junk_filters(rng):
    return {"groups": _maybe(rng, [_junk_condition(rng) for _ in range(rng.randint(0, 3))]),
            "multivariate": _maybe(rng, {"variants": [{"key": "a", "rollout_percentage": 50}, _junk(rng)]}),
            "aggregation_group_type_index": _maybe(rng, rng.choice([None, 0])),
            "payloads": _maybe(rng, {"a": "1", "true": _junk(rng)}),
            "holdout": _maybe(rng, {"id": 1, "exclusion_percentage": _junk(rng)}),
            "holdout_groups": _maybe(rng, [_junk_condition(rng)]),
            "super_groups": _maybe(rng, [_junk_condition(rng)]), "feature_enrollment": _junk(rng)}  # fmt: skip


def test_junk_definitions_never_crash():
    rng = random.Random(7)
    for _ in range(500):
        rows = [{"id": i, "key": f"f{i}", "active": True, "filters": _maybe(rng, _junk_filters(rng))}
                for i in range(rng.randint(1, 3))]  # fmt: skip
        cohort = {"properties": _maybe(rng, {"type": "AND", "values": [
            {"type": "OR", "values": [_junk_filter(rng), _junk_condition(rng)]}, _junk_filter(rng)]})}
        props = {key: _junk(rng) for key in ("a", "b", "0") if rng.random() < 0.7}
        try:
            results = run(rows, props=props, cohorts={0: cohort, 1: cohort, "x": _junk(rng)},
                          groups={"company": "acme"}, group_type_mapping=MAPPING)  # fmt: skip
            for row in rows:
                with contextlib.suppress(errors.BadRequest):  # rejecting junk is fine, crashing not
                    validate_flag(row["filters"])
        except Exception as exc:
            raise AssertionError(f"crashed on {rows!r} {cohort!r} {props!r}") from exc
        assert set(results) <= {row["key"] for row in rows}
