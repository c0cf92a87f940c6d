"""Cohort membership for `type: cohort` filters (docs/flags-protocol.md "Flags: cohorts").

Dynamic cohorts are compiled into matcher trees over person properties (nested AND/OR groups,
`negation` on leaves, references to other cohorts); static membership comes from the caller as a
set of cohort ids. A cohort that is part of (or depends on) a reference cycle, or that uses
behavioural filters, is never matched.
"""

from collections.abc import Callable
from datetime import tzinfo

from ..filters import cohort_id as _cohort_id
from ..filters import cohort_leaves, cohort_refs, walk
from ..filters import is_group as _is_group
from . import dates
from .operators import Env, Matcher, compile_filter

CohortMatcher = Callable[[dict, Env], bool]


class CohortNotFound(Exception):
    """A filter names a cohort that does not exist (deleted): the server fails that flag."""

    code = "dependency_not_found_cohort"


def _root(definition: dict):
    # Stored cohorts are {"properties": group, "is_static": ...}; local-eval payloads send the group.
    if "properties" in definition:
        return definition.get("properties")
    return definition if "values" in definition else None


class Cohorts:
    """Compiled cohorts of one project: `member(cohort_id, props, env)` answers membership."""

    def __init__(self, cohorts: dict, tz: tzinfo = dates.UTC):
        self._tz = tz
        self._static: set[int] = set()
        # Usable cohorts that reference other dynamic cohorts: member() settles those first.
        self._refs: dict[int, tuple[int, ...]] = {}
        roots: dict[int, dict] = {}
        for raw_id, definition in (cohorts or {}).items():
            cid = _cohort_id(raw_id)
            if cid is None or not isinstance(definition, dict):
                continue
            if definition.get("is_static"):
                self._static.add(cid)
            else:
                roots[cid] = _root(definition)
        # Only references to dynamic cohorts matter here: static ones are sets, they cannot cycle.
        references = {cid: [ref for ref in cohort_refs(root) if ref in roots] for cid, root in roots.items()}
        _, unusable = walk(references)
        self._matchers: dict[int, CohortMatcher] = {}
        for cid, root in roots.items():
            behavioural = any(leaf.get("type") == "behavioral" for leaf in cohort_leaves(root))
            if root == {}:
                # An empty group ({"properties": {}}) has no criteria: like any empty group, everyone.
                self._matchers[cid] = lambda props, env: True
            elif cid in unusable or behavioural or not _is_group(root):
                self._matchers[cid] = lambda props, env: False
            else:
                self._matchers[cid] = self._group(root)
                if references[cid]:
                    self._refs[cid] = tuple(dict.fromkeys(references[cid]))

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
            failed = env.cohort_memo.get((cohort_id, id(props), "failed"))
            if failed is not None:
                raise failed
            if cohort_id in self._refs:
                self._settle(cohort_id, props, env)
            result = env.cohort_memo[memo_key] = matcher(props, env)
        return result

    def _settle(self, cohort_id: int, props: dict, env: Env) -> None:
        """Match the cohorts `cohort_id` references, transitively, deepest first (an explicit stack),
        so that matching it needs no recursion through a long chain of references. Failures are
        remembered and raised only if the lazy match really reaches them."""
        memo, pid = env.cohort_memo, id(props)
        seen = {cohort_id}
        stack = [(cohort_id, iter(self._refs[cohort_id]))]
        while stack:
            node, refs = stack[-1]
            ref = next(refs, None)
            if ref is None:
                stack.pop()
                if stack and (node, pid) not in memo:
                    try:
                        memo[(node, pid)] = self._matchers[node](props, env)
                    except CohortNotFound as exc:
                        memo[(node, pid, "failed")] = exc
            elif ref not in seen and (ref, pid) not in memo:
                seen.add(ref)
                stack.append((ref, iter(self._refs.get(ref, ()))))

    def _group(self, node: dict) -> CohortMatcher:
        children = tuple(
            self._group(child) if _is_group(child) else self._leaf(child)
            for child in node["values"]
            if isinstance(child, dict)
        )
        if not children:
            # An empty group, AND or OR, places no condition (as the server and SDKs read it).
            return lambda props, env: True
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
            matcher = compile_filter(leaf, self._tz)
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
