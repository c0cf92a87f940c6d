"""Feature flags: definitions -> compile -> evaluate.

`FlagService` is the face the web handlers use: evaluate a /flags request, the local-evaluation
definitions with their ETag, remote config. Beside it, the pure parts they call by name: the
/flags wire format (`wire`), flag and cohort checking and JSON (`definitions`). Inside:
`cache` (compiled definitions per project, rebuilt when the store's flag generation moves),
`answers` (recent evaluations, keyed on everything they were computed from),
`serve` (one request's store work), `filters` (the one walker of stored filters), and `eval/`
(the pure evaluator).
"""

import time
from datetime import datetime, timezone

from phlite import errors
from phlite.flags import edits as _edits
from phlite.flags import remote_config as _remote_config
from phlite.flags.answers import AnswerCache
from phlite.flags.cache import FlagCache
from phlite.flags.definitions import (
    activity_json, check_filters, clean_cohort, clean_flag, cohort_json, dependents, flag_json, flags_using_cohort,
)
from phlite.flags.eval.cohorts import Cohorts as _Cohorts, CohortNotFound as _CohortNotFound
from phlite.flags.eval.operators import Env as _Env
from phlite.flags.eval import (
    CompiledFlags, Context, FlagResult, compile_flags, errors_while_computing, evaluate, hash_value, holdout_hash,
    person_props_for_flags, validate_flag,
)
from phlite.flags.filters import cohort_id, cohort_leaves, cohort_refs, flag_refs, property_filters
from phlite.flags.filters import walk as walk_dependencies
from phlite.flags.serve import Evaluation, evaluate_request
from phlite.flags.wire import (
    CONFIG, FlagRequest, bool_param, decode_flags_body, minimal_response, missing_distinct_id, missing_token,
    invalid_token, mixpanel_response, parse_flags_request, parse_mixpanel_request, request_runtime,
    response_format, shape_response,
)
from phlite.store import DatabaseError


