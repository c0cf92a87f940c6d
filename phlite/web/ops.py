"""Operator endpoints: `GET /healthz` (is capture acknowledging, and if not, why) and `GET /metrics`.

/healthz is for load balancers and monitors: 200 while a capture request would be stored and the data
dir's disk has its margin, 503 (with `Retry-After`) otherwise, with the reason. /metrics is Prometheus's
text format, behind the `metrics_token` setting (docs/operations.md "Metrics").
"""

import hmac

import bottle

from phlite import errors
from phlite.monitor import CONTENT_TYPE
from phlite.web.auth import bearer_key
from phlite.web.common import json_response, route


def register(web, app):
    def healthz():
        health = app.monitor.health()
        if health["status"] == "ok":
            return json_response(health)
        return json_response(health, 503, {"Retry-After": "5"})

    def metrics():
        token = app.config.metrics_token
        if not token:
            raise errors.NotFound("Metrics are off: set the metrics_token setting (docs/operations.md \"Metrics\").")
        sent = bearer_key()
        if not sent:
            raise errors.Unauthorized("Send the metrics token as 'Authorization: Bearer <token>'.",
                                      code="not_authenticated")
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise errors.Unauthorized("Invalid metrics token.", code="authentication_failed")
        return bottle.HTTPResponse(app.monitor.exposition(), 200,
                                   {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    # Public: a probe carries no key, and the answer holds no data.
    route(web, ["/healthz"], ["GET"], healthz, public=True)
    # Not public (no CORS): only a scraper holding the metrics token reads it. own_token: a personal key
    # is not what it asks for (tests/test_access.py leaves it to tests/test_ops.py).
    web.route("/metrics", "GET", metrics, own_token=True)
