"""What every console page shares: the session cookie, CSRF and Origin checks, the security headers,
the layout's navigation, and HTML error pages. docs/console.md "Adding a page" shows how a module uses it.

`Ui.page(path, methods, admin=False)` registers a handler that gets (ctx, **url args) where ctx holds
the session, the project (for /project/<pid>/... paths) and helpers; it returns HTML text (usually
`ctx.render(...)`) or raises `redirect(url)`.
"""

import dataclasses
import logging
from urllib.parse import quote, urlsplit

import bottle

from phlite import errors
from phlite.console import SESSION_SECONDS
from phlite.web.common import client_ip

log = logging.getLogger(__name__)

COOKIE = "phlite_session"
# No inline script or style anywhere; htmx is a same-origin file. form-action 'self' stops a page
# injected into ours from posting elsewhere; frame-ancestors 'none' stops clickjacking.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclasses.dataclass
class NavItem:
    label: str
    path: str  # under /project/<pid>/, e.g. "activity"; "" is the home page
    order: int
    admin: bool = False


class Ctx:
    """One request of a console page."""

    def __init__(self, ui, session, project):
        self.ui, self.session, self.project = ui, session, project
        self.user = session.user if session else None
        self.form = bottle.request.forms if bottle.request.method == "POST" else None

    def get(self, name, default=""):
        """A query parameter, decoded as UTF-8."""
        return bottle.request.query.getunicode(name, default=default) or default

    def field(self, name, default=""):
        return bottle.request.forms.getunicode(name, default=default) if self.form is not None else default

    def upload(self, name):
        """The uploaded file of a multipart form field, or None."""
        if self.form is None:
            return None
        f = bottle.request.files.get(name)
        return f if f is not None and f.filename else None

    def form_dict(self):
        """Every submitted form field, {name: text} (UTF-8 decoded)."""
        forms = bottle.request.forms
        return {name: forms.getunicode(name, default="") for name in forms.keys()}

    def render(self, template, **context):
        projects = self.ui.app.store.list_projects() if self.session else []
        nav = [n for n in self.ui.nav if not n.admin or self.session.is_admin] if self.session else []
        return self.ui.console.render(
            template, session=self.session, user=self.user, project=self.project, projects=projects, nav=nav,
            path=bottle.request.path, csrf=self.session.csrf if self.session else "", **context)

    def project_url(self, sub=""):
        return f"/project/{self.project['id']}/{sub}"


def redirect(url):
    return bottle.HTTPResponse(status=303, headers={"Location": url, **HEADERS})


def request_origin(config):
    """scheme://host of this request as the browser addressed it."""
    env = bottle.request.environ
    scheme = env.get("wsgi.url_scheme", "http")
    host = env.get("HTTP_HOST") or f"{env.get('SERVER_NAME')}:{env.get('SERVER_PORT')}"
    if config.trust_proxy:
        scheme = env.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        host = env.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
    return f"{scheme}://{host}"


class Ui:
    def __init__(self, web, app):
        self.web, self.app, self.console = web, app, app.console
        self.nav: list[NavItem] = []

    def add_nav(self, label, path, order, admin=False):
        self.nav.append(NavItem(label, path, order, admin))
        self.nav.sort(key=lambda n: n.order)

    # --- the request's security -----------------------------------------------------------

    def session(self):
        return self.console.session(bottle.request.get_cookie(COOKIE))

    def secure(self):
        return request_origin(self.app.config).startswith("https:")

    def set_session_cookie(self, resp, session):
        resp.set_cookie(COOKIE, session.token, path="/", httponly=True, samesite="lax", secure=self.secure(),
                        max_age=SESSION_SECONDS)

    def clear_session_cookie(self, resp):
        resp.set_cookie(COOKIE, "", path="/", httponly=True, samesite="lax", secure=self.secure(), max_age=0)

    def same_origin(self):
        """A change must come from our own pages: Origin (or, without it, Referer) names this server."""
        origin = bottle.request.environ.get("HTTP_ORIGIN")
        if not origin:
            ref = bottle.request.environ.get("HTTP_REFERER")
            if not ref:
                return True  # neither sent (old clients, privacy settings): the CSRF token still decides
            parts = urlsplit(ref)
            origin = f"{parts.scheme}://{parts.netloc}"
        return origin == request_origin(self.app.config)

    def check_change(self, session):
        """403 page unless this POST comes from our origin with the session's CSRF token."""
        if not self.same_origin():
            raise self.error(403, "This form was sent from another site, so it was refused.")
        sent = bottle.request.forms.get("csrf") or bottle.request.environ.get("HTTP_X_CSRF_TOKEN")
        if session is not None and not self.console.csrf_ok(session, sent):
            raise self.error(403, "This form has expired (its security token does not match). Reload and try again.")

    def ip(self):
        return client_ip(self.app.config) or ""

    # --- pages ----------------------------------------------------------------------------------

    def html(self, body, status=200):
        return bottle.HTTPResponse(body, status, {"Content-Type": "text/html; charset=utf-8", **HEADERS})

    def error(self, status, message, session=None):
        body = self.console.render("error.html", session=session, user=session and session.user, project=None,
                                   projects=[], nav=[], path=bottle.request.path, csrf="", status=status,
                                   message=message)
        return bottle.HTTPResponse(body, status, {"Content-Type": "text/html; charset=utf-8", **HEADERS})

    def page(self, path, methods=("GET",), admin=False, public=False):
        """Register a console page; see the module docstring."""

        def decorate(handler):
            def wrapper(**kwargs):
                session = None if public else self.session()
                if not public and session is None:
                    if bottle.request.method == "GET" and not bottle.request.environ.get("HTTP_HX_REQUEST"):
                        return redirect("/console/login?next=" + quote(bottle.request.fullpath))
                    return self.error(401, "Your session has ended. Sign in again.")
                if bottle.request.method == "POST":
                    self.check_change(session)
                if admin and not session.is_admin:
                    return self.error(403, "Only admins can open this page.", session)
                project = None
                if "pid" in kwargs:
                    project = self.app.store.get_project(kwargs.pop("pid"))
                    if project is None:
                        return self.error(404, "There is no such project.", session)
                try:
                    out = handler(Ctx(self, session, project), **kwargs)
                except bottle.HTTPResponse as r:
                    out = r
                except errors.PhliteError as e:  # a page answers a page, not the API's JSON
                    return self.error(e.status, e.detail, session)
                except Exception:
                    log.exception("error while serving %s %s", bottle.request.method, bottle.request.path)
                    return self.error(500, "Something went wrong on the server; the log says what.", session)
                if isinstance(out, bottle.HTTPResponse):
                    for k, v in HEADERS.items():
                        out.set_header(k, v)
                    return out
                return bottle.HTTPResponse(out, 200, {"Content-Type": "text/html; charset=utf-8", **HEADERS})

            for m in methods:
                # console=True: session-authenticated HTML, not the private API's Bearer-key JSON routes
                # (tests/test_access.py checks those; tests/test_console_http.py checks these).
                self.web.route(path, m, wrapper, console=True, console_public=public)
            return handler

        return decorate
