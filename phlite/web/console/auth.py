"""Sign in, sign out, the one-time links (first start, password reset), and the console's static files."""

import bottle

from phlite.console import SignInError
from phlite.web.console.ui import HEADERS, redirect


def _safe_next(url):
    # Only a path on this server: "//evil.example" or "https://..." would send the user away.
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


def register(ui):
    console = ui.console

    @ui.page("/console/login", ("GET", "POST"), public=True)
    def login(ctx):
        nxt = _safe_next(ctx.get("next", "/"))
        if console.needs_first_user():
            return ctx.render("login.html", error="No account exists yet: open the sign-in link phlite printed"
                              " when it started (or run `python app.py user create EMAIL --admin`).",
                              email="", next=nxt, status=200)
        if ctx.form is None:
            if ui.session():
                return redirect(nxt)
            return ctx.render("login.html", error=None, email="", next=nxt)
        email = ctx.field("email")
        try:
            session = console.sign_in(email, ctx.field("password"), ui.ip())
        except SignInError as e:
            resp = bottle.HTTPResponse(ctx.render("login.html", error=e.message, email=email, next=nxt),
                                       429 if e.retry_after else 400,
                                       {"Content-Type": "text/html; charset=utf-8"})
            if e.retry_after:
                resp.set_header("Retry-After", str(e.retry_after))
            return resp
        resp = redirect(_safe_next(ctx.field("next", "/")))
        ui.set_session_cookie(resp, session)
        return resp

    @ui.page("/console/logout", ("POST",))
    def logout(ctx):
        console.sign_out(ctx.session.token)
        resp = redirect("/console/login")
        ui.clear_session_cookie(resp)
        return resp

    @ui.page("/console/link/<token>", ("GET", "POST"), public=True)
    def link(ctx, token):
        found = console.link(token)
        if found is None:
            return ui.error(410, "This link has expired or was already used. Ask an admin for a new one"
                            " (`python app.py user reset-password EMAIL`).")
        first = found["user"] is None
        if ctx.form is None:
            return ctx.render("link.html", first=first, target=found["user"], errors={}, email="")
        email = ctx.field("email")
        try:
            session = console.redeem_link(token, email, ctx.field("password"))
        except SignInError as e:
            return bottle.HTTPResponse(
                ctx.render("link.html", first=first, target=found["user"], errors={e.field or "form": e.message},
                           email=email), 400, {"Content-Type": "text/html; charset=utf-8"})
        resp = redirect("/")
        ui.set_session_cookie(resp, session)
        return resp

    @ui.page("/", public=True)
    def root(ctx):
        session = ui.session()
        if session is None:
            return redirect("/console/login")
        projects = ui.app.store.list_projects()
        return redirect(f"/project/{projects[0]['id']}/" if projects else "/console/projects")

    # Only the files shipped beside the templates, by exact name: nothing else under the package is served.
    shipped = {p.name for p in console.static_dir.iterdir() if p.suffix in (".js", ".css")}

    def static(name):
        if name not in shipped:
            return ui.error(404, "Not found.")
        resp = bottle.static_file(name, root=str(console.static_dir))
        for k, v in HEADERS.items():
            if k != "Cache-Control":
                resp.set_header(k, v)
        resp.set_header("Cache-Control", "public, max-age=3600")
        return resp

    ui.web.route("/console/static/<name:path>", "GET", static, console=True, console_public=True)
