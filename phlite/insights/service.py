"""InsightService: saved insights and dashboards over the store, their results through the query API
(docs/insights.md "Saved insights and dashboards").

The one owner of insights and dashboards: the JSON API and the console both call it. Answers are PostHog's
shapes (phlite/insights/shapes.py); errors are phlite.errors (404 for anything outside the project).
`actor` is {"key_id": personal key id} from the API or {"user_id": console user id} from the console.
"""

import time
from collections.abc import Callable

import orjson

from phlite import errors
from phlite.insights import shapes
from phlite.query import with_filters

# `refresh` as PostHog's insight and dashboard GETs take it (their default is force_cache).
CACHE_ONLY = {"force_cache", "false", False, None}
ALWAYS = {"force_blocking", "force_async", "true", True}
STALE_OK = {"blocking", "async", "lazy_async", "async_except_on_cache_miss"}
FRESH_MS = 60_000  # a cached result younger than this is reused by `blocking` (next_allowed_client_refresh)
MAX_CACHED_BYTES = 1_000_000  # a larger result (a big HogQL table) is not kept
DASHBOARD_BUDGET = 2.0  # times the query time limit: a dashboard refresh stops computing after that
MAX_ANSWER_BYTES = 16_000_000  # results one list or dashboard answer carries; later insights come without theirs


def refresh_mode(value):
    """A `?refresh=` value; 400 if it is none of PostHog's."""
    if isinstance(value, str):
        value = value.lower() if value.lower() in ("true", "false") else value
    if value == "":
        value = None
    if value not in CACHE_ONLY | ALWAYS | STALE_OK:
        raise errors.BadRequest("'refresh' must be one of force_cache, blocking, force_blocking, async, "
                                "force_async, lazy_async, true, false.", attr="refresh")
    return value


