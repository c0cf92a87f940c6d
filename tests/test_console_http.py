"""The console over real HTTP: the first-start link, sign-in, sessions, roles, CSRF and Origin checks,
the security headers, and hostile captured data rendered as text on Home, Activity and event pages."""

import re
from urllib.parse import quote

import pytest

from support import ConsoleClient, Subprocess, admin, console_user, ev, send

PASSWORD = "correct horse battery"


def test_first_start_link_creates_the_first_admin_once(make_server):
    srv = make_server()
    token = srv.app.console.first_start_link()
    c = ConsoleClient(srv.url)
    assert c.get("/").headers["Location"] == "/console/login"
    assert c.get(f"/console/link/{token}").status == 200
    r = c.post(f"/console/link/{token}", {"email": "me@example.com", "password": "short"})
    assert r.status == 400 and b"at least 8" in r.body
    r = c.post(f"/console/link/{token}", {"email": "me@example.com", "password": PASSWORD})
    assert r.status == 303
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert c.get("/").status == 303
    assert re.search(r"me@example.com \(admin\)", c.text("/console/projects"))
    # Used up, and no first-start link once an account exists.
    assert ConsoleClient(srv.url).get(f"/console/link/{token}").status == 410
    assert srv.app.console.first_start_link() is None


def test_pages_need_a_session(server, project):
    c = ConsoleClient(server.url)
    r = c.get(f"/project/{project.id}/activity")
    assert r.status == 303 and r.headers["Location"].startswith("/console/login?next=/project/")
    assert c.get(f"/project/{project.id}/activity/rows", headers={"HX-Request": "true"}).status == 401


def test_sign_in_out_and_wrong_password(server, project):
    server.app.console.create_user("someone@example.com", "member", PASSWORD)
    c = ConsoleClient(server.url)
    r = c.post("/console/login", {"email": "someone@example.com", "password": "nope nope"})
    assert r.status == 400 and b"Wrong email or password" in r.body
    c.sign_in("Someone@Example.com", PASSWORD)  # emails are not case-sensitive
    assert "someone@example.com" in c.text(f"/project/{project.id}/")
    assert c.post("/console/logout", {}).status == 303
    assert c.get(f"/project/{project.id}/").status == 303


def test_sign_in_is_throttled(make_server):
    srv = make_server()
    srv.app.console.create_user("t@example.com", "admin", PASSWORD)
    c = ConsoleClient(srv.url)
    statuses = [c.post("/console/login", {"email": "t@example.com", "password": "wrong guess"}).status
                for _ in range(6)]
    assert statuses == [400] * 5 + [429]
    r = c.post("/console/login", {"email": "t@example.com", "password": PASSWORD})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0  # even the right password waits


