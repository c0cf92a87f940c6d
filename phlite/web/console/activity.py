"""Activity: the newest events, live (the table polls its own fragment with htmx), filtered by
event name, distinct id and a property filter (the filter object the query API's EventsQuery takes,
run by the same QueryService); each event opens to its full properties."""

from urllib.parse import quote

from phlite import console as forms
from phlite.web.console.ui import redirect

ACTIVITY_OPS = [op for op in forms.OPERATORS["Text"] + forms.OPERATORS["Number"] if op[0] not in ("between", "not_between")]

POLL_SECONDS = 3


def register(ui):
    console = ui.console
    ui.add_nav("Activity", "activity", 10)

    def filters(ctx):
        f = {"event": ctx.get("event").strip(), "distinct_id": ctx.get("distinct_id").strip(),
             "prop_type": "person" if ctx.get("prop_type") == "person" else "event",
             "prop_key": ctx.get("prop_key").strip(), "prop_op": ctx.get("prop_op") or "exact",
             "prop_value": ctx.get("prop_value")}
        if f["prop_op"] not in {op for op, _ in ACTIVITY_OPS}:
            f["prop_op"] = "exact"
        return f

    def find_events(ctx, f):
        pid = ctx.project["id"]
        if not f["prop_key"]:
            return console.events(pid, event=f["event"], distinct_id=f["distinct_id"])
        prop = {"key": f["prop_key"], "type": f["prop_type"], "operator": f["prop_op"],
                "value": forms.value_from_text(f["prop_op"], f["prop_value"])}
        node = {"kind": "EventsQuery", "select": ["*"], "after": "all", "properties": [prop], "limit": 100,
                "orderBy": ["timestamp DESC"]}
        if f["event"]:
            node["event"] = f["event"]
        if f["distinct_id"]:
            node["where"] = [f"distinct_id = {forms.hogql_string(f['distinct_id'])}"]
        return [row[0] for row in ui.app.queries.run(pid, {"query": node})["results"]]

    def page(ctx, template):
        f = filters(ctx)
        query = "&".join(f"{k}={quote(v)}" for k, v in f.items() if v)
        return ctx.render(template, rows=find_events(ctx, f), filters=f, poll=POLL_SECONDS, operators=ACTIVITY_OPS,
                          query=query)

    @ui.page("/project/<pid:int>/activity")
    def activity(ctx):
        return page(ctx, "activity.html")

    @ui.page("/project/<pid:int>/activity/rows")
    def rows(ctx):
        return page(ctx, "activity_rows.html")

    @ui.page("/project/<pid:int>/events/<uuid>")
    def event(ctx, uuid):
        ev = console.event(ctx.project["id"], uuid)
        if ev is None:
            return ui.error(404, "There is no such event in this project.", ctx.session)
        return ctx.render("event.html", ev=ev)

    @ui.page("/project/<pid:int>/events")
    def events(ctx):
        return redirect(ctx.project_url("activity"))
