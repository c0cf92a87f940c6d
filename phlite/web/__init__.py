"""phlite's HTTP layer: one bottle app. The only package that imports bottle.

`create_app(app)` builds the bottle app for a running phlite (phlite.app.App); each module of
this package registers the routes it owns (capture, the private API, ...) with `register(web, app)`
and reaches the services only through the App. Every response of the app, errors
included, is JSON unless a client needs otherwise (Mixpanel's bare `1`, config.js).
"""

import bottle

from phlite.web import (
    browser, capture, capture_v1, console, deletion, flag_api, flags, insights, ops, persons, private, query,
)
from phlite.web.common import body_limit, install, max_body_limit

__all__ = ["body_limit", "create_app", "max_body_limit"]

# The modules that own routes, in registration order.
ROUTE_MODULES = [capture, capture_v1, private, deletion, persons, flag_api, flags, browser, query, insights, ops,
                 console]


def create_app(app):
    web = bottle.Bottle(catchall=True, autojson=False)
    install(web, trust_proxy=app.config.trust_proxy, monitor=app.monitor)
    # bottle recompiles one combined regex of all a method's routes at every route added: with ~300
    # routes that was ~2 s of every start. Compile each method's once, after the last route.
    router = web.router
    router._compile = lambda method: None
    try:
        for module in ROUTE_MODULES:
            module.register(web, app)
    finally:
        del router._compile
        for method in router.dyna_routes:
            router._compile(method)
    return web
