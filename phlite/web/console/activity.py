"""Activity: the newest events, live (the table polls its own fragment with htmx), filtered by
event name and distinct id; each event opens to its full properties."""

from phlite.web.console.ui import redirect

POLL_SECONDS = 3


def register(ui):
    console = ui.console
    ui.add_nav("Activity", "activity", 10)

    def filters(ctx):
        return {"event": ctx.get("event").strip(), "distinct_id": ctx.get("distinct_id").strip()}

    @ui.page("/project/<pid:int>/activity")
    def activity(ctx):
        f = filters(ctx)
        rows = console.events(ctx.project["id"], **f)
        return ctx.render("activity.html", rows=rows, filters=f, poll=POLL_SECONDS)

    @ui.page("/project/<pid:int>/activity/rows")
    def rows(ctx):
        f = filters(ctx)
        return ctx.render("activity_rows.html", rows=console.events(ctx.project["id"], **f), filters=f,
                          poll=POLL_SECONDS)

    @ui.page("/project/<pid:int>/events/<uuid>")
    def event(ctx, uuid):
        ev = console.event(ctx.project["id"], uuid)
        if ev is None:
            return ui.error(404, "There is no such event in this project.", ctx.session)
        return ctx.render("event.html", ev=ev)

    @ui.page("/project/<pid:int>/events")
    def events(ctx):
        return redirect(ctx.project_url("activity"))
