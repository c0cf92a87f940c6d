"""Flag and cohort definitions at the API boundary: checking what clients send, and the JSON
shapes phlite answers (the private API's objects, the local-evaluation definitions of
posthog-api.md 7.2).

Pure: plain dicts in and out; filter semantics are checked by phlite.flags.validate_flag.
Imports errors and phlite.flags only.
"""

import re
from datetime import datetime, timezone

from phlite import errors
from phlite.flags.eval import validate_flag

KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
RUNTIMES = ("all", "client", "server")
BUCKETING = (None, "distinct_id", "device_id")
CONDITION_LISTS = ("groups", "super_groups", "holdout_groups")


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


def clean_flag(body: dict, current: dict | None = None, require_key: bool = True) -> dict:
    """The stored columns a create (current=None) or PATCH/PUT body sets, type-checked.

    Filter semantics are checked separately (check_filters), because that needs the project's
    cohorts and flags. Unknown and read-only fields are ignored, as PostHog's API does.
    :raises errors.BadRequest: naming the field in `attr`.
    """
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
    if "filters" in body or creating:
        filters = body.get("filters")
        if filters is None:
            filters = {"groups": []}
        if not isinstance(filters, dict):
            raise _bad("'filters' must be an object.", "filters")
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
        out["bucketing_identifier"] = bucketing
    if not creating and "version" in body and body["version"] is not None and body["version"] != current["version"]:
        raise errors.PhliteError(
            f"The flag was changed since version {body['version']} (it is at version {current['version']}):"
            " read it again and re-apply your change.",
            status=409, type="validation_error", code="conflict", attr="version",
        )
    return out


def conditions(filters: dict):
    """Every condition dict of a flag's filters (release, super and holdout conditions)."""
    for name in CONDITION_LISTS:
        for condition in filters.get(name) or []:
            if isinstance(condition, dict):
                yield condition


def flag_refs(filters: dict):
    """(path such as "groups[0].properties[1]", filter) of every `type: flag` filter."""
    for name in CONDITION_LISTS:
        for ci, condition in enumerate(filters.get(name) or []):
            if not isinstance(condition, dict):
                continue
            for pi, prop in enumerate(condition.get("properties") or []):
                if isinstance(prop, dict) and prop.get("type") == "flag":
                    yield f"{name}[{ci}].properties[{pi}]", prop


def _dependency_keys(filters, by_id: dict, keys: set) -> list:
    out = []
    for _, prop in flag_refs(filters):
        text = str(prop.get("key"))
        if text in by_id:
            out.append(by_id[text])
        elif text in keys:
            out.append(text)
    return out


def check_filters(filters: dict, flag_id, flag_key: str, cohort_ids: set, flags: list[dict]) -> None:
    """Validate `filters` against the project: operators and values (phlite.flags), cohorts and
    flags that exist, and no flag depending on itself through any chain of dependencies.

    :param flags: the project's non-deleted flag rows (the edited flag included, if it exists).
    """
    others = [f for f in flags if f["id"] != flag_id]
    validate_flag(filters, cohorts_known=cohort_ids,
                  flag_keys_known={f["key"] for f in others}, flag_ids_known={f["id"] for f in others})
    by_id = {str(f["id"]): f["key"] for f in others}
    keys = {f["key"] for f in others}
    graph = {f["key"]: _dependency_keys(f["filters"], {**by_id, str(flag_id): flag_key}, keys | {flag_key})
             for f in others}
    graph[flag_key] = _dependency_keys(filters, by_id, keys)
    if _reaches_itself(graph, flag_key):
        raise _bad("Invalid filters: this flag would depend on itself (circular flag dependency).", "filters",
                   code="circular_dependency")


def _reaches_itself(graph, start):
    """Whether following graph's edges from start leads back to start."""
    seen, stack = set(), list(graph[start])
    while stack:
        node = stack.pop()
        if node == start:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(graph.get(node, ()))
    return False


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


def cohort_refs(node):
    if isinstance(node, dict):
        if "values" in node and "key" not in node:
            for child in node.get("values") or []:
                yield from cohort_refs(child)
        elif node.get("type") == "cohort":
            try:
                yield int(node.get("value"))
            except (TypeError, ValueError):
                pass


def _check_group(node, path, cohort_ids):
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
            _check_group(filters["properties"], "properties", known)
            if current is not None:
                _check_cohort_cycle(current["id"], filters, cohorts)
            out["filters"] = {"properties": filters["properties"]}
    return out, distinct_ids


def _check_cohort_cycle(cohort_id, filters, cohorts):
    graph = {cid: set(cohort_refs(c["filters"].get("properties"))) for cid, c in cohorts.items()}
    graph[cohort_id] = set(cohort_refs(filters.get("properties")))
    if _reaches_itself(graph, cohort_id):
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


# --- local evaluation (posthog-api.md 7.2) ----------------------------------------------------------


def _dependency_chain(key: str, graph: dict) -> list:
    """The keys `key` needs evaluated first, in order, ending with `key`; [] on a cycle or missing flag."""
    order, state = [], {}

    def visit(k):
        if k not in graph:
            return False
        if state.get(k) == 1:
            return False  # cycle
        if state.get(k) == 2:
            return True
        state[k] = 1
        for dep in graph[k]:
            if not visit(dep):
                return False
        state[k] = 2
        order.append(k)
        return True

    return order if visit(key) else []


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
    graph = {}
    for f in live:
        deps = []
        for _, prop in flag_refs(f["filters"]):
            text = str(prop.get("key"))
            deps.append(by_id.get(text, text if text in keys else None))
        graph[f["key"]] = deps  # a None (unknown flag) makes every chain through this flag empty
    out_flags, wanted = [], []
    for f in live:
        if f["is_remote_configuration"]:
            continue
        filters = _with_dependency_chains(f["filters"], by_id, keys, graph)
        for name in CONDITION_LISTS:
            for condition in filters.get(name) or []:
                if isinstance(condition, dict):
                    for prop in condition.get("properties") or []:
                        wanted.extend(cohort_refs(prop))
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
    out_cohorts, seen = {}, set()
    while wanted:
        cid = wanted.pop()
        if cid in seen:
            continue
        seen.add(cid)
        cohort = cohorts.get(cid)
        if cohort is None or cohort["is_static"] or cohort["deleted"]:
            continue
        properties = cohort["filters"].get("properties")
        out_cohorts[str(cid)] = properties
        wanted.extend(cohort_refs(properties))
    return {
        "flags": out_flags,
        "group_type_mapping": {str(k): v for k, v in sorted(group_type_mapping.items())},
        "cohorts": dict(sorted(out_cohorts.items(), key=lambda kv: int(kv[0]))),
    }


def _with_dependency_chains(filters, by_id, keys, graph):
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
                        text = str(prop.get("key"))
                        key = by_id.get(text, text if text in keys else None)
                        prop = {**prop, "key": key if key is not None else prop.get("key"),
                                "dependency_chain": _dependency_chain(key, graph) if key is not None else []}
                    props.append(prop)
                condition = {**condition, "properties": props}
            conditions.append(condition)
        out[name] = conditions
    return out
