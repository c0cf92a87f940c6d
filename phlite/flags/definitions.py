"""Flag and cohort definitions at the API boundary: checking what clients send, and the JSON
shapes phlite answers (the private API's objects, the local-evaluation definitions of
docs/flags-protocol.md "Local evaluation").

Pure: plain dicts in and out; filter semantics are checked by phlite.flags.eval.validate_flag,
filters are walked by phlite.flags.filters. Imports errors and those two only.
"""

import itertools
import json
import re
from datetime import datetime, timezone

import orjson

from phlite import errors
from phlite.flags.eval import validate_flag
from phlite.flags.filters import (
    CONDITION_LISTS, MAX_DEPTH, effective_filters, is_legacy, cohort_refs, cohorts_reached, cohorts_used, flag_refs, reaches_itself, too_deep, walk,
)

KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
RUNTIMES = ("all", "client", "server")
BUCKETING = (None, "", "distinct_id", "device_id")  # "" is stored by PostHog and means the default


def _iso(ms):
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _bad(detail, attr, code="invalid_input"):
    return errors.BadRequest(detail, code=code, attr=attr)


def _bool(body, name, default=None):
    value = body.get(name, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise _bad(f"'{name}' must be true or false.", name)
    return value


def _text(body, name, default=""):
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _bad(f"'{name}' must be a string.", name)
    return value


# --- flags ----------------------------------------------------------------------------------------


def clean_flag(body: dict, current: dict | None = None, require_key: bool = True,
               warnings: list | None = None) -> dict:
    """The stored columns a create (current=None) or PATCH/PUT body sets, type-checked.

    Filter semantics are checked separately (check_filters), because that needs the project's
    cohorts and flags. Unknown and read-only fields are ignored, as PostHog's API does. PostHog's
    legacy format (top-level `rollout_percentage`, filters without `groups`) is stored as the
    release condition PostHog reads it as (docs/flags-protocol.md "Flags: definition format").
    :param warnings: gets what is accepted but probably not meant (e.g. a flag off for everyone).
    :raises errors.BadRequest: naming the field in `attr`.
    """
    warnings = [] if warnings is None else warnings
    creating = current is None
    out: dict = {}
    if "key" in body or require_key:
        key = body.get("key")
        if not isinstance(key, str) or not key:
            raise _bad("A flag needs a 'key'.", "key", code="required")
        if not KEY_RE.fullmatch(key):
            raise _bad("Only letters, numbers, hyphens (-) & underscores (_) are allowed in a flag key.", "key")
        out["key"] = key
    if "name" in body or creating:
        out["name"] = _text(body, "name")
    if "active" in body or creating:
        out["active"] = _bool(body, "active", True)
    if "deleted" in body:
        out["deleted"] = _bool(body, "deleted", False)
    rollout = _rollout(body)
    if "filters" in body or creating or rollout is not None:
        filters = body.get("filters")
        if filters is None and not creating and "filters" not in body:
            filters = current["filters"]  # a PATCH of rollout_percentage alone
        elif filters is None:
            # {"key": "x", "rollout_percentage": 50} is PostHog's legacy shape with no properties.
            filters = {"groups": []} if rollout is None else {}
        if not isinstance(filters, dict):
            raise _bad("'filters' must be an object.", "filters")
        _check_depth(filters)
        if is_legacy(filters):
            filters = effective_filters(filters, rollout)
            warnings.append("filters: PostHog's legacy format (properties and rollout_percentage at the top) was"
                            f" stored as its one release condition: {orjson.dumps(filters).decode()}")
        elif rollout is not None:
            warnings.append("rollout_percentage: ignored because filters has groups; set rollout_percentage on"
                            " each condition in filters.groups instead.")
        if not filters.get("groups") and creating:
            warnings.append('filters.groups: no release conditions, so the flag is off for everyone. To roll it'
                            ' out, send {"filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}}.')
        out["filters"] = filters
    if "ensure_experience_continuity" in body or creating:
        out["ensure_experience_continuity"] = _bool(body, "ensure_experience_continuity", False)
    if "is_remote_configuration" in body or creating:
        out["is_remote_configuration"] = _bool(body, "is_remote_configuration", False)
    if "evaluation_runtime" in body or creating:
        runtime = body.get("evaluation_runtime") or "all"
        if runtime not in RUNTIMES:
            raise _bad(f"'evaluation_runtime' must be one of {', '.join(RUNTIMES)}.", "evaluation_runtime")
        out["evaluation_runtime"] = runtime
    if "evaluation_tags" in body or creating:
        tags = body.get("evaluation_tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise _bad("'evaluation_tags' must be a list of strings.", "evaluation_tags")
        out["evaluation_tags"] = list(dict.fromkeys(tags))
    if "bucketing_identifier" in body:
        bucketing = body.get("bucketing_identifier")
        if bucketing not in BUCKETING:
            raise _bad("'bucketing_identifier' must be distinct_id, device_id or null.", "bucketing_identifier")
        out["bucketing_identifier"] = bucketing or None
    if not creating and "version" in body and body["version"] is not None and body["version"] != current["version"]:
        raise errors.PhliteError(
            f"The flag was changed since version {body['version']} (it is at version {current['version']}):"
            " read it again and re-apply your change.",
            status=409, type="validation_error", code="conflict", attr="version",
        )
    return out


def _rollout(body: dict):
    """A top-level `rollout_percentage` (PostHog's deprecated flag field), or None."""
    value = body.get("rollout_percentage")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise _bad("'rollout_percentage' must be a number between 0 and 100 (it is read as the rollout of the"
                   " flag's one release condition).", "rollout_percentage")
    return value


def _too_deep(path):
    return _bad(f"Invalid filters: {path}: nested deeper than {MAX_DEPTH} levels.", "filters")


def _check_depth(filters: dict) -> None:
    """Refuse filters, or payload JSON texts, nested past MAX_DEPTH: stored, they could not be
    written back out as JSON (nor walked) later."""
    path = too_deep(filters)
    if path is not None:
        raise _too_deep(path)
    payloads = filters.get("payloads")
    for key, payload in (payloads.items() if isinstance(payloads, dict) else ()):
        if not isinstance(payload, str):
            continue  # validate_flag names that
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError:
            try:  # NaN and friends: validate_flag reads payloads with the json module
                value = json.loads(payload)
            except RecursionError:
                raise _too_deep(f"payloads.{key}") from None
            except ValueError:
                continue  # validate_flag says it is not JSON
        if too_deep(value, MAX_DEPTH - 1) is not None:
            raise _too_deep(f"payloads.{key}")


def _resolve(text, by_id: dict, keys) -> str | None:
    """The key a dependency filter's `key` names: stored rows use the id (as text), clients may use the key."""
    return by_id.get(text, text if text in keys else None)


def dependents(flags: list[dict], flag: dict) -> list[str]:
    """Keys of the active flags (other than `flag`) whose filters name `flag`, by id or key."""
    names = {str(flag["id"]), flag["key"]}
    return sorted(
        f["key"] for f in flags
        if f["id"] != flag["id"] and f["active"]
        and any(str(p.get("key")) in names for _, p in flag_refs(f["filters"]))
    )


def flags_using_cohort(flags: list[dict], cohort_id: int) -> list[str]:
    """Keys of the flags whose filters name the cohort directly."""
    return sorted(f["key"] for f in flags if cohort_id in set(cohorts_used(f["filters"])))


def _dependency_keys(filters, by_id: dict, keys: set) -> list:
    resolved = (_resolve(str(prop.get("key")), by_id, keys) for _, prop in flag_refs(filters))
    return [key for key in resolved if key is not None]


def check_filters(filters: dict, flag_id, flag_key: str, cohort_ids: set, flags: list[dict]) -> list[str]:
    """Validate `filters` against the project: operators and values (phlite.flags), cohorts and
    flags that exist, and no flag depending on itself through any chain of dependencies.

    :param flags: the project's non-deleted flag rows (the edited flag included, if it exists).
    """
    others = [f for f in flags if f["id"] != flag_id]
    warnings = validate_flag(filters, cohorts_known=cohort_ids,
                  flag_keys_known={f["key"] for f in others}, flag_ids_known={f["id"] for f in others})
    by_id = {str(f["id"]): f["key"] for f in others}
    keys = {f["key"] for f in others}
    by_id_all, keys_all = {**by_id, str(flag_id): flag_key}, keys | {flag_key}
    graph = {f["key"]: _dependency_keys(f["filters"], by_id_all, keys_all) for f in others}
    # Resolved with the flag itself known, so that depending on itself is a cycle too.
    graph[flag_key] = _dependency_keys(filters, by_id_all if flag_id is not None else by_id, keys_all)
    if reaches_itself(graph, flag_key):
        raise _bad("Invalid filters: this flag would depend on itself (circular flag dependency).", "filters",
                   code="circular_dependency")
    return warnings


def flag_json(row: dict) -> dict:
    """A flag as the private API shows it (PostHog's FeatureFlagSerializer, the fields phlite has)."""
    return {
        "id": row["id"],
        "team_id": row["project_id"],
        "key": row["key"],
        "name": row["name"],
        "filters": row["filters"],
        "active": row["active"],
        "deleted": row["deleted"],
        "ensure_experience_continuity": row["ensure_experience_continuity"],
        "version": row["version"],
        "evaluation_runtime": row["evaluation_runtime"],
        "evaluation_tags": row["evaluation_tags"],
        "bucketing_identifier": row["bucketing_identifier"],
        "is_remote_configuration": row["is_remote_configuration"],
        "has_encrypted_payloads": False,
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "created_by": _who(row["created_by"]),
        "last_modified_by": _who(row["last_modified_by"]),
    }


def _who(key_id):
    return None if key_id is None else {"personal_api_key_id": key_id}


def _changes(before, after):
    if before is None or after is None:
        return []
    return [
        {"type": "FeatureFlag" if "key" in after else "Cohort", "action": "changed", "field": name,
         "before": before.get(name), "after": after.get(name)}
        for name in after
        if name not in ("version", "updated_at", "last_modified_by") and before.get(name) != after.get(name)
    ]


def activity_json(entry: dict, render) -> dict:
    """One activity-log entry: who (personal key id), when, what changed, whole before and after."""
    before = None if entry["before"] is None else render(entry["before"])
    after = None if entry["after"] is None else render(entry["after"])
    return {
        "id": entry["id"],
        "activity": entry["activity"],
        "scope": entry["scope"],
        "item_id": str(entry["item_id"]),
        "created_at": _iso(entry["created_at"]),
        "user": _who(entry["key_id"]),
        "detail": {
            "name": (after or before or {}).get("key") or (after or before or {}).get("name"),
            "changes": _changes(before, after),
        },
        "before": before,
        "after": after,
    }


# --- cohorts --------------------------------------------------------------------------------------


def _check_group(node, path, cohort_ids):
    if node == {}:
        return  # an empty group: no criteria (PostHog stores these)
    if not isinstance(node, dict) or node.get("type") not in ("AND", "OR") \
            or not isinstance(node.get("values"), list):
        raise _bad(f"Invalid filters: {path} must be {{\"type\": \"AND\"|\"OR\", \"values\": [...]}}.", "filters")
    for i, child in enumerate(node["values"]):
        child_path = f"{path}.values[{i}]"
        if isinstance(child, dict) and "values" in child and "key" not in child:
            _check_group(child, child_path, cohort_ids)
            continue
        if not isinstance(child, dict):
            raise _bad(f"Invalid filters: {child_path} must be an object.", "filters")
        if child.get("negation") not in (None, True, False):
            raise _bad(f"Invalid filters: {child_path}.negation must be true or false.", "filters")
        leaf = {k: v for k, v in child.items() if k != "negation"}
        try:
            validate_flag({"groups": [{"properties": [leaf]}]}, cohorts_known=cohort_ids)
        except errors.BadRequest as e:
            detail = str(e.detail).replace("groups[0].properties[0]", child_path)
            raise _bad(detail, "filters") from None


def clean_cohort(body: dict, current: dict | None, cohorts: dict) -> tuple[dict, list | None]:
    """(stored columns, static distinct ids or None) of a cohort create or PATCH body.

    Dynamic cohorts take `filters: {"properties": {"type": "OR"|"AND", "values": [...]}}` whose
    leaves are flag property filters (person properties, or other cohorts) with optional
    `negation`; static cohorts take `distinct_ids: [...]` (replacing the members on PATCH).
    :param cohorts: the project's non-deleted cohort rows by id (for references and cycles).
    """
    creating = current is None
    out: dict = {}
    if "name" in body or creating:
        out["name"] = _text(body, "name")
    if "description" in body or creating:
        out["description"] = _text(body, "description")
    if "deleted" in body:
        out["deleted"] = _bool(body, "deleted", False)
    is_static = current["is_static"] if current else False
    if "is_static" in body:
        is_static = _bool(body, "is_static", False)
        if current and is_static != current["is_static"]:
            raise _bad("A cohort cannot change between static and dynamic.", "is_static")
        out["is_static"] = is_static
    elif creating:
        out["is_static"] = is_static
    distinct_ids = body.get("distinct_ids")
    if distinct_ids is not None:
        if not is_static:
            raise _bad("Only static cohorts ('is_static': true) take 'distinct_ids'.", "distinct_ids")
        if not isinstance(distinct_ids, list) or not all(
            isinstance(d, (str, int)) and not isinstance(d, bool) and str(d) for d in distinct_ids
        ):
            raise _bad("'distinct_ids' must be a list of distinct ids.", "distinct_ids")
        distinct_ids = [str(d) for d in distinct_ids]
    elif creating and is_static:
        distinct_ids = []
    if "filters" in body or (creating and not is_static):
        filters = body.get("filters") or ({} if is_static else None)
        if is_static:
            if filters:
                raise _bad("Static cohorts have members, not filters.", "filters")
            out["filters"] = {}
        else:
            if not isinstance(filters, dict) or "properties" not in filters:
                raise _bad('A dynamic cohort needs \'filters\': {"properties": {"type": "OR", "values": [...]}}.',
                           "filters", code="required")
            known = {cid for cid in cohorts if current is None or cid != current["id"]}
            path = too_deep(filters["properties"], path="properties")
            if path is not None:
                raise _too_deep(path)
            _check_group(filters["properties"], "properties", known)
            if current is not None:
                _check_cohort_cycle(current["id"], filters, cohorts)
            out["filters"] = {"properties": filters["properties"]}
    return out, distinct_ids


def _check_cohort_cycle(cohort_id, filters, cohorts):
    graph = {cid: set(cohort_refs(c["filters"].get("properties"))) for cid, c in cohorts.items()}
    graph[cohort_id] = set(cohort_refs(filters.get("properties")))
    if reaches_itself(graph, cohort_id):
        raise _bad("Invalid filters: this cohort would contain itself (circular cohort reference).", "filters",
                   code="circular_dependency")


def cohort_json(row: dict, count: int | None = None) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "filters": row["filters"],
        "is_static": row["is_static"],
        "deleted": row["deleted"],
        "version": row["version"],
        "count": count,
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row.get("updated_at")),
        "created_by": _who(row["created_by"]),
    }