class FlagService:
    """Feature flags of a running phlite, over one store.

    Definitions are cached per project and rebuilt when the store's flag generation for the
    project moves (every committed flag or cohort write bumps it), so a change is visible to the
    next request with no invalidation call.
    """

    def __init__(self, store, clock=time.time, cache_answers=True):
        self._store = store
        self._clock = clock
        self._cache = FlagCache(store)
        self.answers = AnswerCache() if cache_answers else None

    def evaluate(self, project_id: int, request: FlagRequest, *, runtime: str | None = None,
                 survey_only: bool = False, stored_person: bool = True) -> Evaluation:
        """Evaluate the project's flags for one decoded /flags request, at the clock's now.

        A failing store never raises: the flags that needed it come back failed (`errors`).
        """
        return evaluate_request(self._store, self._cache, project_id, request, now=self._clock(),
                                runtime=runtime, survey_only=survey_only, stored_person=stored_person,
                                answers=self.answers)

    def definitions(self, project_id: int) -> tuple[bytes, str]:
        """(local-evaluation JSON, its weak ETag) of the project.

        :raises phlite.store.DatabaseError: when the definitions must be read and the store fails.
        """
        return self._cache.definitions(project_id)

    # --- writes: the checks every flag and cohort change runs (JSON API and console alike) ---------

    def create_flag(self, project_id: int, body: dict, *, key_id=None, user_id=None):
        """(the new flag row, warnings) of an API-shaped create body.

        :raises errors.PhliteError: 400 naming the field, 409 for a duplicate key.
        """
        return _edits.create_flag(self._store, project_id, body, {"key_id": key_id, "user_id": user_id})

    def update_flag(self, project_id: int, flag_id: int, body: dict, *, key_id=None, user_id=None, put=False):
        """(the new row, or None if there is no such flag, warnings) of a PATCH (or PUT) body."""
        return _edits.update_flag(self._store, project_id, flag_id, body, {"key_id": key_id, "user_id": user_id},
                                  put)

    def create_cohort(self, project_id: int, body: dict, *, key_id=None, user_id=None):
        return _edits.create_cohort(self._store, project_id, body, {"key_id": key_id, "user_id": user_id})

    def update_cohort(self, project_id: int, cohort_id: int, body: dict, *, key_id=None, user_id=None):
        """The new row, or None if there is no such cohort."""
        return _edits.update_cohort(self._store, project_id, cohort_id, body, {"key_id": key_id, "user_id": user_id})

    # --- cohort membership, as flag evaluation decides it ---------------------------------------

    COHORT_SCAN = 5000  # persons a dynamic cohort's member list looks through (newest first)

    def _cohorts(self, project_id):
        project = self._cache.project(project_id)
        definitions = {cid: {"properties": c["filters"].get("properties"), "is_static": c["is_static"]}
                       for cid, c in project.cohorts.items()}
        return project, _Cohorts(definitions)

    def _member(self, cohorts, cohort_id, props, env):
        try:
            return cohorts.member(cohort_id, props, env)
        except _CohortNotFound:
            return False

    def cohorts_of(self, project_id: int, distinct_id: str) -> list[dict]:
        """The cohort rows the person of `distinct_id` is in, as a `type: cohort` flag filter decides:
        dynamic cohorts by the person's stored properties, static ones by its distinct ids."""
        project, cohorts = self._cohorts(project_id)
        person = self._store.get_person_by_distinct_id(project_id, distinct_id)
        props = person_props_for_flags(person and person["properties"], None, distinct_id)
        static_ids = [cid for cid, c in project.cohorts.items() if c["is_static"]]
        static = self._store.static_cohorts_of(project_id, static_ids, distinct_id, person and person["id"])
        env = _Env(datetime.fromtimestamp(self._clock(), timezone.utc), static_cohorts=static)
        return [c for cid, c in sorted(project.cohorts.items()) if self._member(cohorts, cid, props, env)]

    def cohort_members(self, project_id: int, cohort_id: int, limit: int = 200) -> tuple[list[dict], int]:
        """(up to `limit` persons, how many matched) of a dynamic cohort among the newest COHORT_SCAN persons."""
        _, cohorts = self._cohorts(project_id)
        persons, _ = self._store.list_persons(project_id, limit=self.COHORT_SCAN)
        now = datetime.fromtimestamp(self._clock(), timezone.utc)
        found = []
        for p in persons:
            props = person_props_for_flags(p["properties"], None, p["distinct_ids"][0] if p["distinct_ids"] else "")
            if self._member(cohorts, cohort_id, props, _Env(now)):
                found.append(p)
        return found[:limit], len(found)

    def project_config(self, project_id: int, token: str) -> dict:
        """The project's remote config (what /array/<token>/config answers)."""
        try:
            has_flags = any(row["active"] for row in self._cache.project(project_id).rows)
        except DatabaseError:
            has_flags = True  # the safe side: the client asks for flags
        return _remote_config.project_config(token, has_flags)

    def remote_config_payload(self, project_id: int, flag: str) -> str | None:
        """The stored JSON text a remote-config flag (named by key, or id in digits) serves, None
        if it has none.

        :raises errors.NotFound: no non-deleted remote-config flag has this key or id.
        :raises phlite.store.DatabaseError: when the definitions must be read and the store fails.
        """
        project = self._cache.project(project_id)
        row = _remote_config.find_flag(project.by_key, project.rows, flag)
        if row is None:
            raise errors.NotFound("No remote config flag with this key or id.")
        return _remote_config.payload(row)


__all__ = [
    "cohort_id", "cohort_leaves", "cohort_refs", "flag_refs", "property_filters", "walk_dependencies",
    "CONFIG", "CompiledFlags", "Context", "Evaluation", "FlagRequest", "FlagResult", "FlagService",
    "activity_json", "bool_param", "check_filters", "clean_cohort", "clean_flag", "cohort_json", "compile_flags",
    "decode_flags_body", "dependents", "errors_while_computing", "evaluate", "flag_json", "flags_using_cohort",
    "hash_value", "holdout_hash", "invalid_token", "minimal_response", "missing_distinct_id", "missing_token",
    "mixpanel_response", "parse_flags_request", "parse_mixpanel_request", "person_props_for_flags",
    "request_runtime", "response_format", "shape_response", "validate_flag",
]
