"""Settings, personal API keys and users in the console: admins only (by URL, not by hidden links),
a key shown once that then works on the private API until revoked, users added with a one-time link."""

import re

from support import ConsoleClient, console_user, http


def test_admin_changes_project_settings_member_cannot(server, project):
    admin = console_user(server, "admin")
    base = f"/project/{project.id}/settings"
    assert project.token in admin.text(base)
    r = admin.post(base, {"name": "Shop", "timezone": "Europe/Paris", "week_start_day": "1"})
    assert r.status == 303
    p = server.store.get_project(project.id)
    assert (p["name"], p["timezone"], p["week_start_day"]) == ("Shop", "Europe/Paris", 1)
    r = admin.post(base, {"name": "Shop", "timezone": "Mars/Olympus", "week_start_day": "1"})
    assert r.status == 200 and b'data-field="timezone"' in r.body
    member = console_user(server, "member")
    assert project.token in member.text(base) and "Only admins can change these." in member.text(base)
    assert member.post(base, {"name": "x", "timezone": "UTC", "week_start_day": "0"}).status == 403
    assert server.store.get_project(project.id)["name"] == "Shop"


def test_members_are_refused_admin_pages_by_url(server, project):
    member = console_user(server, "member")
    for path in ("keys", "users"):
        r = member.get(f"/project/{project.id}/{path}")
        assert r.status == 403 and b"Only admins" in r.body, path
        assert member.post(f"/project/{project.id}/{path}", {"label": "x", "email": "e@x.io",
                                                             "action": "create"}).status == 403
    nav = member.text(f"/project/{project.id}/")
    assert "/keys" not in nav and "/users" not in nav


def test_key_is_shown_once_works_and_is_revoked(server, project):
    admin = console_user(server, "admin")
    r = admin.post(f"/project/{project.id}/keys", {"label": "from console", "scope": "project"})
    assert r.status == 200
    key = re.search(r"phx_[A-Za-z0-9]+", r.body.decode()).group(0)
    page = admin.text(f"/project/{project.id}/keys")
    assert key not in page and key[:12] in page and "from console" in page
    api = lambda: http("GET", f"{server.url}/api/projects/{project.id}/", headers={"Authorization": f"Bearer {key}"})  # noqa: E731
    assert api().status == 200
    kid = next(k["id"] for k in server.store.list_personal_keys() if k["label"] == "from console")
    assert admin.post(f"/project/{project.id}/keys", {"revoke": str(kid)}).status == 303
    assert api().status == 401
    assert "revoked" in admin.text(f"/project/{project.id}/keys")


def test_admin_adds_a_user_who_sets_a_password(server, project):
    admin = console_user(server, "admin")
    email = f"new-{project.id}@example.com"
    r = admin.post(f"/project/{project.id}/users", {"action": "create", "email": email, "role": "member"})
    link = re.search(r"(/console/link/[A-Za-z0-9_-]+)", r.body.decode()).group(1)
    new = ConsoleClient(server.url)
    assert new.post(link, {"password": "a good password"}).status == 303
    assert f"{email} (member)" in new.text(f"/project/{project.id}/")
    uid = next(u["id"] for u in server.app.console.list_users() if u["email"] == email)
    assert admin.post(f"/project/{project.id}/users", {"action": "make_admin", "user_id": str(uid)}).status == 303
    assert f"{email} (admin)" in new.text(f"/project/{project.id}/")
    assert admin.post(f"/project/{project.id}/users", {"action": "delete", "user_id": str(uid)}).status == 303
    assert new.get(f"/project/{project.id}/").status == 303  # signed out with the account
    r = admin.post(f"/project/{project.id}/users", {"action": "create", "email": "not an email"})
    assert b'data-field="email"' in r.body
