"""Data (admins): how long the project keeps its events, the database's space, deleting events by filter
after a preview of how many, and deleting the project (docs/lifecycle.md "Retention", "Deleting events",
"Deleting a project"). The work runs in the background through the same Deleter as the API."""

from phlite import errors
from phlite.lifecycle import clean_filter, clean_retention_days
from phlite.web.console.ui import redirect

FIELDS = ("event", "after", "before", "prop_key", "prop_operator", "prop_value")
OPERATORS = ("exact", "is_not", "icontains", "not_icontains", "gt", "lt", "is_set", "is_not_set")


def _filter_fields(ctx):
    """The delete form's fields -> (raw fields to show again, the API-shaped filter)."""
    raw = {k: ctx.field(k).strip() for k in FIELDS}
    body = {"event": raw["event"] or None, "after": raw["after"] or None, "before": raw["before"] or None}
    if raw["prop_key"]:
        op = raw["prop_operator"] if raw["prop_operator"] in OPERATORS else "exact"
        prop = {"key": raw["prop_key"], "operator": op, "type": "event"}
        if op not in ("is_set", "is_not_set"):
            prop["value"] = raw["prop_value"]
        body["properties"] = [prop]
    return raw, body


def register(ui):
    app, store, deleter = ui.app, ui.app.store, ui.app.deleter
    ui.add_nav("Data", "data", 88, admin=True)

    def page(ctx, **values):
        space = store.space()
        for name, default in (("form", dict.fromkeys(FIELDS, "")), ("errors", {}), ("preview", None), ("saved", False), ("queued", "")):
            values.setdefault(name, default)
        return ctx.render("data.html", space=space, size=space["pages"] * space["page_size"],
                          jobs=store.list_deletion_jobs(ctx.project["id"]), operators=OPERATORS,
                          last_pass=deleter.last_pass, interval=app.config.retention_interval, **values)

    @ui.page("/project/<pid:int>/data", ("GET", "POST"), admin=True)
    def data(ctx):
        pid = ctx.project["id"]
        if ctx.form is None:
            return page(ctx, saved=bool(ctx.get("saved")), queued=ctx.get("queued"))
        action = ctx.field("action")
        if action == "retention":
            try:
                days = clean_retention_days(ctx.field("retention_days").strip())
            except errors.BadRequest as e:
                return page(ctx, errors={"retention_days": e.detail})
            store.update_project(pid, retention_days=days)
            return redirect(ctx.project_url("data?saved=1"))
        raw, body = _filter_fields(ctx)
        try:
            spec = clean_filter(body)
            if action == "preview":
                return page(ctx, form=raw, preview=deleter.preview(pid, spec))
            if action == "delete":
                job = deleter.request_delete(pid, spec)
                return redirect(ctx.project_url(f"data?queued={job['id']}"))
        except errors.BadRequest as e:
            return page(ctx, form=raw, errors={e.attr or "event": e.detail})
        return page(ctx)

    @ui.page("/project/<pid:int>/data/delete-project", ("GET", "POST"), admin=True)
    def delete_project(ctx):
        if ctx.form is None:
            return ctx.render("project_delete.html", error=None)
        if ctx.field("confirm") != ctx.project["name"]:
            return ctx.render("project_delete.html", error="Type the project's name exactly to confirm.")
        deleter.delete_project(ctx.project["id"])
        return redirect("/console/projects")
