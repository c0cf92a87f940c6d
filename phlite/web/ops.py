"""Operator endpoints: `GET /healthz` (is capture acknowledging, and if not, why).

For load balancers and monitors: 200 while a capture request would be stored, 503 (with
`Retry-After`) while capture answers 503, with the writer's own reason.
"""

from phlite.web.common import json_response, route


def register(web, app):
    def healthz():
        health = app.ingestion.health()
        if health["status"] == "ok":
            return json_response(health)
        return json_response(health, 503, {"Retry-After": "5"})

    # Public: a probe carries no key, and the answer holds no data.
    route(web, ["/healthz"], ["GET"], healthz, public=True)
