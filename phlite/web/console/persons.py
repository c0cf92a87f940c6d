"""Persons (search, a person's page: properties, distinct ids, first/last seen, timeline, cohorts,
the value and reason of every flag for it; delete) and Groups (by type, a group's properties and
recent events). Reads go through the same store and FlagService faces as the JSON API; deletes go
through Ingestion, ordered with the writer, as the API's DELETE does."""

import uuid as uuidlib

from phlite.flags import FlagRequest
from phlite.web.console.ui import redirect

TIMELINE = 50
MAX_IDS_QUERIED = 500  # a person merged from thousands of ids: its timeline reads the first 500


def canonical_uuid(raw):
    try:
        return str(uuidlib.UUID(raw))
    except ValueError:
        return None


def flags_for(app, project_id, distinct_id):
    """[(key, FlagResult)] of every flag for this distinct id, as /flags would answer it (server runtime)."""
    evaluation = app.flags.evaluate(project_id, FlagRequest(token=None, distinct_id=distinct_id, groups={},
                                                            person_properties={}, group_properties={}))
    return sorted(evaluation.results.items()), evaluation.errors


def register(ui):
    app, store = ui.app, ui.app.store
    ui.add_nav("Persons", "persons", 20)
    ui.add_nav("Groups", "groups", 25)

    @ui.page("/project/<pid:int>/persons")
    def persons(ctx):
        search = ctx.get("search").strip()
        cursor = ctx.get("cursor")
        rows, nxt = store.list_persons(ctx.project["id"], search=search or None,
                                       cursor=int(cursor) if cursor.isdigit() else None, limit=50)
        return ctx.render("persons.html", persons=rows, search=search, next_cursor=nxt)

    def find(ctx, person_uuid):
        canonical = canonical_uuid(person_uuid)
        person = canonical and store.get_person_by_uuid(ctx.project["id"], canonical)
        if not person:
            raise ui.error(404, "There is no such person in this project.", ctx.session)
        return person

    @ui.page("/project/<pid:int>/persons/<person_uuid>")
    def person(ctx, person_uuid):
        p = find(ctx, person_uuid)
        pid = ctx.project["id"]
        ids = p["distinct_ids"][:MAX_IDS_QUERIED]
        events = ui.console.events(pid, distinct_ids=ids, limit=TIMELINE)
        primary = p["distinct_ids"][0] if p["distinct_ids"] else ""
        flags, flag_errors = flags_for(app, pid, primary) if primary else ([], False)
        cohorts = app.flags.cohorts_of(pid, primary) if primary else []
        return ctx.render("person.html", person=p, events=events, last_seen=events[0]["timestamp"] if events else None,
                          flags=flags, flag_errors=flag_errors, cohorts=cohorts, primary=primary)

    @ui.page("/project/<pid:int>/persons/<person_uuid>/delete", ("GET", "POST"))
    def delete(ctx, person_uuid):
        p = find(ctx, person_uuid)
        if ctx.form is None:
            return ctx.render("person_delete.html", person=p, error=None)
        if ctx.field("confirm") != "delete":
            return ctx.render("person_delete.html", person=p, error="Type delete in the box to confirm.")
        app.ingestion.delete_person(ctx.project["id"], p["uuid"], bool(ctx.field("delete_events")))
        return redirect(ctx.project_url("persons"))

    @ui.page("/project/<pid:int>/groups")
    def groups(ctx):
        pid = ctx.project["id"]
        types = store.group_type_mapping(pid)
        index = ctx.get("type")
        index = int(index) if index.isdigit() and int(index) in types else (min(types) if types else None)
        search = ctx.get("search").strip()
        rows = []
        if index is not None:
            rows, _ = store.list_groups(pid, index, search=search or None, limit=100)
        return ctx.render("groups.html", types=types, index=index, groups=rows, search=search)

    @ui.page("/project/<pid:int>/group")
    def group(ctx):
        pid = ctx.project["id"]
        types = store.group_type_mapping(pid)
        index, key = ctx.get("type"), ctx.get("key")
        g = index.isdigit() and int(index) in types and store.get_group(pid, int(index), key)
        if not g:
            return ui.error(404, "There is no such group in this project.", ctx.session)
        events = store.recent_group_events(pid, types[int(index)], key, limit=TIMELINE)
        return ctx.render("group.html", group=g, type_name=types[int(index)], events=events)
