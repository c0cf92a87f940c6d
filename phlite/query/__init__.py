"""PostHog's query API on phlite's store: `QueryService.run(project, request)` -> the response object.

The face web handlers use. Each query kind has its runner (`runner` for HogQLQuery); translation is
pure, and SQL runs only through the store's read-only executor (docs/insights.md).
"""

import importlib
import time
import uuid
from datetime import datetime, timedelta, timezone

from phlite import errors
from phlite.query.functions import local_day  # noqa: F401 - the pass that cuts the daily roll-up uses it
from phlite.query.overrides import clean_filters, with_filters

REFRESH = {"blocking", "async", "lazy_async", "async_except_on_cache_miss", "force_blocking", "force_async",
           "force_cache", True, False}
REQUEST_FIELDS = {"query", "refresh", "async", "client_query_id", "filters_override", "variables_override",
                  "name", "limit_context"}
# kind -> (module, function). The runners are imported at the first query, not at start: they bring sqlglot,
# ~13 MB of the idle server's memory that a server nobody queries never needs (docs/benchmarks.md, peak RSS).
RUNNERS = {"HogQLQuery": ("runner", "run_hogql"), "TrendsQuery": ("trends", "run_trends"),
           "EventsQuery": ("events_query", "run_events"), "FunnelsQuery": ("funnels", "run_funnels"),
           "RetentionQuery": ("retention", "run_retention"), "WebOverviewQuery": ("web", "run_web_overview"),
           "WebStatsTableQuery": ("web_stats", "run_web_stats")}


def _runner(kind):
    module, name = RUNNERS[kind]
    return getattr(importlib.import_module(f"phlite.query.{module}"), name)


def _iso(ms):
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


class QueryService:
    def __init__(self, store, clock=time.time, timeout_s=10.0):
        self.store = store
        self.clock = clock
        self.timeout_s = timeout_s

    @property
    def kinds(self):
        """The query kinds `run` takes."""
        return frozenset(RUNNERS)

    def run(self, project_id, request, path_kind=None):
        if not isinstance(request, dict) or not isinstance(request.get("query"), dict):
            raise errors.BadRequest("The body needs a 'query' object with a 'kind'.", code="invalid", attr="query")
        extra = sorted(set(request) - REQUEST_FIELDS)
        if extra:
            raise errors.BadRequest(f"Unknown field {extra[0]!r}.", code="invalid", attr=extra[0])
        if request.get("refresh", "blocking") not in REFRESH:
            raise errors.BadRequest("'refresh' is not a refresh mode.", code="invalid", attr="refresh")
        node = request["query"]
        if request.get("filters_override"):
            # A dashboard's filters over the query (docs/insights.md "Saved insights and dashboards").
            node = with_filters(node, clean_filters(request["filters_override"], "filters_override"))
        kind = node.get("kind")
        if path_kind is not None and path_kind != kind:
            raise errors.BadRequest(f"Query kind mismatch: the path says {path_kind}, the query says {kind}.",
                                    code="invalid", attr="kind")
        if not isinstance(kind, str) or kind not in RUNNERS:
            raise errors.BadRequest(f"Unsupported query kind: {kind!r}. phlite runs: {', '.join(sorted(RUNNERS))}.",
                                    code="invalid", attr="kind")
        # The materialized columns ready now: a query reads those properties from their columns.
        project = {**self.store.get_project(project_id), "materialized": self.store.ready_materialized()}
        now_ms = int(self.clock() * 1000)
        response = _runner(kind)(self.store, project, node, now_ms, self.timeout_s)
        # Every query runs now (no shared cache): the envelope says so.
        response.update({
            "is_cached": False,
            "last_refresh": _iso(now_ms),
            "next_allowed_client_refresh": _iso(now_ms + 60_000),
            "cache_target_age": None,
            "cache_key": "cache_" + uuid.uuid4().hex,
            "timezone": project["timezone"],
            "query_status": None,
            "calculation_trigger": None,
            "query_metadata": None,
        })
        return response
