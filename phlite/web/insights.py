"""Saved insights and dashboards (Bearer personal key), PostHog-shaped: /api/projects/<id>/insights/ and
/dashboards/ (and the /api/environments/<id>/ alias). Deleting is `PATCH {"deleted": true}`; DELETE answers
405, as PostHog's. Everything else is phlite.insights' InsightService (docs/insights.md "Saved insights and
dashboards").
"""

from phlite import errors
from phlite.web.auth import personal_key, project_for_key
from phlite.web.common import bool_query, created, json_body, page, page_limits, query, route

BASES = ("/api/projects/<project>", "/api/environments/<project>")


def register(web, app):
    store, insights = app.store, app.insights

    def auth(project):
        record = personal_key(store)
        return {"key_id": record["id"]}, project_for_key(store, record, project)

    def list_insights(project):
        _, pid = auth(project)
        q = query()
        limit, offset = page_limits()
        short_id = q.get("short_id") or None
        if short_id is not None and len(short_id) > 64:
            raise errors.BadRequest("'short_id' is too long.", attr="short_id")
        rows, count = insights.list_insights(
            pid, limit=limit, offset=offset, saved=bool_query(q, "saved"), favorited=bool_query(q, "favorited"),
            short_id=short_id, search=(q.get("search") or None), basic=bool_query(q, "basic") is True,
            refresh=q.get("refresh"))
        return page(rows, count, limit, offset)

    def create_insight(project):
        actor, pid = auth(project)
        return created(insights.create_insight(pid, json_body(), actor))

    def get_insight(project, insight_id):
        _, pid = auth(project)
        q = query()
        from_dashboard = q.get("from_dashboard") or None
        if from_dashboard is not None:
            if not from_dashboard.isdigit() or len(from_dashboard) > 18:
                raise errors.BadRequest("'from_dashboard' must be a dashboard id.", attr="from_dashboard")
            from_dashboard = int(from_dashboard)
        return insights.get_insight(pid, insight_id, refresh=q.get("refresh"), from_dashboard=from_dashboard)

    def update_insight(project, insight_id):
        actor, pid = auth(project)
        return insights.update_insight(pid, insight_id, json_body(), actor)

    def insight_activity(project, insight_id=None):
        _, pid = auth(project)
        limit, offset = page_limits()
        rows, count = insights.insight_activity(pid, insight_id, limit=limit, offset=offset)
        return page(rows, count, limit, offset)

    def dashboard_activity(project, dashboard_id=None):
        _, pid = auth(project)
        limit, offset = page_limits()
        rows, count = insights.dashboard_activity(pid, dashboard_id, limit=limit, offset=offset)
        return page(rows, count, limit, offset)

    def list_dashboards(project):
        _, pid = auth(project)
        q = query()
        limit, offset = page_limits()
        rows, count = insights.list_dashboards(pid, limit=limit, offset=offset, pinned=bool_query(q, "pinned"),
                                               search=(q.get("search") or None))
        return page(rows, count, limit, offset)

    def create_dashboard(project):
        actor, pid = auth(project)
        return created(insights.create_dashboard(pid, json_body(), actor))

    def get_dashboard(project, dashboard_id):
        _, pid = auth(project)
        return insights.get_dashboard(pid, dashboard_id, refresh=query().get("refresh"))

    def update_dashboard(project, dashboard_id):
        actor, pid = auth(project)
        return insights.update_dashboard(pid, dashboard_id, json_body(), actor)

    for base in BASES:
        route(web, f"{base}/insights", ["GET"], list_insights)
        route(web, f"{base}/insights", ["POST"], create_insight)
        route(web, f"{base}/insights/activity", ["GET"], insight_activity)
        route(web, f"{base}/insights/<insight_id:int>", ["GET"], get_insight)
        route(web, f"{base}/insights/<insight_id:int>", ["PATCH", "PUT"], update_insight)
        route(web, f"{base}/insights/<insight_id:int>/activity", ["GET"], insight_activity)
        route(web, f"{base}/dashboards", ["GET"], list_dashboards)
        route(web, f"{base}/dashboards", ["POST"], create_dashboard)
        route(web, f"{base}/dashboards/<dashboard_id:int>", ["GET"], get_dashboard)
        route(web, f"{base}/dashboards/<dashboard_id:int>", ["PATCH", "PUT"], update_dashboard)
        route(web, f"{base}/dashboards/activity", ["GET"], dashboard_activity)
        route(web, f"{base}/dashboards/<dashboard_id:int>/activity", ["GET"], dashboard_activity)
