"""Saved insights and dashboards in the console (docs/console.md "Saved insights and dashboards").

Everything goes through the App's InsightService, the one the `/api/projects/<id>/insights/` and
`/dashboards/` endpoints use, so an insight saved here is the same object a script reads there. A saved
insight opens on its kind's page with its query as the page's parameters; a dashboard draws each tile's
kept result with the same views as the pages.
"""

from urllib.parse import parse_qsl, urlencode

from phlite import errors
from phlite.console import insight_forms as forms
from phlite.console import insight_views as views
from phlite.insights import query_source
from phlite.web.console.ui import redirect

MAX_NAME = 400  # PostHog's insight and dashboard names are at most 400 characters
MAX_PARAMS = 40_000  # the saved page's query string (a SQL text of 20,000 characters, encoded)


def register(ui):
    app = ui.app
    ui.add_nav("Insights", "insights", 45)
    ui.add_nav("Dashboards", "dashboards", 50)

    def actor(ctx):
        return {"user_id": ctx.user["id"]}

    def page_url(ctx, insight):
        """The page that shows a saved insight, or None when no console page draws its kind."""
        try:
            source = query_source(insight.get("query"), app.queries.kinds)
        except errors.PhliteError:
            return None
        if source.get("kind") == "WebOverviewQuery":  # the web page shows it (it is not saved from there)
            dr = source.get("dateRange") or {}
            return ctx.project_url("web") + "?" + urlencode({k: dr[k] for k in ("date_from", "date_to") if dr.get(k)})
        found = forms.page_params(source)
        if found is None:
            return None
        page, params = found
        path = "sql" if page == "sql" else f"insights/{page}"
        return ctx.project_url(path) + "?" + urlencode([*params, ("insight", str(insight["id"]))])

    def number(text):
        """A posted id, or None (also past SQLite's 64-bit integers)."""
        return int(text) if (text or "").isdigit() and len(text) < 19 else None

    @ui.page("/project/<pid:int>/insights")
    def index(ctx):
        search = ctx.get("search").strip()[:200]
        insights, count = app.insights.list_insights(ctx.project["id"], limit=200, search=search or None)
        rows = [{"insight": i, "url": page_url(ctx, i), "kind": views.kind_label(i.get("query"))} for i in insights]
        return ctx.render("insights.html", kind="index", rows=rows, count=count, search=search)

    @ui.page("/project/<pid:int>/insights/save", ("POST",))
    def save(ctx):
        pid = ctx.project["id"]
        page = ctx.field("page")
        if page not in forms.KINDS:
            return ui.error(400, "There is no such insight page.", ctx.session)
        params = dict(parse_qsl(ctx.field("params")[:MAX_PARAMS], keep_blank_values=True))
        query = forms.saved_query(page, params.get)
        name = ctx.field("name").strip()[:MAX_NAME]
        insight_id = number(ctx.field("insight"))
        dashboard = number(ctx.field("dashboard"))
        if insight_id is not None and ctx.field("mode") != "new":
            body = {"query": query, **({"name": name} if name else {})}
            if dashboard is not None:
                current = app.insights.get_insight(pid, insight_id)
                body["dashboards"] = sorted({*current["dashboards"], dashboard})
            saved = app.insights.update_insight(pid, insight_id, body, actor(ctx))
        else:
            body = {"name": name or None, "query": query, "saved": True}
            if dashboard is not None:
                body["dashboards"] = [dashboard]
            saved = app.insights.create_insight(pid, body, actor(ctx))
        return redirect(page_url(ctx, saved) or ctx.project_url("insights"))

    @ui.page("/project/<pid:int>/insights/<insight_id:int>")
    def open_insight(ctx, insight_id):
        insight = app.insights.get_insight(ctx.project["id"], insight_id)
        url = page_url(ctx, insight)
        if url is None:
            return ui.error(404, "No console page draws this insight's query kind; the API has it.", ctx.session)
        return redirect(url)

    @ui.page("/project/<pid:int>/insights/<insight_id:int>/delete", ("POST",))
    def delete_insight(ctx, insight_id):
        app.insights.update_insight(ctx.project["id"], insight_id, {"deleted": True}, actor(ctx))
        return redirect(ctx.project_url("insights"))

    @ui.page("/project/<pid:int>/dashboards", ("GET", "POST"))
    def dashboards(ctx):
        pid = ctx.project["id"]
        problem = None
        if ctx.form is not None:
            name = ctx.field("name").strip()
            if not name or len(name) > MAX_NAME:
                problem = f"A name of 1 to {MAX_NAME} characters."
            else:
                made = app.insights.create_dashboard(pid, {"name": name, "description": ctx.field("description")},
                                                     actor(ctx))
                return redirect(ctx.project_url(f"dashboards/{made['id']}"))
        rows, count = app.insights.list_dashboards(pid, limit=200)
        return ctx.render("dashboards.html", rows=rows, count=count, problem=problem)

    @ui.page("/project/<pid:int>/dashboards/<dashboard_id:int>", ("GET", "POST"))
    def dashboard(ctx, dashboard_id):
        pid = ctx.project["id"]
        if ctx.form is not None:
            action = ctx.field("action")
            if action == "add" and number(ctx.field("insight")) is not None:
                iid = number(ctx.field("insight"))
                current = app.insights.get_insight(pid, iid)
                app.insights.update_insight(pid, iid, {"dashboards": sorted({*current["dashboards"], dashboard_id})},
                                            actor(ctx))
            elif action.startswith("remove:") and number(action[7:]) is not None:
                app.insights.update_dashboard(pid, dashboard_id, {"tiles": [{"id": number(action[7:]),
                                                                             "deleted": True}]}, actor(ctx))
            elif action == "rename" and 0 < len(ctx.field("name").strip()) <= MAX_NAME:
                app.insights.update_dashboard(pid, dashboard_id, {"name": ctx.field("name").strip()}, actor(ctx))
            elif action == "dates":  # one date range for every tile (PostHog's dashboard filters), or each its own
                date_from = ctx.field("date_from").strip()[:40]
                filters = {**(app.insights.get_dashboard(pid, dashboard_id, refresh="force_cache")["filters"] or {})}
                filters.pop("date_to", None)
                if date_from:
                    filters["date_from"] = date_from
                else:
                    filters.pop("date_from", None)
                app.insights.update_dashboard(pid, dashboard_id, {"filters": filters}, actor(ctx))
            elif action == "delete":
                app.insights.update_dashboard(pid, dashboard_id, {"deleted": True}, actor(ctx))
                return redirect(ctx.project_url("dashboards"))
            return redirect(ctx.project_url(f"dashboards/{dashboard_id}"))
        refresh = "force_blocking" if ctx.get("refresh") else "blocking"
        board = app.insights.get_dashboard(pid, dashboard_id, refresh=refresh)
        tiles = []
        for tile in board["tiles"]:
            insight = tile.get("insight")
            if insight is None:
                tiles.append({"tile": tile, "text": (tile.get("text") or {}).get("body") or ""})
                continue
            tiles.append({"tile": tile, "insight": insight, "url": page_url(ctx, insight),
                          "view": views.tile(insight, forms.trends_form_from_node)})
        on_board = {t["insight"]["id"] for t in tiles if t.get("insight")}
        others, _ = app.insights.list_insights(pid, limit=200, basic=True)
        return ctx.render("dashboard.html", board=board, tiles=tiles, date_presets=forms.DATE_PRESETS,
                          date_from=(board.get("filters") or {}).get("date_from") or "",
                          addable=[i for i in others if i["id"] not in on_board])
