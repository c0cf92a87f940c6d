"""The private API (Bearer personal API key): projects and the events list."""

import zoneinfo

import orjson

from phlite import errors
from phlite.codec import parse_int64
from phlite.lifecycle import clean_retention_days
from phlite.web.auth import key_project_ids, personal_key, project_for_key
from phlite.web.common import int_param, iso_ms, json_body, parse_time_param, query, route, url_with


def project_json(p):
    return {"id": p["id"], "name": p["name"], "api_token": p["api_token"], "created_at": iso_ms(p["created_at"]),
            "timezone": p["timezone"], "retention_days": p["retention_days"]}


def clean_timezone(value) -> str:
    """An IANA zone name PostHog's team timezone setting takes (e.g. "Europe/Berlin")."""
    if isinstance(value, str) and value:
        try:
            zoneinfo.ZoneInfo(value)
            return value
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    raise errors.BadRequest("'timezone' must be an IANA time zone name such as \"UTC\" or \"Europe/Berlin\".",
                            attr="timezone")


def event_json(row):
    return {
        "id": row["uuid"],
        "event": row["event"],
        "distinct_id": row["distinct_id"],
        "properties": row["properties"],
        "timestamp": iso_ms(row["timestamp"]),
        "created_at": iso_ms(row["created_at"]),
    }


def property_filters(raw):
    """`?properties=` as PostHog sends it: JSON text of a filter list or a property group."""
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.BadRequest("'properties' must be JSON: a list of property filters.", attr="properties")
    if not isinstance(value, (list, dict)):
        raise errors.BadRequest("'properties' must be a list of property filters.", attr="properties")
    return value


def parse_cursor(raw):
    if not raw:
        return None
    try:
        ts, rowid = raw.split("_")
        return parse_int64(ts), parse_int64(rowid)
    except ValueError:
        raise errors.BadRequest("'cursor' is not a cursor this server gave out.", attr="cursor")


def register(web, app):
    store = app.store

    def list_projects():
        record = personal_key(store)
        ids = key_project_ids(store, record)
        results = [project_json(p) for p in store.list_projects(ids=set(ids))]
        return {"count": len(results), "next": None, "previous": None, "results": results}

    def get_project(project):
        pid = project_for_key(store, personal_key(store), project)
        return project_json(store.get_project(pid))

    def update_project(project):
        pid = project_for_key(store, personal_key(store), project)
        body = json_body()
        timezone = clean_timezone(body["timezone"]) if "timezone" in body else None
        changes = {"retention_days": clean_retention_days(body["retention_days"])} if "retention_days" in body else {}
        # Other fields are read-only here; the flags' date operators read the new zone at once.
        return project_json(store.update_project(pid, timezone=timezone, **changes))

    def list_events(project):
        pid = project_for_key(store, personal_key(store), project)
        q = query()
        distinct_ids = None
        if q.get("person_id"):
            distinct_ids = app.ingestion.person_distinct_ids(pid, q["person_id"])
            if distinct_ids is None:
                raise errors.NotFound("Person not found.", attr="person_id")
        if q.get("distinct_id"):
            distinct_ids = [d for d in (distinct_ids or [q["distinct_id"]]) if d == q["distinct_id"]]
        rows, cursor = store.list_events(
            pid,
            event=q.get("event") or None,
            distinct_ids=distinct_ids,
            after=parse_time_param(q.get("after"), "after"),
            before=parse_time_param(q.get("before"), "before"),
            cursor=parse_cursor(q.get("cursor")),
            limit=int_param(q, "limit", 100, 1, 1000),
            properties=property_filters(q.get("properties")),
        )
        return {
            "results": [event_json(r) for r in rows],
            "next": url_with({"cursor": f"{cursor[0]}_{cursor[1]}"}) if cursor else None,
        }

    route(web, "/api/projects", ["GET"], list_projects)
    route(web, "/api/projects/<project>", ["GET"], get_project)
    route(web, "/api/projects/<project>", ["PATCH"], update_project)
    route(web, "/api/projects/<project>/events", ["GET"], list_events)
