"""The console's HTTP side: one module per area, each with `register(ui)` (ui.Ui: pages, nav, checks).

A new page (e.g. the query engineer's insights) is a module here added to PAGE_MODULES: it calls
`ui.add_nav(label, path, order)` for its entry in the sidebar and `@ui.page(...)` for its routes
(docs/console.md "Adding a page"). Pages reach phlite only through the App's services.
"""

from phlite.web.console import activity, auth, cohorts, data, export, flags, home, insights, persons, saved, settings
from phlite.web.console.ui import Ui

# Registration order; nav order comes from each entry's `order`.
PAGE_MODULES = [auth, home, activity, persons, flags, cohorts, insights, saved, settings, export, data]


def register(web, app):
    ui = Ui(web, app)
    for module in PAGE_MODULES:
        module.register(ui)
    return ui
