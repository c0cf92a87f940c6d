"""Flag definitions per project, kept in memory: compiled for /flags, and the local-evaluation
JSON with its ETag for /flags/definitions.

An entry is rebuilt when the store's flag generation for the project has moved (every flag or
cohort write, and a change of the project's timezone, bumps it after commit), so a change is visible to the next request without any
explicit invalidation call. Group types are kept separately: they are created by ingestion, not
by flag edits, and are re-read when a request names a group type the cache does not know.
Thread-safe: entries are immutable and replaced whole; builds are serialised by one lock.
"""

import hashlib
import logging
import threading
import zoneinfo
from dataclasses import dataclass, field
from datetime import timezone

import orjson

from phlite.flags import definitions
from phlite.flags.eval import CompiledFlags, compile_flags
from phlite.flags.filters import cohort_refs, cohorts_reached, property_filters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectFlags:
    generation: int
    rows: tuple  # non-deleted flag rows, by id
    by_key: dict  # key -> row
    cohorts: dict  # cohort id -> row (non-deleted)
    compiled: CompiledFlags
    static_cohorts: frozenset  # static cohort ids some active flag depends on
    static_flags: frozenset  # keys of the flags that do
    uses_person: bool  # some active flag reads person properties or cohorts
    continuity: frozenset  # keys of active flags with ensure_experience_continuity
    # Whether /flags answers may be cached (phlite.flags.answers): no continuity flag (evaluating
    # it writes hash keys). Answers that read the clock are left out one by one (Evaluation.read_clock).
    cacheable: bool = False
    # Per-request answers that depend only on these definitions, filled lazily by phlite.flags.serve
    # (e.g. the flags each runtime may not see). Entries are replaced whole, so this goes with them.
    memo: dict = field(default_factory=dict, compare=False, repr=False)


def _static_refs(refs, cohorts):
    """Static cohort ids among `refs` and the cohorts they reference, transitively."""
    return {cid for cid, row in cohorts_reached(refs, cohorts).items() if row["is_static"]}


def _analyse(rows, cohorts):
    """(static cohort ids, keys of flags using them, whether any flag reads person properties)."""
    static, static_flags, person = set(), set(), False
    for row in rows:
        if not row["active"]:
            continue
        filters = row["filters"]
        if filters.get("feature_enrollment") or filters.get("super_groups"):
            person = True
        flag_level = filters.get("aggregation_group_type_index")
        refs = []
        for _, condition, prop in property_filters(filters):
            kind = prop.get("type")
            if kind == "cohort":
                person = True
                refs.extend(cohort_refs(prop))
            elif kind not in ("flag", "group") and condition.get("aggregation_group_type_index", flag_level) is None:
                person = True
        used = _static_refs(refs, cohorts)
        if used:
            static |= used
            static_flags.add(row["key"])
    return frozenset(static), frozenset(static_flags), person


def _zone(name):
    """The project's timezone; UTC if the stored name is not one this machine knows."""
    try:
        return zoneinfo.ZoneInfo(name) if name and name != "UTC" else timezone.utc
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        log.warning("unknown project timezone %r: flag dates are read in UTC", name)
        return timezone.utc


def _compile(rows, cohorts, tz=timezone.utc):
    """compile_flags, but a stored flag the evaluator cannot compile is left out (and logged)
    instead of taking every flag of the project down with it; flags depending on it then
    report missing_dependency."""
    definitions = {cid: {"properties": c["filters"].get("properties"), "is_static": c["is_static"]}
                   for cid, c in cohorts.items()}
    try:
        return compile_flags(rows, definitions, tz), rows
    except Exception:
        good = []
        for row in rows:
            try:
                compile_flags([row], definitions, tz)
                good.append(row)
            except Exception:
                log.exception("flag %s (id %s) cannot be compiled; it is left out", row["key"], row["id"])
        return compile_flags(good, definitions, tz), good


def build(generation, rows, cohorts, timezone_name="UTC") -> ProjectFlags:
    compiled, _ = _compile(rows, cohorts, _zone(timezone_name))
    static, static_flags, person = _analyse(rows, cohorts)
    return ProjectFlags(
        generation=generation,
        rows=tuple(rows),
        by_key={r["key"]: r for r in rows},
        cohorts=cohorts,
        compiled=compiled,
        static_cohorts=static,
        static_flags=static_flags,
        uses_person=person,
        continuity=frozenset(r["key"] for r in rows if r["active"] and r["ensure_experience_continuity"]),
        cacheable=not any(r["active"] and r["ensure_experience_continuity"] for r in rows),
    )


class FlagCache:
    def __init__(self, store):
        self._store = store
        self._lock = threading.Lock()
        self._projects: dict[int, ProjectFlags] = {}
        self._group_types: dict[int, tuple] = {}  # pid -> ({index: name}, frozenset of names)
        self._definitions: dict[int, tuple] = {}  # pid -> (generation, mapping items, body, etag)

    def project(self, project_id) -> ProjectFlags:
        """The project's current definitions (one store read after each change).

        :raises phlite.store.DatabaseError: when they must be read and the store fails.
        """
        generation = self._store.flag_generation(project_id)
        entry = self._projects.get(project_id)
        if entry is not None and entry.generation == generation:
            return entry
        with self._lock:
            entry = self._projects.get(project_id)
            if entry is not None and entry.generation == generation:
                return entry
            # Read after taking the generation: a write committing meanwhile bumps it again,
            # so at worst the next request rebuilds once more; it never keeps stale rows.
            rows, cohorts = self._store.load_flag_definitions(project_id)
            project = self._store.get_project(project_id)
            entry = build(generation, rows, cohorts, project["timezone"] if project else "UTC")
            self._projects[project_id] = entry
            return entry

    def group_types(self, project_id, names=()) -> dict:
        """{group type index: name}; re-read from the store if any of `names` is unknown."""
        cached = self._group_types.get(project_id)
        if cached is None or not cached[1].issuperset(names):
            return self.refresh_group_types(project_id)
        return cached[0]

    def refresh_group_types(self, project_id) -> dict:
        mapping = dict(self._store.group_type_mapping(project_id))
        # With the set of names, so the per-request "all names known?" test is one issuperset().
        self._group_types[project_id] = (mapping, frozenset(mapping.values()))
        return mapping

    def definitions(self, project_id) -> tuple[bytes, str]:
        """(local-evaluation JSON, its weak ETag), with group types read afresh."""
        entry = self.project(project_id)
        mapping = self.refresh_group_types(project_id)
        items = tuple(sorted(mapping.items()))
        cached = self._definitions.get(project_id)
        if cached is not None and cached[0] == entry.generation and cached[1] == items:
            return cached[2], cached[3]
        body = orjson.dumps(definitions.local_evaluation(list(entry.rows), entry.cohorts, mapping))
        etag = 'W/"' + hashlib.sha1(body).hexdigest() + '"'
        self._definitions[project_id] = (entry.generation, items, body, etag)
        return body, etag
