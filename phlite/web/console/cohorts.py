"""Cohorts in the console: dynamic ones with the flags' filter editor, static ones from pasted or
uploaded (CSV) distinct ids, and their members. Saves go through FlagService's create_cohort /
update_cohort, the same checks as the JSON API."""

from phlite import errors
from phlite import console as forms
from phlite.web.console.ui import redirect

MAX_UPLOAD = 5 * 1024 * 1024
MEMBERS_SHOWN = 200


def register(ui):
    app, store = ui.app, ui.app.store
    ui.add_nav("Cohorts", "cohorts", 35)

    @ui.page("/project/<pid:int>/cohorts")
    def cohort_list(ctx):
        rows, count = store.list_cohorts(ctx.project["id"], limit=500)
        counts = {r["id"]: store.static_member_count(r["id"]) for r in rows if r["is_static"]}
        return ctx.render("cohorts.html", cohorts=rows, counts=counts, count=count)

    def show(ctx, form, row=None, field_errors=None, status=200):
        pid = ctx.project["id"]
        members, total = [], None
        if row is not None:
            if row["is_static"]:
                ids = store.static_members(row["id"])
                members, total = ids[:MEMBERS_SHOWN], len(ids)
            else:
                members, total = app.flags.cohort_members(pid, row["id"], limit=MEMBERS_SHOWN)
        others = [c for c in store.list_cohorts(pid, limit=500)[0] if row is None or c["id"] != row["id"]]
        out = ctx.render("cohort_form.html", form=form, row=row, errors=field_errors or {}, operators=forms.OPERATORS,
                         cohorts=others, members=members, total=total, scanned=app.flags.COHORT_SCAN,
                         saved=bool(ctx.get("saved")))
        return out if status == 200 else ui.html(out, status)

    def uploaded(ctx):
        upload = ctx.upload("file")
        if upload is None:
            return None
        data = upload.file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise errors.BadRequest("The file is over 5 MiB.", attr="ids")
        return data.decode("utf-8", "replace")

    def save(ctx, row):
        form = forms.cohort_form_from_fields(ctx.form_dict())
        if row is not None:
            form["is_static"] = row["is_static"]
        if not form["is_static"] and forms.apply_action(form, ctx.field("action")):
            return show(ctx, form, row)
        pid = ctx.project["id"]
        try:
            body, field_errors = forms.cohort_body(form, uploaded(ctx), creating=row is None)
            if field_errors:
                return show(ctx, form, row, field_errors, 400)
            if row is None:
                saved = app.flags.create_cohort(pid, body, user_id=ctx.user["id"])
            else:
                saved = app.flags.update_cohort(pid, row["id"], body, user_id=ctx.user["id"])
        except errors.PhliteError as e:
            if e.status >= 500:
                raise
            field = forms.api_error_field(e.attr, e.detail) if e.attr not in ("distinct_ids", "ids") else "ids"
            return show(ctx, form, row, {field: e.detail}, 400)
        return redirect(ctx.project_url(f"cohorts/{saved['id']}?saved=1"))

    @ui.page("/project/<pid:int>/cohorts/new", ("GET", "POST"))
    def new_cohort(ctx):
        if ctx.form is None:
            form = forms.cohort_form()
            form["is_static"] = ctx.get("static") == "1"
            return show(ctx, form)
        return save(ctx, None)

    @ui.page("/project/<pid:int>/cohorts/<cohort_id:int>", ("GET", "POST"))
    def edit_cohort(ctx, cohort_id):
        row = store.get_cohort(ctx.project["id"], cohort_id)
        if row is None or row["deleted"]:
            return ui.error(404, "There is no such cohort in this project.", ctx.session)
        if ctx.form is not None:
            return save(ctx, row)
        return show(ctx, forms.cohort_form(row), row)
