"""Settings: the project (token, name, timezone, week start), forwarding to PostHog (destination, what
waits, the last error), personal API keys (create: shown once; revoke) and console users. Members see
the project's settings; changing them, keys and users are for admins, checked on every request
whatever the URL."""

import zoneinfo

from phlite import lifecycle
from phlite.console import SignInError
from phlite.web.console.ui import redirect, request_origin

TIMEZONES = sorted(zoneinfo.available_timezones() - {"localtime"})


def register(ui):
    app, store, console = ui.app, ui.app.store, ui.console
    ui.add_nav("Settings", "settings", 90)
    ui.add_nav("API keys", "keys", 92, admin=True)
    ui.add_nav("Users", "users", 94, admin=True)

    def page(ctx, errors=None, forward_errors=None, forward_form=None):
        pid = ctx.project["id"]
        status = next(iter(app.forwarder.status(pid)), None)
        dest = next(iter(store.forward_destinations(pid)), None)
        return ctx.render("settings.html", errors=errors or {}, timezones=TIMEZONES, saved=bool(ctx.get("saved")),
                          api_host=request_origin(app.config), forwarding=status, forward_errors=forward_errors or {},
                          forward_form=forward_form or {"host": dest["host"] if dest else "",
                                                        "project_api_key": dest["project_api_key"] if dest else ""},
                          forward_saved=ctx.get("forwarding"), duration=_duration)

    @ui.page("/project/<pid:int>/forwarding", ("POST",), admin=True)
    def forwarding(ctx):
        pid = ctx.project["id"]
        if ctx.field("action") == "off":
            store.stop_forwarding(pid)
            return redirect(ctx.project_url("settings?forwarding=off#forwarding"))
        form = {"host": ctx.field("host"), "project_api_key": ctx.field("project_api_key")}
        try:
            host, key = lifecycle.check_destination(form["host"], form["project_api_key"])
        except lifecycle.ForwardSettingError as e:
            return page(ctx, forward_errors={e.field: e.message}, forward_form=form)
        store.set_forwarding(pid, host, key, backfill_after=0 if ctx.field("backfill") == "all" else None)
        return redirect(ctx.project_url("settings?forwarding=saved#forwarding"))

    @ui.page("/project/<pid:int>/settings", ("GET", "POST"))
    def settings(ctx):
        errors = {}
        if ctx.form is not None:
            if not ctx.session.is_admin:
                return ui.error(403, "Only admins can change project settings.", ctx.session)
            name, tz, week = ctx.field("name").strip(), ctx.field("timezone"), ctx.field("week_start_day")
            if not name or len(name) > 200:
                errors["name"] = "A name of 1 to 200 characters."
            if tz not in TIMEZONES and tz != "UTC":
                errors["timezone"] = "Choose a timezone from the list."
            if week not in ("0", "1"):
                errors["week_start_day"] = "Sunday or Monday."
            if not errors:
                store.update_project(ctx.project["id"], name=name, timezone=tz, week_start_day=int(week))
                return redirect(ctx.project_url("settings?saved=1"))
        return page(ctx, errors)

    @ui.page("/project/<pid:int>/keys", ("GET", "POST"), admin=True)
    def keys(ctx):
        created = None
        if ctx.form is not None:
            if ctx.field("revoke").isdigit():
                store.revoke_personal_key(int(ctx.field("revoke")))
                return redirect(ctx.project_url("keys"))
            label = ctx.field("label").strip()[:200]
            scope = None if ctx.field("scope") == "all" else [ctx.project["id"]]
            created = store.create_personal_key(label, scope)
        names = {p["id"]: p["name"] for p in store.list_projects()}
        return ctx.render("keys.html", keys=store.list_personal_keys(), created=created, names=names)

    @ui.page("/project/<pid:int>/users", ("GET", "POST"), admin=True)
    def users(ctx):
        errors, link = {}, None
        if ctx.form is not None:
            action = ctx.field("action")
            target = ctx.field("user_id")
            target = int(target) if target.isdigit() else None
            if action == "create":
                try:
                    user, token = console.create_user(ctx.field("email"), ctx.field("role") or "member")
                    link = f"{request_origin(app.config)}/console/link/{token}"
                except SignInError as e:
                    errors[e.field or "email"] = e.message
            elif target == ctx.user["id"]:
                errors["form"] = "You cannot change or delete your own account here (ask another admin)."
            elif action == "delete" and target is not None:
                console.delete_user(target)
                return redirect(ctx.project_url("users"))
            elif action in ("make_admin", "make_member") and target is not None:
                console.set_role(target, "admin" if action == "make_admin" else "member")
                return redirect(ctx.project_url("users"))
            elif action == "reset" and target is not None:
                user = next((u for u in console.list_users() if u["id"] == target), None)
                token = user and console.reset_link(user["email"])
                link = token and f"{request_origin(app.config)}/console/link/{token}"
        return ctx.render("users.html", users=console.list_users(), errors=errors, link=link)


def _duration(seconds):
    """A wait as people say it: 45 s, 12 min, 3.5 h, 2.0 days."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
