"""Feature flags in the console: the list, the create/edit form (never raw JSON), "test against a
distinct id", and the change history. A saved form becomes the same body the JSON API takes and goes
through FlagService's create_flag / update_flag, which validate and store it as the API does."""

from phlite import errors, flags
from phlite import console as forms
from phlite.web.console.persons import flags_for
from phlite.web.console.ui import redirect


def summary(row):
    """"2 conditions · 50% · 3 variants" for the list."""
    f = row["filters"] or {}
    groups = f.get("groups") or []
    parts = [f"{len(groups)} condition{'s' if len(groups) != 1 else ''}"]
    rollouts = sorted({g.get("rollout_percentage", 100) if g.get("rollout_percentage") is not None else 100
                       for g in groups})
    if rollouts:
        parts.append(" / ".join(f"{r:g}%" for r in rollouts))
    variants = (f.get("multivariate") or {}).get("variants") or []
    if variants:
        parts.append(f"{len(variants)} variants")
    if f.get("aggregation_group_type_index") is not None:
        parts.append("by group")
    return " · ".join(parts)


def register(ui):
    app, store = ui.app, ui.app.store
    ui.add_nav("Feature flags", "feature_flags", 30)

    @ui.page("/project/<pid:int>/feature_flags")
    def flag_list(ctx):
        search = ctx.get("search").strip()
        rows, count = store.list_flags(ctx.project["id"], limit=500, search=search or None)
        return ctx.render("flags.html", flags=[(r, summary(r)) for r in rows], count=count, search=search)

    def show_form(ctx, form, row=None, field_errors=None, status=200, test=None):
        pid = ctx.project["id"]
        history = []
        if row is not None:
            entries, _ = store.list_activity(pid, "FeatureFlag", row["id"], limit=50)
            emails = {u["id"]: u["email"] for u in ui.console.list_users()}
            history = []
            for e in entries:
                entry = flags.activity_json(e, flags.flag_json)
                history.append((entry, emails.get(e.get("user_id")), forms.leaf_changes(entry["detail"]["changes"])))
        out = ctx.render("flag_form.html", form=form, row=row, errors=field_errors or {}, history=history,
                         operators=forms.OPERATORS, cohorts=store.list_cohorts(pid, limit=500)[0],
                         group_types=store.group_type_mapping(pid), test=test, saved=bool(ctx.get("saved")))
        return out if status == 200 else ui.html(out, status)

    def save(ctx, row):
        form = forms.flag_form_from_fields(ctx.form_dict())
        if forms.apply_action(form, ctx.field("action")):
            return show_form(ctx, form, row)
        body, field_errors = forms.flag_body(form)
        if field_errors:
            return show_form(ctx, form, row, field_errors, 400)
        pid = ctx.project["id"]
        try:
            if row is None:
                saved, _ = app.flags.create_flag(pid, body, user_id=ctx.user["id"])
            else:
                body["version"] = int(ctx.field("version") or row["version"])
                saved, _ = app.flags.update_flag(pid, row["id"], body, user_id=ctx.user["id"])
        except errors.PhliteError as e:
            if e.status >= 500:
                raise
            field = forms.api_error_field(e.attr, e.detail)
            return show_form(ctx, form, row, {field: e.detail}, 409 if e.status == 409 else 400)
        return redirect(ctx.project_url(f"feature_flags/{saved['id']}?saved=1"))

    @ui.page("/project/<pid:int>/feature_flags/new", ("GET", "POST"))
    def new_flag(ctx):
        if ctx.form is None:
            return show_form(ctx, forms.flag_form())
        return save(ctx, None)

    @ui.page("/project/<pid:int>/feature_flags/<flag_id:int>", ("GET", "POST"))
    def edit_flag(ctx, flag_id):
        row = store.get_flag(ctx.project["id"], flag_id)
        if row is None or row["deleted"]:
            return ui.error(404, "There is no such feature flag in this project.", ctx.session)
        if ctx.form is not None:
            return save(ctx, row)
        test = None
        distinct_id = ctx.get("test").strip()
        if distinct_id:
            results, failed = flags_for(app, ctx.project["id"], distinct_id)
            test = {"distinct_id": distinct_id, "result": dict(results).get(row["key"]), "errors": failed}
        return show_form(ctx, forms.flag_form(row), row, test=test)