class InsightService:
    def __init__(self, store, queries, clock: Callable[[], float] = time.time):
        self.store = store
        self.queries = queries
        self.clock = clock

    def _now(self):
        return int(self.clock() * 1000)

    @property
    def runnable(self):
        return self.queries.kinds

    # --- results ------------------------------------------------------------------------------------

    def _effective(self, project, query, dashboard):
        """(the node that runs, its cache key) of an insight query, under a dashboard's filters if given."""
        source = with_filters(shapes.query_source(query, self.runnable),
                              dashboard["filters"] if dashboard else None)
        return source, shapes.query_key(source, project)

    def _keep(self, project, insight_id, key, response, now):
        """Keep a result (unless it is too large); its size in bytes."""
        text = orjson.dumps(response, option=orjson.OPT_NON_STR_KEYS)
        if len(text) <= MAX_CACHED_BYTES:
            self.store.put_insight_cache(project["id"], insight_id, key, text.decode(), now)
        return len(text)

    def _result(self, project, row, refresh, dashboard=None, deadline=None):
        """(response, computed_at, fresh, size in bytes) for the insight, per `refresh`; None if there is none."""
        if row["query"] is None:
            return None
        source, key = self._effective(project, row["query"], dashboard)
        hit = self.store.get_insight_cache(project["id"], row["id"], key)
        now = self._now()
        if refresh in CACHE_ONLY or (refresh in STALE_OK and hit and now - hit[1] < FRESH_MS) or (
                deadline is not None and time.monotonic() > deadline):
            return (orjson.loads(hit[0]), hit[1], False, len(hit[0])) if hit else None
        response = self.queries.run(project["id"], {"query": source, "refresh": "blocking"})
        return response, now, True, self._keep(project, row["id"], key, response, now)

    def _check_query(self, project, query):
        """Run a new or changed query once: (response, computed_at), or None if it ran past the time limit
        (it is saved anyway, without a result). A query the API refuses is a 400 naming `query`."""
        source, _ = self._effective(project, query, None)
        now = self._now()
        try:
            return self.queries.run(project["id"], {"query": source, "refresh": "blocking"}), now
        except errors.BadRequest as e:
            if e.code == "timeout_exceeded":
                return None
            raise errors.BadRequest(f"The insight's query cannot run: {e.detail}", code=e.code, attr="query")

    def _kept(self, project, row, checked):
        """The checked result of a saved row as its cached result."""
        if checked is None or row["query"] is None:
            return None
        _, key = self._effective(project, row["query"], None)
        return checked[0], checked[1], True, self._keep(project, row["id"], key, checked[0], checked[1])

    def _emails(self, *rows):
        ids = {r.get(c) for r in rows for c in ("created_by_user", "last_modified_by_user")} - {None}
        out = {}
        for user_id in ids:
            user = self.store.get_user(user_id)
            out[user_id] = user["email"] if user else None
        return out

    def _shape(self, project, row, cached=None, basic=False):
        tiles = self.store.insight_tiles(project["id"], [row["id"]])[row["id"]]
        return shapes.insight_json(row, tiles, cached, project, self._emails(row), basic=basic)

    def _project(self, project_id):
        project = self.store.get_project(project_id)
        if project is None:
            raise errors.NotFound("Project not found.")
        return project

    def _live_insight(self, project_id, insight_id):
        row = self.store.get_insight(project_id, insight_id)
        if row is None or row["deleted"]:
            raise errors.NotFound("Insight not found.")
        return row

    # --- insights -----------------------------------------------------------------------------------

    def list_insights(self, project_id, *, limit=100, offset=0, saved=None, favorited=None, short_id=None,
                      search=None, dashboard_id=None, basic=False, refresh=None):
        """(shaped insights, total count): non-deleted, last modified first, with their cached results (or,
        with `refresh`, computed until the time budget is spent; `basic`: metadata only)."""
        project = self._project(project_id)
        mode = refresh_mode(refresh)
        rows, count = self.store.list_insights(project_id, limit=limit, offset=offset, saved=saved,
                                               favorited=favorited, short_id=short_id, search=search,
                                               dashboard_id=dashboard_id)
        tiles = self.store.insight_tiles(project_id, [r["id"] for r in rows])
        emails = self._emails(*rows)
        deadline = time.monotonic() + DASHBOARD_BUDGET * self.queries.timeout_s
        out = []
        left = MAX_ANSWER_BYTES
        for row in rows:
            cached = None if basic or left <= 0 else self._safe_result(project, row, mode, None, deadline)
            left -= cached[3] if cached else 0
            out.append(shapes.insight_json(row, tiles[row["id"]], cached, project, emails, basic=basic))
        return out, count

    def _safe_result(self, project, row, mode, dashboard, deadline):
        try:
            return self._result(project, row, mode, dashboard, deadline)
        except errors.BadRequest:
            return None  # a query that stopped running (a bad stored node, a timeout): no result

    def get_insight(self, project_id, insight_id, refresh=None, from_dashboard=None):
        """The shaped insight; `refresh` as PostHog's (default: the cached result, or `result: null`);
        `from_dashboard` computes it with that dashboard's filters. 404 if absent or deleted."""
        project = self._project(project_id)
        row = self._live_insight(project_id, insight_id)
        dashboard = None
        if from_dashboard is not None:
            dashboard = self.store.get_dashboard(project_id, from_dashboard)
            if dashboard is None or dashboard["deleted"]:
                raise errors.NotFound("Dashboard not found.", attr="from_dashboard")
        mode = refresh_mode(refresh)
        if mode in CACHE_ONLY:  # reading what is kept never fails, whatever the stored node has become
            return self._shape(project, row, self._safe_result(project, row, mode, dashboard, None))
        return self._shape(project, row, self._result(project, row, mode, dashboard))

    def get_insight_by_short_id(self, project_id, short_id):
        """The shaped insight with this short id (cached result), or None."""
        rows, _ = self.store.list_insights(project_id, limit=1, short_id=short_id)
        return self.get_insight(project_id, rows[0]["id"]) if rows else None

    def create_insight(self, project_id, body, actor):
        """Create from a PostHog insight body; runs its query once (its result comes back)."""
        project = self._project(project_id)
        fields, dashboards = shapes.clean_insight(body, self.runnable)
        checked = self._check_query(project, fields["query"]) if fields.get("query") is not None else None
        row = self.store.create_insight(project_id, fields, dashboards, actor, self._now())
        return self._shape(project, row, self._kept(project, row, checked))

    def update_insight(self, project_id, insight_id, body, actor):
        """PATCH: only the fields given change; `{"deleted": true}` deletes (softly), `false` restores."""
        project = self._project(project_id)
        fields, dashboards = shapes.clean_insight(body, self.runnable)
        current = self.store.get_insight(project_id, insight_id)
        if current is None or (current["deleted"] and fields.get("deleted") is not False):
            raise errors.NotFound("Insight not found.")
        checked = None
        if fields.get("query") is not None and fields["query"] != current["query"]:
            checked = self._check_query(project, fields["query"])
        row = self.store.update_insight(project_id, insight_id, lambda _: (fields, dashboards), actor, self._now())
        if row is None:
            raise errors.NotFound("Insight not found.")
        kept = self._kept(project, row, checked) or self._safe_result(project, row, "force_cache", None, None)
        return self._shape(project, row, kept)

    def insight_activity(self, project_id, insight_id=None, *, limit=100, offset=0):
        """(activity entries, newest first, total count) of one insight or all of the project's."""
        if insight_id is not None and self.store.get_insight(project_id, insight_id) is None:
            raise errors.NotFound("Insight not found.")
        return self._activity(project_id, "Insight", insight_id, limit, offset,
                              ("name", "description", "query", "tags", "saved", "favorited", "deleted"))

    def dashboard_activity(self, project_id, dashboard_id=None, *, limit=100, offset=0):
        """(activity entries, newest first, total count) of one dashboard or all of the project's."""
        if dashboard_id is not None and self.store.get_dashboard(project_id, dashboard_id) is None:
            raise errors.NotFound("Dashboard not found.")
        return self._activity(project_id, "Dashboard", dashboard_id, limit, offset,
                              ("name", "description", "pinned", "filters", "tags", "deleted"))

    def _activity(self, project_id, scope, item_id, limit, offset, fields):
        entries, count = self.store.list_activity(project_id, scope, item_id, limit=limit, offset=offset)
        render = (lambda r: {k: r.get(k) for k in fields})
        return [shapes.activity_json(e, render) for e in entries], count

    # --- dashboards ---------------------------------------------------------------------------------

    def list_dashboards(self, project_id, *, limit=100, offset=0, pinned=None, search=None):
        """(shaped dashboards without tiles, total count): non-deleted, oldest first."""
        self._project(project_id)
        rows, count = self.store.list_dashboards(project_id, limit=limit, offset=offset, pinned=pinned, search=search)
        emails = self._emails(*rows)
        return [shapes.dashboard_json(r, emails) for r in rows], count

    def get_dashboard(self, project_id, dashboard_id, refresh=None):
        """The dashboard with its tiles, each insight with its result for this dashboard's filters (cached
        by default; `refresh` as for insights, computing tiles until the time budget is spent)."""
        project = self._project(project_id)
        dashboard = self.store.get_dashboard(project_id, dashboard_id)
        if dashboard is None or dashboard["deleted"]:
            raise errors.NotFound("Dashboard not found.")
        mode = refresh_mode(refresh)
        deadline = time.monotonic() + DASHBOARD_BUDGET * self.queries.timeout_s
        tiles = self.store.dashboard_tiles(project_id, dashboard_id)
        insights = [t["insight"] for t in tiles if t["insight"]]
        by_insight = self.store.insight_tiles(project_id, [i["id"] for i in insights])
        emails = self._emails(dashboard, *insights)
        shaped = []
        left = MAX_ANSWER_BYTES
        for order, tile in enumerate(tiles):
            insight = None
            if tile["insight"]:
                row = tile["insight"]
                cached = self._safe_result(project, row, mode, dashboard, deadline) if left > 0 else None
                left -= cached[3] if cached else 0
                insight = shapes.insight_json(row, by_insight[row["id"]], cached, project, emails)
            shaped.append(shapes.tile_json(tile, insight, order))
        return shapes.dashboard_json(dashboard, emails, shaped)

    def create_dashboard(self, project_id, body, actor):
        self._project(project_id)
        fields, _ = shapes.clean_dashboard(body, creating=True)
        copy_from = body.get("use_dashboard")
        if copy_from is not None and not shapes._id(copy_from):
            raise errors.BadRequest("'use_dashboard' must be a dashboard id.", attr="use_dashboard")
        row = self.store.create_dashboard(project_id, fields, actor, self._now(), copy_from=copy_from)
        return self.get_dashboard(project_id, row["id"])

    def update_dashboard(self, project_id, dashboard_id, body, actor):
        """PATCH: fields given change; `tiles` edits layouts/colors/deletion by tile id and adds insight or text
        tiles; `{"deleted": true}` deletes the dashboard (its insights stay)."""
        fields, tiles = shapes.clean_dashboard(body)
        current = self.store.get_dashboard(project_id, dashboard_id)
        if current is None or (current["deleted"] and fields.get("deleted") is not False):
            raise errors.NotFound("Dashboard not found.")
        row = self.store.update_dashboard(project_id, dashboard_id, lambda _: (fields, tiles), actor, self._now())
        if row is None:
            raise errors.NotFound("Dashboard not found.")
        if row["deleted"]:
            return shapes.dashboard_json(row, self._emails(row), [])
        return self.get_dashboard(project_id, dashboard_id)
