"""phlite's HTTP layer: one bottle app. The only package that imports bottle.

`create_app(services)` builds the app; each module of this package registers the
routes it owns (capture, the private API, ...). Every response of the app, errors
included, is JSON unless a client needs otherwise (Mixpanel's bare `1`, config.js).
"""

import bottle

from phlite.web import browser, capture, flag_api, flags, persons, private
from phlite.web.common import install

# The modules that own routes, in registration order.
ROUTE_MODULES = [capture, private, persons, flag_api, flags, browser]


def create_app(services):
    app = bottle.Bottle(catchall=True, autojson=False)
    install(app, services)
    for module in ROUTE_MODULES:
        module.register(app, services)
    return app