def test_security_headers(server, project):
    c = console_user(server)
    r = c.get(f"/project/{project.id}/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert not re.search(rb"<script(?![^>]*\bsrc=)", r.body), "inline script"


def test_cross_site_posts_are_refused(server, project):
    c = console_user(server, "admin")
    r = c.post("/console/projects", {"name": "evil"}, headers={"Origin": "https://evil.example"})
    assert r.status == 403 and b"another site" in r.body
    r = c.post("/console/projects", {"name": "evil", "csrf": "forged"})
    assert r.status == 403
    r = c.post("/console/projects", {"name": "evil"}, headers={"Origin": "", "Referer": "https://evil.example/x"})
    assert r.status == 403
    assert "evil" not in [p["name"] for p in server.store.list_projects()]
    # A sign-in form posted from another site is refused too (login CSRF).
    r = ConsoleClient(server.url).post("/console/login", {"email": "x@y.z", "password": "p"},
                                       headers={"Origin": "https://evil.example"})
    assert r.status == 403


def test_members_cannot_create_or_rename_projects(server, project):
    c = console_user(server, "member")
    r = c.post("/console/projects", {"name": "by a member"})
    assert r.status == 403
    r = c.post("/console/projects", {"name": "renamed", "project_id": str(project.id)})
    assert r.status == 403
    assert server.store.get_project(project.id)["name"] == "test"


def test_admins_create_and_rename_projects(server):
    c = console_user(server, "admin")
    r = c.post("/console/projects", {"name": "Shop <b>"})
    assert r.status == 303
    pid = int(r.headers["Location"].split("/")[2])
    assert "Shop &lt;b&gt;" in c.text(f"/project/{pid}/")
    assert c.post("/console/projects", {"name": "Shop 2", "project_id": str(pid)}).status == 303
    assert server.store.get_project(pid)["name"] == "Shop 2"
    assert c.post("/console/projects", {"name": ""}).status == 200  # the form again, with the error
    assert c.get("/project/999999/").status == 404


HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">"\'&'


def test_hostile_events_are_text_on_every_page(server, project):
    send(project, {"event": HOSTILE, "distinct_id": HOSTILE,
                   "properties": {HOSTILE: HOSTILE, "$current_url": HOSTILE, "nested": {HOSTILE: [HOSTILE]}}})
    c = console_user(server)
    pages = [f"/project/{project.id}/", f"/project/{project.id}/activity",
             f"/project/{project.id}/activity?event={HOSTILE}", f"/project/{project.id}/activity/rows"]
    uuid = server.app.console.events(project.id)[0]["uuid"]
    pages.append(f"/project/{project.id}/events/{uuid}")
    for path in pages:
        html = c.text(path.split("?")[0] + ("?event=" + quote(HOSTILE) if "?" in path else ""))
        assert "<script>window" not in html and "<img src=x" not in html, path
    html = c.text(f"/project/{project.id}/events/{uuid}")
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert c.text(f"/project/{project.id}/activity").count("&lt;script&gt;") >= 3


def test_activity_lists_and_filters_events(server, project):
    send(project, ev("signed up", "ann", **{"$current_url": "https://shop.example/a"}), ev("paid", "bob"),
         ev("paid", "ann"))
    c = console_user(server)
    html = c.text(f"/project/{project.id}/activity")
    assert html.count('class="ev"') == 3 and "https://shop.example/a" in html
    assert c.text(f"/project/{project.id}/activity/rows?event=paid").count('class="ev"') == 2
    assert c.text(f"/project/{project.id}/activity/rows?event=paid&distinct_id=ann").count('class="ev"') == 1
    assert c.get(f"/project/{project.id}/events/not-a-uuid").status == 404
    # An event of another project is not found through this one.
    other = server.store.create_project("other")
    uuid = server.app.console.events(project.id)[0]["uuid"]
    assert c.get(f"/project/{other['id']}/events/{uuid}").status == 404


def test_home_counts_and_snippets(server, project):
    send(project, ev("a", "u1"), ev("b", "u1"), ev("c", "u2"))
    c = console_user(server)
    html = c.text(f"/project/{project.id}/")
    assert '<span class="n" id="events-today">3</span>' in html
    assert project.token in html and f"api_host: &#39;{server.url}&#39;" in html
    assert html.count('class="bar"') == 30
    assert "posthog-python" in html and "posthog-node" in html


def test_static_files(server):
    r = ConsoleClient(server.url).get("/console/static/htmx.min.js")
    assert r.status == 200 and len(r.body) > 40_000
    assert ConsoleClient(server.url).get("/console/static/../templates/base.html").status == 404


@pytest.mark.slow
def test_first_start_prints_the_link_and_user_commands_work(tmp_path):
    srv = Subprocess(tmp_path)
    try:
        line = next(line for line in srv.output if "/console/link/" in line)
        link = re.search(r"(http://\S+/console/link/\S+)", line).group(1)
        c = ConsoleClient(srv.url)
        assert c.post("/console/link/" + link.rsplit("/", 1)[1], {"email": "first@example.com", "password": PASSWORD}).status == 303
        assert "first@example.com (admin)" in c.text("/console/projects")

        made = admin(tmp_path, "user", "create", "m@example.com", "--json")
        assert made["role"] == "member" and "/console/link/" in made["link"]
        m = ConsoleClient(srv.url)
        token_path = "/console/link/" + made["link"].rsplit("/", 1)[1]
        assert m.post(token_path, {"password": PASSWORD}).status == 303
        assert "m@example.com (member)" in m.text("/console/projects")
        assert [u["email"] for u in admin(tmp_path, "user", "list", "--json")] == ["first@example.com",
                                                                                 "m@example.com"]
        reset = admin(tmp_path, "user", "reset-password", "m@example.com", "--json")
        assert ConsoleClient(srv.url).post("/console/link/" + reset["link"].rsplit("/", 1)[1],
                                           {"password": "another password"}).status == 303
        assert m.get("/console/projects").status == 303  # the old session ended with the reset
        admin(tmp_path, "user", "delete", "m@example.com")
        assert [u["email"] for u in admin(tmp_path, "user", "list", "--json")] == ["first@example.com"]
    finally:
        srv.terminate()
    # Once an account exists, a restart prints no link.
    again = Subprocess(tmp_path)
    try:
        assert not any("/console/link/" in line for line in again.output)
    finally:
        again.terminate()


def test_activity_property_filters_use_the_query_api(server, project):
    send(project, ev("view", "p1", **{"$browser": "Firefox", "n": 5}), ev("view", "p2", **{"$browser": "Chrome", "n": 50}),
         ev("other", "p1", **{"$browser": "Firefox"}))
    c = console_user(server)
    base = f"/project/{project.id}/activity/rows?"
    assert c.text(base + "prop_key=%24browser&prop_op=exact&prop_value=Firefox").count('class="ev"') == 2
    assert c.text(base + "event=view&prop_key=%24browser&prop_op=icontains&prop_value=fire").count('class="ev"') == 1
    assert c.text(base + "prop_key=n&prop_op=gt&prop_value=10").count('class="ev"') == 1
    html = c.text(base + "distinct_id=p1&prop_key=%24browser&prop_op=is_set")
    assert html.count('class="ev"') == 2 and "p2" not in html
    # Hostile filter values are data, not HogQL.
    assert c.text(base + "distinct_id=" + quote("x' OR 1=1 --") + "&prop_key=n&prop_op=is_set").count('class="ev"') == 0
    page = c.text(f"/project/{project.id}/activity?prop_key=%24browser&prop_op=exact&prop_value=Chrome")
    assert "prop_key=%24browser" in page  # the live poll keeps the filter


def test_every_console_route_needs_a_session(server, project):
    """Enumerated from the bottle app, so a page added later is covered: without a session (or with a
    forged cookie) a GET is sent to sign in and a POST refused; no page shows project data."""
    send(project, ev("console-secret-event", "console-secret-user"))
    routes = sorted({(r.rule, r.method) for r in server.web.routes
                     if r.config.get("console") and not r.config.get("console_public")})
    assert len(routes) > 20
    for cookies in ({}, {"phlite_session": "forged"}):
        c = ConsoleClient(server.url)
        c.cookies = dict(cookies)
        for rule, method in routes:
            path = re.sub(r"<([a-z_]+)(?::[^>]*)?>", lambda m: str(project.id) if m.group(1) == "pid" else "1", rule)
            r = c.request(method, path, {"name": "x"} if method == "POST" else None)
            where = f"{method} {path}: {r.status}"
            if method == "GET":
                assert r.status == 303 and r.headers["Location"].startswith("/console/login"), where
            else:
                assert r.status in (401, 403), where
            assert b"console-secret" not in r.body and project.token.encode() not in r.body, where
