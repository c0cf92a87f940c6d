"""The insight pages: Trends, Funnels, Retention, Web analytics and SQL (docs/console.md "Insights").

Each page is a GET form whose fields become a query node (phlite/console/insights.py); the node runs
through the same QueryService as `POST /api/projects/<id>/query/`, and phlite/console/views.py turns
the answer into what the template draws. A refused query is shown beside the form, not as an error page.
"""

import time
from urllib.parse import urlencode

import bottle

from phlite import errors
from phlite.console import insight_forms as forms
from phlite.console import insight_views as views

MAX_SQL = 20_000  # characters of HogQL text a page takes


def field(name):
    """A query parameter as submitted ('' when empty, None when absent: the forms count rows by it)."""
    return bottle.request.query.getunicode(name)


def register(ui):
    app = ui.app
    ui.add_nav("Web analytics", "web", 40)
    ui.add_nav("SQL", "sql", 55)

    def run(ctx, node):
        """(response, error text, elapsed ms): a refused query is shown in the page."""
        started = time.perf_counter()
        try:
            response = app.queries.run(ctx.project["id"], {"query": node})
        except errors.PhliteError as e:
            return None, e.detail, None
        return response, None, round(1000 * (time.perf_counter() - started))

    def common(ctx, kind, params=None):
        return {"kind": kind, "date_presets": forms.DATE_PRESETS, "filter_ops": forms.FILTER_OPS,
                "save": save_box(ctx, kind, params)}

    def save_box(ctx, kind, params):
        """What the "Save" form of an insight page needs: the page's parameters (as the form reads them,
        after any add or remove), the saved insight it shows (?insight=<id>), the dashboards to put it on."""
        if kind not in forms.KINDS or params is None:
            return None
        saved = None
        insight_id = field("insight")
        if insight_id and insight_id.isdigit():
            try:
                saved = app.insights.get_insight(ctx.project["id"], int(insight_id))
            except errors.NotFound:
                saved = None
        dashboards, _ = app.insights.list_dashboards(ctx.project["id"], limit=200)
        return {"page": kind, "params": urlencode(params), "insight": saved, "dashboards": dashboards}

    @ui.page("/project/<pid:int>/insights/trends")
    def trends(ctx):
        form = forms.trends_form(field)
        problems = forms.trends_problems(form)
        view = error = ms = None
        node = forms.trends_node(form)
        if not problems:
            response, error, ms = run(ctx, node)
            view = response and views.trends(response, form)
        return ctx.render("insight_trends.html", form=form, problems=problems, view=view, error=error, ms=ms,
                          node=node, maths=forms.MATHS, property_maths=forms.PROPERTY_MATHS,
                          intervals=forms.INTERVALS, displays=forms.DISPLAYS,
                          **common(ctx, "trends", forms.to_params(form)))

    @ui.page("/project/<pid:int>/insights/funnels")
    def funnels(ctx):
        form = forms.funnels_form(field)
        problems = forms.funnels_problems(form)
        view = error = ms = None
        node = forms.funnels_node(form)
        if not problems:
            response, error, ms = run(ctx, node)
            view = response and views.funnels(response)
        return ctx.render("insight_funnels.html", form=form, problems=problems, view=view, error=error, ms=ms,
                          node=node, orders=forms.ORDERS, window_units=forms.WINDOW_UNITS,
                          **common(ctx, "funnels", forms.to_params(form)))

    @ui.page("/project/<pid:int>/insights/retention")
    def retention(ctx):
        form = forms.retention_form(field)
        node = forms.retention_node(form)
        response, error, ms = run(ctx, node)
        view = response and views.retention(response)
        return ctx.render("insight_retention.html", form=form, problems={}, view=view, error=error, ms=ms,
                          node=node, types=forms.RETENTION_TYPES, periods=forms.PERIODS,
                          **common(ctx, "retention", forms.to_params(form)))

    def web_table(ctx, form, by):
        title, first = views.WEB_TABLE_NAMES[by]
        answer, problem, _ = run(ctx, forms.web_table_node(form, by, bounce=by in views.WEB_BOUNCE))
        return {"by": by, "title": title, "table": answer and views.web_table(answer, first), "problem": problem}

    @ui.page("/project/<pid:int>/web")
    def web(ctx):
        """The tiles and the chart at once; each table is its own request (htmx loads them as the page
        opens, so the slow breakdowns do not hold up the numbers), or inline with tables=1 (no script)."""
        started = time.perf_counter()
        form = forms.web_form(field)
        overview, error, _ = run(ctx, forms.web_overview_node(form))
        chart, tables, inline = None, [], field("tables") == "1"
        if overview is not None:
            visitors, error, _ = run(ctx, forms.web_visitors_node(form))
            chart = visitors and views.web_chart(visitors)
            for by, title, _first in views.WEB_TABLES:
                tables.append(web_table(ctx, form, by) if inline else {"by": by, "title": title, "lazy": True})
        params = urlencode([(k, v) for k, v in forms.to_params(form) if k != "compare"]
                           + [("compare", "1" if form["compare"] else "0")])
        return ctx.render("insight_web.html", form=form, problems={}, error=error,
                          tiles=overview and views.web_tiles(overview), chart=chart, tables=tables, params=params,
                          ms=round(1000 * (time.perf_counter() - started)), **common(ctx, "web"))

    @ui.page("/project/<pid:int>/web/table")
    def web_table_fragment(ctx):
        by = field("by")
        if by not in views.WEB_TABLE_NAMES:
            return ui.error(404, "There is no such web analytics table.", ctx.session)
        return ctx.render("_web_table.html", t=web_table(ctx, forms.web_form(field), by))

    @ui.page("/project/<pid:int>/sql")
    def sql(ctx):
        text = (field("q") or "")[:MAX_SQL]
        view = error = ms = None
        if text.strip():
            response, error, ms = run(ctx, {"kind": "HogQLQuery", "query": text})
            view = response and views.sql(response)
        return ctx.render("insight_sql.html", text=text, view=view, error=error, ms=ms, examples=SQL_EXAMPLES,
                          **common(ctx, "sql", [("q", text)] if text.strip() else None))


SQL_EXAMPLES = [
    ("Events by name, last 7 days",
     "SELECT event, count() AS events, uniq(person_id) AS persons\nFROM events\n"
     "WHERE timestamp > now() - INTERVAL 7 DAY\nGROUP BY event\nORDER BY events DESC\nLIMIT 20"),
    ("Top pages today",
     "SELECT properties.$pathname AS path, count() AS views\nFROM events\n"
     "WHERE event = '$pageview' AND timestamp >= today()\nGROUP BY path\nORDER BY views DESC\nLIMIT 20"),
    ("Daily active users",
     "SELECT toStartOfDay(timestamp) AS day, uniq(person_id) AS users\nFROM events\n"
     "WHERE timestamp > now() - INTERVAL 30 DAY\nGROUP BY day\nORDER BY day"),
    ("Newest persons",
     "SELECT id, created_at, properties.email AS email\nFROM persons\nORDER BY created_at DESC\nLIMIT 20"),
]
