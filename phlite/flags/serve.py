"""One /flags request, evaluated: gathers what the pure evaluator needs from the store (the
person, its groups, static cohort membership, experience-continuity hash keys) and runs it.

The budget per request is one query for the person and the named groups together, none when they
are in memory (Store.flag_subjects), plus one small query each for static cohorts and hash keys
when some flag needs them (and a second person lookup for `$anon_distinct_id` when a continuity
flag is evaluated). A failing store never makes
the request fail: what the request alone gives is evaluated, flags that needed the missing data
come back `failed`, and the caller answers `errorsWhileComputingFlags: true`.
"""

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from phlite.flags.answers import request_key
from phlite.flags.wire import FlagRequest, runtime_allows
from phlite.flags.eval import Context, errors_while_computing, evaluate, person_props_for_flags
from phlite.flags.eval.evaluate import with_dependencies
from phlite.flags.eval.values import json_text
from phlite.store import DatabaseError

log = logging.getLogger(__name__)

SURVEY_PREFIX = "survey-targeting-"


@dataclass(frozen=True)
class Evaluation:
    results: dict  # flag key -> phlite.flags.FlagResult
    errors: bool  # errorsWhileComputingFlags
    read_clock: bool = False  # some answer depended on the time (a relative date): not cacheable
    # Encoded parts of its answers, per response shape (phlite.flags.wire.shape_response): an
    # evaluation the answer cache hands out again is not shaped and encoded again.
    memo: dict = field(default_factory=dict, compare=False, repr=False)


def _failed(result, code, description):
    return replace(result, enabled=False, variant=None, payload=None, failed=True, reason_code=code,
                   condition_index=None, description=description)


def _excluded(project, runtime, contexts, survey_only):
    """Flags the request may not see (docs/flags-protocol.md "Flags endpoint: which flags are evaluated"): other runtime, no matching evaluation tag, non-survey."""
    if not contexts and not survey_only:
        # The common request: the answer depends on the runtime alone, so compute it once per definitions.
        key = ("excluded", runtime)
        cached = project.memo.get(key)
        if cached is None:
            cached = project.memo[key] = frozenset(_excluded_now(project, runtime, contexts, survey_only))
        return cached
    return _excluded_now(project, runtime, contexts, survey_only)


def _excluded_now(project, runtime, contexts, survey_only):
    out = set()
    for key, row in project.by_key.items():
        if not runtime_allows(row["evaluation_runtime"], runtime):
            out.add(key)
        elif contexts and row["evaluation_tags"] and not set(row["evaluation_tags"]) & set(contexts):
            out.add(key)
        elif survey_only and not key.startswith(SURVEY_PREFIX):
            out.add(key)
    return out


