"""A project's home (counts, the 30-day chart, "connect your app") and the projects page
(switch, create, rename: admins)."""

from phlite.web.console.ui import redirect, request_origin

MAX_NAME = 200


def register(ui):
    app, console = ui.app, ui.console
    ui.add_nav("Home", "", 0)

    @ui.page("/project/<pid:int>/")
    def home(ctx):
        return ctx.render("home.html", home=console.home(ctx.project, request_origin(app.config)))

    @ui.page("/project/<pid:int>")
    def home_no_slash(ctx):
        return redirect(ctx.project_url())

    @ui.page("/console/projects", ("GET", "POST"))
    def projects(ctx):
        errors = {}
        if ctx.form is not None:
            if not ctx.session.is_admin:
                return ui.error(403, "Only admins can create or rename projects.", ctx.session)
            name = ctx.field("name").strip()
            if not name or len(name) > MAX_NAME:
                errors["name"] = f"A name of 1 to {MAX_NAME} characters."
            elif ctx.field("project_id"):
                try:
                    pid = int(ctx.field("project_id"))
                except ValueError:
                    pid = None
                if pid is None or app.store.update_project(pid, name=name) is None:
                    errors["name"] = "There is no such project."
                else:
                    return redirect("/console/projects")
            else:
                p = app.store.create_project(name)
                return redirect(f"/project/{p['id']}/")
        return ctx.render("projects.html", errors=errors)
