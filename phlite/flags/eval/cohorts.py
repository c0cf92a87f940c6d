"""Cohort membership for `type: cohort` filters (posthog-api.md 5.6).

Dynamic cohorts are compiled into matcher trees over person properties (nested AND/OR groups,
`negation` on leaves, references to other cohorts); static membership comes from the caller as a
set of cohort ids. A cohort that is part of (or depends on) a reference cycle, or that uses
behavioural filters, is never matched.
"""

from collections.abc import Callable
from datetime import tzinfo

from . import dates
from .operators import Env, Matcher, compile_property

CohortMatcher = Callable[[dict, Env], bool]


class CohortNotFound(Exception):
    """A filter names a cohort that does not exist (deleted): the server fails that flag."""

    code = "dependency_not_found_cohort"


def _cohort_id(value) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _root(definition: dict):
    # Stored cohorts are {"properties": group, "is_static": ...}; local-eval payloads send the group.
    if "properties" in definition:
        return definition.get("properties")
    return definition if "values" in definition else None


def _is_group(node) -> bool:
    return isinstance(node, dict) and isinstance(node.get("values"), list) and "key" not in node


def _walk_leaves(node):
    if _is_group(node):
        for child in node["values"]:
            yield from _walk_leaves(child)
    elif isinstance(node, dict):
        yield node


def _unusable(cohort_ids: dict[int, set[int]]) -> set[int]:
    """Cohorts in a reference cycle or depending on one (iterative DFS, colours white/grey/black)."""
    state: dict[int, int] = {}
    bad: set[int] = set()
    for start in cohort_ids:
        if start in state:
            continue
        stack = [(start, iter(cohort_ids.get(start, ())))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                state[node] = 2
                if stack and node in bad:
                    bad.add(stack[-1][0])
                continue
            if state.get(child) == 1:  # back edge: every cohort on the path from child is cyclic
                for frame, _ in reversed(stack):
                    bad.add(frame)
                    if frame == child:
                        break
            elif state.get(child) == 2:
                if child in bad:
                    bad.add(node)
            elif child in cohort_ids:
                state[child] = 1
                stack.append((child, iter(cohort_ids.get(child, ()))))
    return bad


class Cohorts:
    """Compiled cohorts of one project: `member(cohort_id, props, env)` answers membership."""

    def __init__(self, cohorts: dict, tz: tzinfo = dates.UTC):
        self._tz = tz
        self._static: set[int] = set()
        roots: dict[int, dict] = {}
        for raw_id, definition in (cohorts or {}).items():
            cid = _cohort_id(raw_id)
            if cid is None or not isinstance(definition, dict):
                continue
            if definition.get("is_static"):
                self._static.add(cid)
            else:
                roots[cid] = _root(definition)
        references = {
            cid: {
                ref
                for leaf in _walk_leaves(root)
                if leaf.get("type") == "cohort" and (ref := _cohort_id(leaf.get("value"))) is not None
            }
            for cid, root in roots.items()
        }
        unusable = _unusable(references)
        self._matchers: dict[int, CohortMatcher] = {}
        for cid, root in roots.items():
            behavioural = any(leaf.get("type") == "behavioral" for leaf in _walk_leaves(root))
            if cid in unusable or behavioural or not _is_group(root):
                self._matchers[cid] = lambda props, env: False
            else:
                self._matchers[cid] = self._group(root)

    def member(self, cohort_id: int, props: dict, env: Env) -> bool:
        matcher = self._matchers.get(cohort_id)
        if matcher is None:
            if cohort_id in env.static_cohorts:
                return True
            if cohort_id in self._static:
                return False
            raise CohortNotFound(f"Cohort {cohort_id} does not exist")
        # Several flags often test the same cohort: evaluate it once per person per request.
        memo_key = (cohort_id, id(props))
        result = env.cohort_memo.get(memo_key)
        if result is None:
            result = env.cohort_memo[memo_key] = matcher(props, env)
        return result

    def _group(self, node: dict) -> CohortMatcher:
        children = tuple(
            self._group(child) if _is_group(child) else self._leaf(child)
            for child in node["values"]
            if isinstance(child, dict)
        )
        if node.get("type") == "OR":

            def any_of(props, env):
                for child in children:
                    if child(props, env):
                        return True
                return False

            return any_of

        def all_of(props, env):  # "AND" and the legacy "property" group type
            for child in children:
                if not child(props, env):
                    return False
            return True

        return all_of

    def _leaf(self, leaf: dict) -> CohortMatcher:
        if leaf.get("type") == "cohort":
            matcher = self.filter_matcher(leaf)
        else:
            matcher = compile_property(leaf, self._tz)
        if leaf.get("negation"):
            return lambda props, env: not matcher(props, env)
        return matcher

    def filter_matcher(self, filt: dict) -> Matcher:
        """A matcher for `{"type": "cohort", "value": id, "operator": in|not_in}` (negation aside)."""
        cohort_id = _cohort_id(filt.get("value"))
        operator = filt.get("operator") or "in"
        if cohort_id is None or operator not in ("in", "exact", "not_in"):
            return lambda props, env: False
        member = self.member
        if operator == "not_in":
            return lambda props, env: not member(cohort_id, props, env)
        return lambda props, env: member(cohort_id, props, env)