# --- local evaluation (docs/flags-protocol.md "Local evaluation") ----------------------------------------------------------


def _dependency_chains(graph: dict) -> dict:
    """{key: the keys it needs evaluated first, in order, ending with itself} of the flags whose
    dependencies all exist and form no cycle; built dependencies first, without recursion."""
    order, unusable = walk(graph)
    chains: dict = {}
    for key in order:
        if key in unusable:
            continue
        deps = graph[key]
        if len(deps) == 1:
            chains[key] = [*chains[deps[0]], key]
        else:  # the depth-first order: each dependency's chain, keeping first occurrences
            chains[key] = [*dict.fromkeys(itertools.chain.from_iterable(chains[d] for d in deps)), key]
    return chains


def local_evaluation(flags: list[dict], cohorts: dict, group_type_mapping: dict) -> dict:
    """`{"flags", "group_type_mapping", "cohorts"}` for SDK local evaluation.

    Deleted and remote-config flags are left out, inactive ones kept. Dependency filters name
    the flag's key (stored: its id) and carry `dependency_chain`. Every dynamic cohort the flags
    reference, directly or through other cohorts, is included; static cohorts never are, so SDKs
    ask the server for flags that use them.
    """
    live = [f for f in flags if not f["deleted"]]
    by_id = {str(f["id"]): f["key"] for f in live}
    keys = {f["key"] for f in live}
    # A None (unknown flag) makes every chain through this flag empty.
    graph = {f["key"]: [_resolve(str(p.get("key")), by_id, keys) for _, p in flag_refs(f["filters"])]
             for f in live}
    chains = _dependency_chains(graph)
    out_flags, wanted = [], []
    for f in live:
        if f["is_remote_configuration"]:
            continue
        filters = _with_dependency_chains(effective_filters(f["filters"]), by_id, keys, chains)
        wanted.extend(cohorts_used(filters))
        flag = {
            "id": f["id"],
            "team_id": f["project_id"],
            "name": f["name"],
            "key": f["key"],
            "filters": filters,
            "deleted": False,
            "active": f["active"],
            "ensure_experience_continuity": f["ensure_experience_continuity"],
            "has_encrypted_payloads": False,
            "version": f["version"],
            "evaluation_runtime": f["evaluation_runtime"],
            "evaluation_tags": f["evaluation_tags"],
        }
        if f["bucketing_identifier"]:
            flag["bucketing_identifier"] = f["bucketing_identifier"]
        out_flags.append(flag)
    out_cohorts = {str(cid): row["filters"].get("properties")
                   for cid, row in cohorts_reached(wanted, cohorts).items() if not row["is_static"]}
    return {
        "flags": out_flags,
        "group_type_mapping": {str(k): v for k, v in sorted(group_type_mapping.items())},
        "cohorts": dict(sorted(out_cohorts.items(), key=lambda kv: int(kv[0]))),
    }


def _with_dependency_chains(filters, by_id, keys, chains):
    if not any(True for _ in flag_refs(filters)):
        return filters
    out = dict(filters)
    for name in CONDITION_LISTS:
        if not isinstance(filters.get(name), list):
            continue
        conditions = []
        for condition in filters[name]:
            if isinstance(condition, dict) and condition.get("properties"):
                props = []
                for prop in condition["properties"]:
                    if isinstance(prop, dict) and prop.get("type") == "flag":
                        key = _resolve(str(prop.get("key")), by_id, keys)
                        prop = {**prop, "key": key if key is not None else prop.get("key"),
                                "dependency_chain": chains.get(key, []) if key is not None else []}
                    props.append(prop)
                condition = {**condition, "properties": props}
            conditions.append(condition)
        out[name] = conditions
    return out
