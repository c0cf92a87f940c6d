"""The private flag API (Bearer personal key), PostHog-shaped: feature flags, their activity
log, and cohorts. Deleting is `PATCH {"deleted": true}`; DELETE answers 405.

Checking bodies and shaping answers is phlite.flags: writes go through FlagService's create_flag /
update_flag / create_cohort / update_cohort (phlite/flags/edits.py), which the console uses too.
"""

import bottle

from phlite import errors
from phlite import flags
from phlite.web.common import bool_query as _bool_query
from phlite.web.common import created as _created
from phlite.web.auth import personal_key, project_for_key
from phlite.web.common import json_body, page_limits as _limits, page as _page, query, route


def register(web, app):
    store = app.store

    def auth(project):
        record = personal_key(store)
        return record, project_for_key(store, record, project)

    # --- flags ------------------------------------------------------------------------

    def list_flags(project):
        _, pid = auth(project)
        q = query()
        limit, offset = _limits()
        rows, count = store.list_flags(pid, limit=limit, offset=offset, search=q.get("search") or None,
                                       active=_bool_query(q, "active"))
        return _page([flags.flag_json(r) for r in rows], count, limit, offset)

    def create_flag(project):
        record, pid = auth(project)
        row, warnings = app.flags.create_flag(pid, json_body(), key_id=record["id"])
        return _created({**flags.flag_json(row), "warnings": warnings})

    def get_flag(project, flag_id):
        _, pid = auth(project)
        row = store.get_flag(pid, flag_id)
        if row is None:
            raise errors.NotFound("Feature flag not found.")
        return flags.flag_json(row)

    def update_flag(project, flag_id):
        record, pid = auth(project)
        row, warnings = app.flags.update_flag(pid, flag_id, json_body(), key_id=record["id"],
                                              put=bottle.request.method == "PUT")
        if row is None:
            raise errors.NotFound("Feature flag not found.")
        return {**flags.flag_json(row), "warnings": warnings}

    def flag_activity(project, flag_id=None):
        _, pid = auth(project)
        if flag_id is not None and store.get_flag(pid, flag_id) is None:
            raise errors.NotFound("Feature flag not found.")
        limit, offset = _limits()
        entries, count = store.list_activity(pid, "FeatureFlag", flag_id, limit=limit, offset=offset)
        return _page([flags.activity_json(e, flags.flag_json) for e in entries], count, limit, offset)

    # --- cohorts ----------------------------------------------------------------------

    def cohort_out(row):
        return flags.cohort_json(row, store.static_member_count(row["id"]) if row["is_static"] else None)

    def list_cohorts(project):
        _, pid = auth(project)
        limit, offset = _limits()
        rows, count = store.list_cohorts(pid, limit=limit, offset=offset)
        return _page([cohort_out(r) for r in rows], count, limit, offset)

    def create_cohort(project):
        record, pid = auth(project)
        return _created(cohort_out(app.flags.create_cohort(pid, json_body(), key_id=record["id"])))

    def get_cohort(project, cohort_id):
        _, pid = auth(project)
        row = store.get_cohort(pid, cohort_id)
        if row is None:
            raise errors.NotFound("Cohort not found.")
        out = cohort_out(row)
        if row["is_static"] and _bool_query(query(), "include_members"):
            out["distinct_ids"] = store.static_members(cohort_id)
        return out

    def update_cohort(project, cohort_id):
        record, pid = auth(project)
        row = app.flags.update_cohort(pid, cohort_id, json_body(), key_id=record["id"])
        if row is None:
            raise errors.NotFound("Cohort not found.")
        return cohort_out(row)

    def cohort_activity(project, cohort_id):
        _, pid = auth(project)
        if store.get_cohort(pid, cohort_id) is None:
            raise errors.NotFound("Cohort not found.")
        limit, offset = _limits()
        entries, count = store.list_activity(pid, "Cohort", cohort_id, limit=limit, offset=offset)
        return _page([flags.activity_json(e, lambda c: flags.cohort_json(c)) for e in entries],
                     count, limit, offset)

    base = "/api/projects/<project>"
    route(web, f"{base}/feature_flags", ["GET"], list_flags)
    route(web, f"{base}/feature_flags", ["POST"], create_flag)
    route(web, f"{base}/feature_flags/activity", ["GET"], flag_activity)
    route(web, f"{base}/feature_flags/<flag_id:int>", ["GET"], get_flag)
    route(web, f"{base}/feature_flags/<flag_id:int>", ["PATCH", "PUT"], update_flag)
    route(web, f"{base}/feature_flags/<flag_id:int>/activity", ["GET"], flag_activity)
    route(web, f"{base}/cohorts", ["GET"], list_cohorts)
    route(web, f"{base}/cohorts", ["POST"], create_cohort)
    route(web, f"{base}/cohorts/<cohort_id:int>", ["GET"], get_cohort)
    route(web, f"{base}/cohorts/<cohort_id:int>", ["PATCH", "PUT"], update_cohort)
    route(web, f"{base}/cohorts/<cohort_id:int>/activity", ["GET"], cohort_activity)