def _group_key(value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
        return None
    return value if isinstance(value, str) else json_text(value)


def evaluate_request(store, cache, project_id: int, req: FlagRequest, *, now: float, runtime: str | None = None,
                     survey_only: bool = False, stored_person: bool = True, answers=None) -> Evaluation:
    """Evaluate the project's flags for one decoded request (see the module docstring).

    :param runtime: "client", "server", "all" or None (unknown): which flags the request may see.
    :param stored_person: False ignores stored person properties (`only_use_override_person_properties`).
    """
    if req.disable_flags:
        return Evaluation({}, False)
    try:
        project = cache.project(project_id)
    except DatabaseError:
        log.warning("flag definitions of project %s could not be read", project_id, exc_info=True)
        return Evaluation({}, True)
    compiled = project.compiled
    if not compiled.flags:
        return Evaluation({}, False)
    errors = False
    excluded = _excluded(project, runtime, req.evaluation_contexts, survey_only)
    # Only continuity and static-cohort flags need the set of flags this request evaluates.
    wanted = frozenset()
    if project.continuity or project.static_flags:
        wanted = (set(compiled.flags) if req.flag_keys is None
                  else with_dependencies(compiled, req.flag_keys)) - excluded
    distinct_id = req.distinct_id or ""
    continuity = project.continuity & wanted

    # Group types: only needed when some flag aggregates by group and the request names groups.
    mapping = {}
    if compiled.group_indexes and req.groups:
        try:
            mapping = cache.group_types(project_id, names=list(req.groups))
        except DatabaseError:
            errors = True
            mapping = {}
    by_name = {name: index for index, name in mapping.items()}
    group_keys = {}  # name -> (index, key) of the groups some flag reads
    for name, raw_key in req.groups.items():
        index, key = by_name.get(name), _group_key(raw_key)
        if index is not None and key is not None and index in compiled.group_indexes:
            group_keys[name] = (index, key)

    # The person and the groups: from memory, or one store query (Store.flag_subjects).
    want_person = (project.uses_person and stored_person) or continuity or project.static_cohorts
    person, groups, versions = None, {}, None
    if want_person or group_keys:
        try:
            (person, person_version), groups = store.flag_subjects(
                project_id, distinct_id if want_person else None, list(group_keys.values()))
            versions = (person_version, tuple((k, v[1]) for k, v in groups.items()))
        except DatabaseError:
            log.warning("person or group lookup failed for project %s", project_id, exc_info=True)
            errors = True

    key = None
    if answers is not None and project.cacheable and not errors:
        # Keyed on the versions of the rows just read (they change when the rows may have), not on
        # a store-wide counter: a write to another person leaves this answer valid.
        rkey = request_key(req, runtime, survey_only, stored_person)
        if rkey is not None:
            key = (project_id, project.generation, tuple(mapping.items()), versions, rkey)
            hit = answers.get(key)
            if hit is not None:
                return hit
    outcome = _evaluate(store, project, project_id, req, now, runtime, survey_only, stored_person, excluded,
                        wanted, continuity, mapping, person, {name: groups[ik][0] for name, ik in group_keys.items()
                                                              if ik in groups}, errors)
    if key is not None and not outcome.errors and not outcome.read_clock:
        answers.put(key, outcome)
    return outcome


def _evaluate(store, project, project_id, req, now, runtime, survey_only, stored_person, excluded, wanted,
              continuity, mapping, person, stored_groups, errors) -> Evaluation:
    compiled = project.compiled
    distinct_id = req.distinct_id or ""
    failed: dict[str, tuple[str, str]] = {}
    stored = person["properties"] if person is not None and stored_person else None
    created_at = None
    if person is not None and stored_person and person.get("created_at") is not None:
        created_at = datetime.fromtimestamp(person["created_at"] / 1000, tz=timezone.utc)
    person_props = person_props_for_flags(stored, req.person_properties, distinct_id)

    group_properties = {name: dict(props) for name, props in req.group_properties.items() if isinstance(props, dict)}
    for name, group in stored_groups.items():
        if group is not None:
            group_properties[name] = {**group["group_properties"], **group_properties.get(name, {})}

    static = frozenset()
    if project.static_cohorts and project.static_flags & wanted:
        try:
            static = store.static_cohorts_of(project_id, sorted(project.static_cohorts), distinct_id,
                                             person["id"] if person else None)
        except DatabaseError:
            log.warning("static cohort lookup failed for project %s", project_id, exc_info=True)
            for key in project.static_flags:
                failed[key] = ("database_error", "Static cohort membership could not be read")

    overrides = {}
    if continuity:
        try:
            overrides = _hash_key_overrides(store, project_id, person, req, continuity)
        except DatabaseError:
            log.warning("hash key overrides failed for project %s", project_id, exc_info=True)
            for key in continuity:
                failed[key] = ("database_error", "Experience continuity hash key could not be read or written")

    ctx = Context(
        distinct_id,
        person_props,
        now=datetime.fromtimestamp(now, tz=timezone.utc),
        groups=req.groups,
        group_properties=group_properties,
        group_type_mapping=mapping,
        static_cohorts=static,
        hash_key_overrides=overrides,
        anon_distinct_id=req.anon_distinct_id,
        device_id=req.device_id,
        person_created_at=created_at,
    )
    report: dict = {}
    try:
        results = evaluate(compiled, ctx, req.flag_keys, excluded=excluded, report=report)
    except Exception:
        # An evaluator bug must not turn into a 500 the SDKs read as "no flags, retry later".
        log.exception("flag evaluation failed for project %s", project_id)
        return Evaluation({}, True)
    for key, (code, description) in failed.items():
        if key in results:
            results[key] = _failed(results[key], code, description)
    return Evaluation(results, errors or errors_while_computing(results), report.get("read_clock", False))


def _hash_key_overrides(store, project_id, person, req, continuity):
    """{flag key: hash key} for continuity flags (docs/flags-protocol.md "Flags: experience continuity"): with `$anon_distinct_id`, first give both
    persons the anonymous id as hash key for every continuity flag they have none for yet."""
    anon = req.anon_distinct_id
    anon_person = None
    if anon and anon != req.distinct_id:
        anon_person = store.get_person_by_distinct_id(project_id, anon)
    person_id = person["id"] if person else None
    anon_person_id = anon_person["id"] if anon_person else None
    person_ids = [p for p in (person_id, anon_person_id) if p is not None]
    if not person_ids:
        return {}
    stored = store.hash_key_overrides(project_id, person_ids)
    if anon:
        for pid in dict.fromkeys(person_ids):
            missing = sorted(continuity - stored.get(pid, {}).keys())
            if missing:
                store.add_hash_key_overrides(project_id, [pid], missing, anon)
                stored.setdefault(pid, {}).update({k: anon for k in missing})
    # The distinct id's own person wins over the anonymous one's.
    return {**stored.get(anon_person_id, {}), **stored.get(person_id, {})}
