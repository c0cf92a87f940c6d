"""The one walker of stored flag and cohort filters, and the one graph walk over the dependencies
between flags (and between cohorts).

Everything here is iterative: stored definitions come from clients, so neither a long chain of
dependencies nor a deeply nested group may cost Python stack. Pure: standard library only.
"""

from collections.abc import Iterable, Iterator

CONDITION_LISTS = ("groups", "super_groups", "holdout_groups")
# Deepest JSON nesting a flag's filters, a cohort's group or a payload may have (README, Feature flags):
# orjson writes at most 254 levels, and the definitions are served inside other objects.
MAX_DEPTH = 64


# --- flag filters ---------------------------------------------------------------------------------


def is_legacy(filters) -> bool:
    """Whether `filters` is PostHog's legacy flag format: no `groups`, the properties at the top."""
    return isinstance(filters, dict) and "groups" not in filters


def effective_filters(filters, rollout_percentage=None) -> dict:
    """The filters as PostHog reads them (docs/flags-protocol.md "Flags: definition format"): a
    legacy definition is one release condition of its `properties` and the flag's top-level
    `rollout_percentage`, everything else ignored."""
    if not isinstance(filters, dict):
        return {"groups": []}
    if "groups" in filters:
        return filters
    properties = filters.get("properties")
    return {"groups": [{"properties": properties if properties is not None else [],
                        "rollout_percentage": rollout_percentage}]}


def conditions(filters: dict) -> Iterator[tuple[str, int, dict]]:
    """(list name, index, condition) of every condition dict: release, super and holdout conditions."""
    filters = effective_filters(filters)
    for name in CONDITION_LISTS:
        listed = filters.get(name)
        if not isinstance(listed, list):
            continue
        for index, condition in enumerate(listed):
            if isinstance(condition, dict):
                yield name, index, condition


def property_filters(filters: dict) -> Iterator[tuple[str, dict, dict]]:
    """(path such as "groups[0].properties[1]", condition, filter) of every property filter dict."""
    for name, ci, condition in conditions(filters):
        properties = condition.get("properties")
        if not isinstance(properties, list):
            continue
        for pi, prop in enumerate(properties):
            if isinstance(prop, dict):
                yield f"{name}[{ci}].properties[{pi}]", condition, prop


def flag_refs(filters: dict) -> Iterator[tuple[str, dict]]:
    """(path, filter) of every `type: flag` dependency filter."""
    for path, _, prop in property_filters(filters):
        if prop.get("type") == "flag":
            yield path, prop


def cohorts_used(filters: dict) -> Iterator[int]:
    """Ids of the cohorts a flag's filters name directly."""
    for _, _, prop in property_filters(filters):
        yield from cohort_refs(prop)


# --- cohort groups --------------------------------------------------------------------------------


def cohort_id(value) -> int | None:
    """A cohort filter's `value` as a cohort id, or None."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def is_group(node) -> bool:
    """Whether `node` is an AND/OR group of a cohort (not a leaf filter)."""
    return isinstance(node, dict) and isinstance(node.get("values"), list) and "key" not in node


def cohort_leaves(node) -> Iterator[dict]:
    """The leaf filters of a cohort group (or `node` itself if it is a leaf), in document order."""
    stack = [node]
    while stack:
        node = stack.pop()
        if is_group(node):
            stack.extend(reversed(node["values"]))
        elif isinstance(node, dict):
            yield node


def cohort_refs(node) -> Iterator[int]:
    """Ids of the cohorts a cohort group (or one filter) references."""
    for leaf in cohort_leaves(node):
        if leaf.get("type") == "cohort":
            ref = cohort_id(leaf.get("value"))
            if ref is not None:
                yield ref


# --- nesting --------------------------------------------------------------------------------------


def too_deep(value, limit: int = MAX_DEPTH, path: str = "") -> str | None:
    """The path of the first container nested deeper than `limit` levels in `value`, else None."""
    stack = [(value, 1, path)]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, dict):
            children = ((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            children = ((f"{where}[{i}]", v) for i, v in enumerate(node))
        else:
            continue
        if depth > limit:
            return where
        stack.extend((child, depth + 1, child_path) for child_path, child in children)
    return None


# --- dependency graphs ----------------------------------------------------------------------------

_END = object()


def walk(graph: dict, broken: Iterable = ()) -> tuple[list, set]:
    """One depth-first pass over `graph` ({node: successors}, e.g. a flag's dependencies).

    Returns (order, unusable): every node after its successors (dependencies first), and the
    nodes that are on a cycle, or reach a cycle, a node of `broken`, or a successor not in graph.
    """
    order: list = []
    bad = set(broken)
    state: dict = {}  # 1 on the current path, 2 done
    for start in graph:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(graph[start]))]
        while stack:
            node, successors = stack[-1]
            succ = next(successors, _END)
            if succ is _END:
                stack.pop()
                state[node] = 2
                order.append(node)
                if node in bad and stack:
                    bad.add(stack[-1][0])
            elif succ not in graph:
                bad.add(node)
            elif state.get(succ) == 1:  # back edge: every node on the path from succ is on a cycle
                for frame, _ in reversed(stack):
                    bad.add(frame)
                    if frame == succ:
                        break
            elif state.get(succ) == 2:
                if succ in bad:
                    bad.add(node)
            else:
                state[succ] = 1
                stack.append((succ, iter(graph[succ])))
    return order, bad


def reachable(starts: Iterable, successors) -> Iterator:
    """Each node reachable from `starts` (them included), once, following `successors(node)`."""
    seen, stack = set(), list(starts)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            yield node
            stack.extend(successors(node))


def reaches_itself(graph: dict, start) -> bool:
    """Whether following graph's edges from start leads back to start."""
    return start in reachable(graph[start], lambda node: graph.get(node, ()))


def cohorts_reached(refs: Iterable[int], cohorts: dict) -> dict:
    """{id: row} of the existing cohorts (`cohorts`: id -> stored row) that `refs` name, and of the
    cohorts those reference, transitively (static cohorts reference none)."""

    def live(cid):
        row = cohorts.get(cid)
        return row if row is not None and not row["deleted"] else None

    def successors(cid):
        row = live(cid)
        return () if row is None or row["is_static"] else cohort_refs(row["filters"].get("properties"))

    return {cid: cohorts[cid] for cid in reachable(refs, successors) if live(cid) is not None}
