"""PostHog's query endpoint (Bearer personal API key): POST /api/projects/<id>/query/ and the
/api/environments/<id>/ alias. Every path under /query/ checks the key first, so an unauthenticated
request is a 401 wherever it points."""

import bottle

from phlite import errors
from phlite.web.auth import personal_key, project_for_key
from phlite.web.common import json_body, route

PREFIXES = ("/api/projects/<project>/query", "/api/environments/<project>/query")


def register(web, app):
    store = app.store

    def project_id(project):
        return project_for_key(store, personal_key(store), project)

    def run(project):
        pid = project_id(project)
        if bottle.request.method != "POST":
            raise errors.PhliteError("Method not allowed.", status=405, type="invalid_request",
                                     code="method_not_allowed", headers={"Allow": "POST"})
        return app.queries.run(pid, json_body())

    def sub(project, rest):
        pid = project_id(project)
        if bottle.request.method == "POST" and "/" not in rest.strip("/"):
            return app.queries.run(pid, json_body(), path_kind=rest.strip("/"))
        # Queries run synchronously and are not kept, so there is nothing to poll or cancel.
        raise errors.NotFound("Query not found: phlite runs every query synchronously and keeps no results.")

    for prefix in PREFIXES:
        route(web, prefix, ["POST", "GET", "DELETE", "PATCH", "PUT"], run)
        route(web, prefix + "/<rest:path>", ["GET", "POST", "DELETE", "PATCH", "PUT"], sub, slash=False)
