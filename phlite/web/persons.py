"""The persons and groups API (Bearer personal API key): list, get and delete persons,
group types, list and find groups. Person deletes go through Ingestion, so they are
ordered with ingestion and the writer's one person cache forgets the person."""

import uuid as uuidlib

import bottle

from phlite import errors
from phlite.codec import parse_int64, truthy
from phlite.web.auth import personal_key, project_for_key
from phlite.web.common import int_param, iso_ms, query, route, url_with


def person_json(p):
    # `id` is the uuid string, as PostHog's persons API returns it in newer versions (older
    # ones gave the integer row id); phlite's integer ids are internal.
    return {
        "id": p["uuid"],
        "uuid": p["uuid"],
        "distinct_ids": p["distinct_ids"],
        "properties": p["properties"],
        "created_at": iso_ms(p["created_at"]),
        "is_identified": p["is_identified"],
    }


def group_json(g):
    return {
        "group_type_index": g["group_type_index"],
        "group_key": g["group_key"],
        "group_properties": g["group_properties"],
        "created_at": iso_ms(g["created_at"]),
    }


def _uuid(raw):
    """A person uuid from the path in canonical form, or None if it cannot be one."""
    try:
        return str(uuidlib.UUID(raw))
    except ValueError:
        return None


def _cursor(q):
    raw = q.get("cursor")
    if not raw:
        return None
    try:
        return parse_int64(raw)
    except ValueError:
        raise errors.BadRequest("'cursor' is not a cursor this server gave out.", attr="cursor")


def _group_type_index(q):
    if q.get("group_type_index") in (None, ""):
        raise errors.BadRequest("'group_type_index' is required.", attr="group_type_index")
    return int_param(q, "group_type_index", None, 0, 4)


def register(web, app):
    store, ingestion = app.store, app.ingestion

    def project_id(project):
        return project_for_key(store, personal_key(store), project)

    def list_persons(project):
        pid = project_id(project)
        q = query()
        persons, cursor = store.list_persons(
            pid,
            distinct_id=q.get("distinct_id") or None,
            search=q.get("search") or None,
            cursor=_cursor(q),
            limit=int_param(q, "limit", 100, 1, 1000),
        )
        return {
            "results": [person_json(p) for p in persons],
            "next": url_with({"cursor": str(cursor)}) if cursor is not None else None,
        }

    def get_person(project, person_uuid):
        pid = project_id(project)
        canonical = _uuid(person_uuid)
        person = canonical and store.get_person_by_uuid(pid, canonical)
        if not person:
            raise errors.NotFound("Person not found.")
        return person_json(person)

    def delete_person(project, person_uuid):
        pid = project_id(project)
        canonical = _uuid(person_uuid)
        if canonical is None:
            raise errors.NotFound("Person not found.")
        if not ingestion.delete_person(pid, canonical, truthy(query().get("delete_events"))):
            raise errors.NotFound("Person not found.")
        return bottle.HTTPResponse(b"", 204)

    def person_route(project, person_uuid):
        if bottle.request.method == "DELETE":
            return delete_person(project, person_uuid)
        return get_person(project, person_uuid)

    def group_types(project):
        pid = project_id(project)
        return [{"group_type": name, "group_type_index": i} for i, name in store.group_type_mapping(pid).items()]

    def list_groups(project):
        pid = project_id(project)
        q = query()
        groups, cursor = store.list_groups(
            pid, _group_type_index(q),
            search=q.get("search") or None,
            cursor=_cursor(q),
            limit=int_param(q, "limit", 100, 1, 1000),
        )
        return {
            "results": [group_json(g) for g in groups],
            "next": url_with({"cursor": str(cursor)}) if cursor is not None else None,
        }

    def find_group(project):
        pid = project_id(project)
        q = query()
        index = _group_type_index(q)
        if q.get("group_key") is None:
            raise errors.BadRequest("'group_key' is required.", attr="group_key")
        group = store.get_group(pid, index, q["group_key"])
        if group is None:
            raise errors.NotFound("Group not found.")
        return group_json(group)

    route(web, "/api/projects/<project>/persons", ["GET"], list_persons)
    route(web, "/api/projects/<project>/persons/<person_uuid>", ["GET", "DELETE"], person_route)
    route(web, "/api/projects/<project>/groups_types", ["GET"], group_types)
    route(web, "/api/projects/<project>/groups", ["GET"], list_groups)
    route(web, "/api/projects/<project>/groups/find", ["GET"], find_group)
