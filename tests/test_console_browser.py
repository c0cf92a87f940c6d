"""The console in real Chromium (tests/js/console.mjs): sign in, Home, Activity that shows events
posthog-js sends from another origin without a reload, hostile captured data on every page
(no script runs, no element is injected, the layout holds), and the insight pages' charts drawn. Screenshots go to tests/artifacts/console/."""

import json
import subprocess

import posthog
import pytest

from support import ROOT, ConsoleClient, Project, ev, http, send
from test_browser import CHROMIUM, JS, MODULES, page_origin  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MODULES / "playwright-core").is_dir() or not CHROMIUM.exists(),
                       reason="tests/js/node_modules or /usr/bin/chromium missing (tests/run.sh installs them)"),
]
SHOTS = ROOT / "tests" / "artifacts" / "console"
PASSWORD = "correct horse battery"
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2;alert(1)">'


def run_console(scenario, srv, project, page_origin, email, pages=None):
    proc = subprocess.run(
        ["node", "console.mjs", scenario, srv.url, page_origin, project.token, str(project.id), email, PASSWORD,
         str(SHOTS), json.dumps(pages or [])], cwd=JS, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in out, "\n".join([out["error"], *out["console"], *out["pageErrors"]])
    return out


def assert_safe(out):
    assert out["dialogs"] == [] and out["pageErrors"] == [], out
    for name, seen in out["pages"].items():
        assert seen["pwned"] is None and seen["injected"] == 0, (name, seen)
        assert seen["overflow"] <= 0, f"{name} is wider than the window: {seen}"
        assert seen["nav"] >= 2, (name, seen)


def test_sign_in_home_live_activity_and_hostile_data(server, page_origin):  # noqa: F811
    project = Project(server, name=HOSTILE)
    send(project, {"event": HOSTILE, "distinct_id": HOSTILE * 3,
                   "properties": {HOSTILE: HOSTILE, "$current_url": "https://x.example/" + "a" * 400 + HOSTILE}},
         ev("$pageview", "plain-user", **{"$current_url": "https://shop.example/"}))
    email = "browser-admin@example.com"
    server.app.console.create_user(email, "admin", PASSWORD)
    out = run_console("shell", server, project, page_origin, email)
    assert_safe(out)
    assert out["notReloaded"] is True
    assert out["eventTitle"] == HOSTILE


def test_person_flag_and_cohort_forms_in_chromium(server, page_origin):  # noqa: F811
    project = Project(server)
    send(project, {"event": "$identify", "distinct_id": HOSTILE,
                   "properties": {"$set": {HOSTILE: HOSTILE, "email": HOSTILE}}},
         {"event": "$groupidentify", "distinct_id": HOSTILE,
          "properties": {"$group_type": HOSTILE, "$group_key": HOSTILE, "$group_set": {"name": HOSTILE}}})
    email = "forms-admin@example.com"
    server.app.console.create_user(email, "admin", PASSWORD)
    client = ConsoleClient(server.url)
    client.sign_in(email, PASSWORD)
    r = client.post(f"/project/{project.id}/feature_flags/new", {
        "key": "hostile", "name": HOSTILE, "active": "1", "c0.set": "1", "c0.rollout": "100",
        "payload": json.dumps(HOSTILE), "action": "save"})
    assert r.status == 303
    out = run_console("forms", server, project, page_origin, email)
    assert_safe(out)
    assert "browser-user-1" in out["personIds"]
    assert any("updated" in row and email in row for row in out["history"]), out["history"]
    assert "true" in out["testResult"] and "condition set 1" in out["testResult"].lower(), out["testResult"]
    assert any("b1@corp.example" in m for m in out["cohortMembers"]), out["cohortMembers"]
    # What the forms made is what posthog-python evaluates.
    ph = posthog.Posthog(project.token, host=server.url, sync_mode=True)
    try:
        assert ph.get_feature_flag("browser-flag", "browser-user-1") is True  # 100% after the edit
        assert ph.get_feature_flag("browser-flag", "someone-else") is False  # no corp email
        assert ph.get_feature_flag("pro-flag", "browser-user-1") is True  # in the Pro plan cohort
    finally:
        ph.shutdown()
    flag = server.store.get_flag_by_key(project.id, "browser-flag")
    assert flag["filters"]["groups"][0]["properties"] == [
        {"key": "email", "type": "person", "operator": "icontains", "value": "@corp.example"}]


def test_keys_created_once_and_revoked_and_members_refused(server, page_origin):  # noqa: F811
    project = Project(server)
    server.app.console.create_user("keys-admin@example.com", "admin", PASSWORD)
    out = run_console("keys", server, project, page_origin, "keys-admin@example.com")
    assert_safe(out)
    assert out["key"].startswith("phx_") and out["keyShownAgain"] is False and "revoked" in out["revokedRow"]
    r = http("GET", f"{server.url}/api/projects/{project.id}/", headers={"Authorization": f"Bearer {out['key']}"})
    assert r.status == 401
    server.app.console.create_user("just-member@example.com", "member", PASSWORD)
    out = run_console("member", server, project, page_origin, "just-member@example.com")
    assert out["refused"] == {"keys": 403, "users": 403}
    assert "API keys" not in out["nav"] and "Users" not in out["nav"] and "Feature flags" in out["nav"]


def test_a_cross_site_form_post_is_refused(server, page_origin):  # noqa: F811
    project = Project(server)
    server.app.console.create_user("csrf-admin@example.com", "admin", PASSWORD)
    out = run_console("crosssite", server, project, page_origin, "csrf-admin@example.com")
    assert out["crossSiteStatus"] == 403 and "another site" in out["crossSiteBody"], out
    assert "created by another site" not in [p["name"] for p in server.store.list_projects()]


INSIGHT_PAGES = [
    ["insight-trends", "insights/trends?s0.event=%24pageview&s0.math=dau&s1.event=purchase&date_from=-30d&compare=1"],
    ["insight-trends-breakdown", "insights/trends?s0.event=%24pageview&date_from=-30d&breakdown=%24browser"],
    ["insight-trends-bar", "insights/trends?s0.event=%24pageview&date_from=-30d&display=ActionsBar&compare=1"],
    ["insight-trends-value", "insights/trends?s0.event=%24pageview&date_from=-30d&breakdown=%24os"
                             "&display=ActionsBarValue"],
    ["insight-funnel", "insights/funnels?s0.event=%24pageview&s1.event=signed+up&s2.event=purchase&date_from=-30d"],
    ["insight-funnel-breakdown", "insights/funnels?s0.event=%24pageview&s1.event=signed+up&date_from=-30d"
                                 "&breakdown=%24browser"],
    ["insight-retention", "insights/retention?period=Day"],
    ["insight-web", "web?date_from=-30d"],
    ["insight-sql", "sql?q=SELECT+event%2C+properties.%24browser+AS+browser%2C+count()+AS+n+FROM+events"
                    "+GROUP+BY+event%2C+browser+ORDER+BY+n+DESC"],
    ["insight-sql-error", "sql?q=SELECT+nope+FROM+events"],
]


DASHBOARD_INSIGHTS = [
    ("Visitors", {"kind": "TrendsQuery", "dateRange": {"date_from": "-30d"}, "series": [
        {"kind": "EventsNode", "event": "$pageview", "math": "dau"}, {"kind": "EventsNode", "event": "signed up"}]}),
    ("Signup funnel", {"kind": "FunnelsQuery", "dateRange": {"date_from": "-30d"}, "series": [
        {"kind": "EventsNode", "event": "$pageview"}, {"kind": "EventsNode", "event": "signed up"},
        {"kind": "EventsNode", "event": "purchase"}]}),
    ("Weekly retention", {"kind": "RetentionQuery", "retentionFilter": {"period": "Week", "totalIntervals": 6}}),
    ("Overview", {"kind": "WebOverviewQuery", "dateRange": {"date_from": "-7d"}, "properties": []}),
    ("Revenue by browser", {"kind": "TrendsQuery", "dateRange": {"date_from": "-30d"},
                            "trendsFilter": {"display": "ActionsBarValue"},
                            "breakdownFilter": {"breakdown": "$browser"},
                            "series": [{"kind": "EventsNode", "event": "purchase", "math": "sum",
                                        "math_property": "price"}]}),
]


def test_insight_pages_draw_their_charts_in_chromium(server, page_origin):  # noqa: F811
    from insights_data import send_all, traffic

    project = Project(server, name="shop.example")
    hostile = [{"event": "$pageview", "distinct_id": HOSTILE, "properties": {
        "$browser": HOSTILE, "$os": HOSTILE, "$session_id": "hostile-session", "$pathname": HOSTILE,
        "utm_source": "newsletter", "utm_medium": HOSTILE, "utm_campaign": HOSTILE, "$geoip_country_code": HOSTILE}}]
    send_all(project, traffic(150, days=60, seed=11, extra=hostile))
    email = "insights-member@example.com"
    user, _ = server.app.console.create_user(email, "member", PASSWORD)
    board = server.app.insights.create_dashboard(project.id, {"name": "Every morning"}, {"user_id": user["id"]})
    for name, source in DASHBOARD_INSIGHTS:
        server.app.insights.create_insight(project.id, {"name": name, "query": {"kind": "InsightVizNode", "source": source},
                                                        "dashboards": [board["id"]]}, {"user_id": user["id"]})
    pages = INSIGHT_PAGES + [["insight-saved", "insights"], ["insight-dashboard", f"dashboards/{board['id']}"]]
    out = run_console("insights", server, project, page_origin, email, pages=pages)
    assert_safe(out)
    charts = out["charts"]
    for name, seen in charts.items():
        if name.startswith("insight-sql") or name in ("insight-trends-value", "insight-saved", "insight-dashboard"):
            continue  # tables there; the dashboard's smaller charts are checked below
        assert seen["svgs"] and all(w > 600 and h > 200 for w, h in seen["svgs"]), (name, seen)
        assert seen["error"] is None, (name, seen)
    assert charts["insight-trends"]["lines"] == 4 and len(charts["insight-trends"]["strokes"]) == 2
    assert charts["insight-trends-breakdown"]["lines"] >= 4
    assert HOSTILE in charts["insight-trends-breakdown"]["legend"]  # drawn as text, not run
    assert charts["insight-trends-bar"]["bars"] > 30 and charts["insight-trends-value"]["bars"] >= 5
    assert charts["insight-funnel"]["bars"] == 3 and charts["insight-funnel-breakdown"]["bars"] >= 8
    assert charts["insight-retention"]["lines"] == 1 and charts["insight-retention"]["tableRows"] == 9
    assert len(charts["insight-web"]["tiles"]) == 5 and charts["insight-web"]["lines"] == 2
    assert charts["insight-web"]["webTables"] == 11 and charts["insight-web"]["loading"] == 0
    assert HOSTILE in charts["insight-sql"]["sqlCells"] and "$pageview" in charts["insight-sql"]["sqlCells"]
    assert "Unable to resolve field: nope" in charts["insight-sql-error"]["error"]
    assert charts["insight-saved"]["tableRows"] == len(DASHBOARD_INSIGHTS)
    dash = charts["insight-dashboard"]
    assert len(dash["svgs"]) == 2 and dash["lines"] == 2 and dash["bars"] >= 3 and len(dash["tiles"]) == 5, dash
