"""Saved insights and dashboards over a real server (docs/insights.md "Saved insights and dashboards"):
PostHog's shapes, validation errors naming the field, project scoping, cached and refreshed results, and
a script written the way one writes against PostHog's API (plain `requests` with a personal key)."""

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from support import ROOT, InProcessServer, Project, assert_error, ev, send
from phlite.config import Config

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)
CLOCK = [NOW.timestamp()]


def day(n, hour=12):
    return (NOW - timedelta(days=n)).replace(hour=hour, minute=0, second=0).isoformat()


# Pageviews per day ago: the answer a daily trend over the last 7 days must give.
VIEWS = {0: 3, 1: 0, 2: 5, 3: 1, 4: 0, 5: 2, 6: 4, 7: 1, 12: 6}


def events():
    out = []
    for n, count in VIEWS.items():
        out += [ev("$pageview", f"u{i}", day(n), **{"$browser": "Firefox" if i % 2 else "Chrome"})
                for i in range(count)]
    out.append(ev("signup", "u1", day(2)))
    return out


def trends(**extra):
    return {"kind": "InsightVizNode", "source": {
        "kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total"}],
        "interval": "day", "dateRange": {"date_from": "-7d"}, **extra}}


def expected_daily(days_back=7):
    return [VIEWS.get(n, 0) for n in range(days_back, -1, -1)]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = InProcessServer(Config(data_dir=tmp_path_factory.mktemp("insights")), clock=lambda: CLOCK[0])
    yield s
    s.close()


@pytest.fixture(scope="module")
def project(srv):
    p = Project(srv, "insights")
    send(p, *events())
    return p


def create(project, body, status=201):
    r = project.api("POST", "/api/projects/@project/insights/", body)
    assert r.status == status, r.body
    return r.json()


def test_create_retrieve_and_the_posthog_shape(srv):
    project = Project(srv, "fresh")  # its own: this test adds an event
    send(project, *events())
    body = create(project, {"name": "Pageviews", "description": "daily", "query": trends(), "saved": True,
                            "tags": ["web"]})
    assert len(body["short_id"]) == 8 and body["short_id"].isalnum()
    assert body["result"][0]["data"] == expected_daily(), body["result"]
    assert body["name"] == "Pageviews" and body["description"] == "daily" and body["saved"] is True
    assert body["query"] == trends() and body["filters"] == {} and body["deleted"] is False
    assert body["dashboards"] == [] and body["dashboard_tiles"] == [] and body["tags"] == ["web"]
    assert body["created_by"] == {"personal_api_key_id": body["created_by"]["personal_api_key_id"]}
    assert body["created_at"] == body["last_modified_at"] == NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert body["timezone"] == "UTC" and body["favorited"] is False and body["is_cached"] is False
    for field in ("derived_name", "order", "last_refresh", "next_allowed_client_refresh", "hogql", "is_sample",
                  "effective_restriction_level", "effective_privilege_level", "user_access_level", "alerts",
                  "last_viewed_at", "updated_at", "last_modified_by", "resolved_date_range", "query_status"):
        assert field in body, field

    # A GET answers the kept result (PostHog's default is force_cache) until asked to refresh.
    send(project, ev("$pageview", "late", NOW.isoformat()))
    got = project.api("GET", f"/api/projects/@project/insights/{body['id']}/").json()
    assert got["is_cached"] is True and got["result"][0]["data"] == expected_daily()
    assert got["last_refresh"] == body["last_refresh"]
    fresh = project.api("GET", f"/api/projects/@project/insights/{body['id']}/?refresh=force_blocking").json()
    assert fresh["is_cached"] is False and fresh["result"][0]["data"][-1] == VIEWS[0] + 1
    # `blocking` reuses a result younger than a minute, and recomputes an older one.
    again = project.api("GET", f"/api/projects/@project/insights/{body['id']}/?refresh=blocking").json()
    assert again["is_cached"] is True
    CLOCK[0] += 61
    try:
        later = project.api("GET", f"/api/projects/@project/insights/{body['id']}/?refresh=blocking").json()
        assert later["is_cached"] is False
    finally:
        CLOCK[0] -= 61


def test_wrappers_and_kinds(project):
    table = create(project, {"query": {"kind": "DataTableNode", "source": {
        "kind": "HogQLQuery", "query": "select count() from events where event = '$pageview'"}}})
    assert table["result"] == [[sum(VIEWS.values())]] and table["columns"] == ["count()"]
    assert table["types"] and table["name"] is None
    bare = create(project, {"query": {"kind": "WebOverviewQuery", "dateRange": {"date_from": "-7d"},
                                      "properties": []}})
    assert [r["key"] for r in bare["result"]][:2] == ["visitors", "views"]
    pages = create(project, {"query": {"kind": "DataTableNode", "source": {
        "kind": "WebStatsTableQuery", "breakdownBy": "Browser", "dateRange": {"date_from": "-7d"}, "properties": []}}})
    assert pages["columns"][0] == "context.columns.breakdown_value" and pages["result"] == []  # no sessions here
    empty = create(project, {"name": "draft"})
    assert empty["query"] is None and empty["result"] is None


@pytest.mark.parametrize("body, attr", [
    ({"name": 5}, "name"),
    ({"name": "x" * 401}, "name"),
    ({"saved": "yes"}, "saved"),
    ({"tags": "web"}, "tags"),
    ({"dashboards": ["1"]}, "dashboards"),
    ({"dashboards": [999999]}, "dashboards"),
    ({"filters": {"insight": "TRENDS", "events": [{"id": "$pageview"}]}}, "filters"),
    ({"query": "select 1"}, "query"),
    ({"query": {"kind": "PathsQuery"}}, "query"),
    ({"query": {"kind": "InsightVizNode"}}, "query"),
    ({"query": {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery", "series": [], "bogus": 1}}}, "query"),
    ({"query": {"kind": "DataTableNode", "source": {"kind": "HogQLQuery", "query": "select nope from events"}}},
     "query"),
])
def test_validation_errors_name_the_field(project, body, attr):
    r = project.api("POST", "/api/projects/@project/insights/", body)
    assert_error(r, 400, type="validation_error", attr=attr)


def test_update_favorite_and_soft_delete(project):
    made = create(project, {"name": "A", "query": trends()})
    url = f"/api/projects/@project/insights/{made['id']}/"
    CLOCK[0] += 5
    try:
        r = project.api("PATCH", url, {"favorited": True})
        assert r.status == 200 and r.json()["favorited"] is True
        assert r.json()["last_modified_at"] == made["last_modified_at"]  # favouriting is no modification
        r = project.api("PATCH", url, {"name": "B", "id": 12345, "short_id": "ignored", "result": [1]})
        assert r.status == 200 and r.json()["name"] == "B" and r.json()["short_id"] == made["short_id"]
        assert r.json()["last_modified_at"] != made["last_modified_at"]
        assert r.json()["result"] == made["result"]  # the same query: the kept result
        r = project.api("PATCH", url, {"query": trends(dateRange={"date_from": "-14d"})})
        assert r.status == 200 and r.json()["result"][0]["data"] == expected_daily(14)
    finally:
        CLOCK[0] -= 5
    assert_error(project.api("DELETE", url), 405)
    r = project.api("PATCH", url, {"deleted": True})
    assert r.status == 200 and r.json()["deleted"] is True
    assert_error(project.api("GET", url), 404)
    assert_error(project.api("PATCH", url, {"name": "C"}), 404)
    listed = project.api("GET", "/api/projects/@project/insights/?limit=1000").json()
    assert made["id"] not in [i["id"] for i in listed["results"]]
    # Restoring is PATCH deleted: false, as in PostHog.
    assert project.api("PATCH", url, {"deleted": False}).json()["deleted"] is False
    activity = project.api("GET", f"{url}activity/").json()
    assert [a["activity"] for a in activity["results"]] == ["restored", "deleted", "updated", "updated",
                                                             "updated", "created"]
    assert activity["results"][3]["detail"]["changes"][0]["field"] == "name"


def test_list_pagination_and_filters(project):
    for i in range(3):
        create(project, {"name": f"page-{i}", "saved": i != 1})
    first = project.api("GET", "/api/projects/@project/insights/?limit=2&search=page-").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["previous"] is None
    assert [i["name"] for i in first["results"]] == ["page-2", "page-1"]  # last modified first
    second = project.api("GET", first["next"].replace(project.url, "")).json()
    assert [i["name"] for i in second["results"]] == ["page-0"] and second["next"] is None
    saved = project.api("GET", "/api/projects/@project/insights/?search=page-&saved=true").json()
    assert {i["name"] for i in saved["results"]} == {"page-0", "page-2"}
    one = first["results"][0]
    by_short = project.api("GET", f"/api/projects/@project/insights/?short_id={one['short_id']}").json()
    assert [i["id"] for i in by_short["results"]] == [one["id"]]
    basic = project.api("GET", "/api/projects/@project/insights/?basic=true&limit=1").json()["results"][0]
    assert "result" not in basic and "query" not in basic and "short_id" in basic
    assert_error(project.api("GET", "/api/projects/@project/insights/?limit=0"), 400, attr="limit")
    assert_error(project.api("GET", "/api/projects/@project/insights/?refresh=sometimes"), 400, attr="refresh")


def test_dashboards_tiles_and_filters(project):
    r = project.api("POST", "/api/projects/@project/dashboards/", {"name": "Growth", "description": "d"})
    assert r.status == 201, r.body
    board = r.json()
    assert board["tiles"] == [] and board["name"] == "Growth" and board["creation_mode"] == "default"
    made = create(project, {"name": "on board", "query": trends(), "dashboards": [board["id"]]})
    assert made["dashboards"] == [board["id"]]
    assert made["dashboard_tiles"][0]["dashboard_id"] == board["id"]
    url = f"/api/projects/@project/dashboards/{board['id']}/"
    got = project.api("GET", url + "?refresh=blocking").json()
    assert len(got["tiles"]) == 1 and got["tiles"][0]["insight"]["id"] == made["id"]
    assert got["tiles"][0]["insight"]["result"][0]["data"][:-1] == expected_daily()[:-1]
    tile_id = got["tiles"][0]["id"]
    layouts = {"sm": {"x": 0, "y": 0, "w": 6, "h": 5}}
    r = project.api("PATCH", url, {"tiles": [{"id": tile_id, "layouts": layouts},
                                             {"text": {"body": "Read me"}}]})
    assert r.status == 200, r.body
    tiles = r.json()["tiles"]
    assert tiles[0]["layouts"] == layouts and tiles[1]["text"] == {"body": "Read me"} and tiles[1]["insight"] is None
    # The dashboard's date range overrides each tile's (PostHog's filters_override).
    r = project.api("PATCH", url, {"filters": {"date_from": "-14d"}})
    assert r.status == 200 and r.json()["filters"] == {"date_from": "-14d"}
    got = project.api("GET", url + "?refresh=force_blocking").json()
    assert got["tiles"][0]["insight"]["result"][0]["data"][:8] == expected_daily(14)[:8]
    alone = project.api("GET", f"/api/projects/@project/insights/{made['id']}/").json()
    assert len(alone["result"][0]["data"]) == 8  # outside the dashboard: its own range
    via = project.api("GET", f"/api/projects/@project/insights/{made['id']}/?from_dashboard={board['id']}").json()
    assert len(via["result"][0]["data"]) == 15
    # Taking the insight off the dashboard through its `dashboards` list; unknown tiles are a 400.
    assert project.api("PATCH", f"/api/projects/@project/insights/{made['id']}/", {"dashboards": []}).json()[
        "dashboards"] == []
    assert [t["insight"] for t in project.api("GET", url).json()["tiles"]] == [None]
    assert_error(project.api("PATCH", url, {"tiles": [{"id": 10**9, "layouts": {}}]}), 400, attr="tiles")
    assert_error(project.api("PATCH", url, {"filters": {"breakdown_filter": {"breakdown": "$browser"}}}), 400,
                 attr="filters")
    assert_error(project.api("POST", "/api/projects/@project/dashboards/", {"pinned": "no"}), 400, attr="pinned")
    listed = project.api("GET", "/api/projects/@project/dashboards/").json()
    assert board["id"] in [d["id"] for d in listed["results"]] and "tiles" not in listed["results"][0]
    assert_error(project.api("DELETE", url), 405)
    assert project.api("PATCH", url, {"deleted": True}).json()["deleted"] is True
    assert_error(project.api("GET", url), 404)
    log = project.api("GET", f"{url}activity/").json()["results"]
    assert [a["activity"] for a in log] == ["deleted", "updated", "updated", "created"]  # tiles, then filters
    assert {c["field"] for c in log[1]["detail"]["changes"]} == {"filters"}


def test_project_scoping(srv, project):
    mine = create(project, {"name": "mine", "query": trends()})
    other = Project(srv, "other")
    # The other project's key, in its own project: the insight is not there.
    assert_error(other.api("GET", f"/api/projects/@project/insights/{mine['id']}/"), 404)
    assert_error(other.api("PATCH", f"/api/projects/@project/insights/{mine['id']}/", {"name": "x"}), 404)
    assert other.api("GET", "/api/projects/@project/insights/").json()["count"] == 0
    r = other.api("POST", "/api/projects/@project/dashboards/", {"name": "theirs"})
    theirs = r.json()["id"]
    # Nor can it put a tile of that insight on its dashboard, or an insight of its own on ours.
    assert_error(other.api("PATCH", f"/api/projects/@project/dashboards/{theirs}/",
                           {"tiles": [{"insight": mine["id"]}]}), 400, attr="tiles")
    assert_error(project.api("POST", "/api/projects/@project/insights/", {"dashboards": [theirs]}), 400,
                 attr="dashboards")
    # Our project's id with their key: not theirs to use.
    assert_error(other.api("GET", f"/api/projects/{project.id}/insights/{mine['id']}/"), 403)
    assert_error(project.api("GET", "/api/projects/@project/insights/", headers={"Authorization": ""}), 401)
    # The environments alias answers the same.
    r = project.api("GET", f"/api/environments/@project/insights/{mine['id']}/")
    assert r.status == 200 and r.json()["id"] == mine["id"]


def test_a_console_user_is_the_author(srv, project):
    user, _ = srv.app.console.create_user("analyst@example.com", "member", "correct horse battery")
    made = srv.app.insights.create_insight(project.id, {"name": "from the console"}, {"user_id": user["id"]})
    assert made["created_by"]["email"] == "analyst@example.com"
    got = project.api("GET", f"/api/projects/@project/insights/{made['id']}/").json()
    assert got["created_by"]["id"] == user["id"]


SCRIPT = textwrap.dedent("""
    import os, sys
    import requests

    host, key, project = os.environ["POSTHOG_HOST"], os.environ["POSTHOG_KEY"], os.environ["POSTHOG_PROJECT"]
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {key}"
    base = f"{host}/api/projects/{project}"
    dash = s.post(f"{base}/dashboards/", json={"name": "Morning"}).json()
    insight = s.post(f"{base}/insights/", json={
        "name": "Signups", "dashboards": [dash["id"]], "saved": True,
        "query": {"kind": "InsightVizNode", "source": {
            "kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "signup", "math": "total"}],
            "dateRange": {"date_from": "-7d"}, "interval": "day"}}})
    insight.raise_for_status()
    got = s.get(f"{base}/insights/{insight.json()['id']}/", params={"refresh": "blocking"}).json()
    board = s.get(f"{base}/dashboards/{dash['id']}/").json()
    print(sum(got["result"][0]["data"]), board["tiles"][0]["insight"]["name"],
          sum(board["tiles"][0]["insight"]["result"][0]["data"]))
""")


def test_a_posthog_api_script(project):
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={"POSTHOG_HOST": project.url, "POSTHOG_KEY": project.key,
                              "POSTHOG_PROJECT": str(project.id), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "Signups", "1"]


def test_a_dashboard_or_list_answer_is_bounded(project, monkeypatch):
    from phlite.insights import service

    board = project.api("POST", "/api/projects/@project/dashboards/", {"name": "Big"}).json()
    for name in ("first", "second"):
        create(project, {"name": name, "query": trends(), "dashboards": [board["id"]]})
    url = f"/api/projects/@project/dashboards/{board['id']}/?refresh=force_blocking"
    assert all(t["insight"]["result"] for t in project.api("GET", url).json()["tiles"])
    # Past the byte budget, later tiles come without their results (and without running their queries).
    monkeypatch.setattr(service, "MAX_ANSWER_BYTES", 1)
    tiles = project.api("GET", url).json()["tiles"]
    assert tiles[0]["insight"]["result"] and tiles[1]["insight"]["result"] is None
    # A list answer too.
    listed = project.api("GET", "/api/projects/@project/insights/?search=first").json()["results"]
    assert listed[0]["result"]
    listed = project.api("GET", "/api/projects/@project/insights/?limit=2").json()["results"]
    assert listed[0]["result"] and listed[1]["result"] is None


@pytest.mark.parametrize("big", [1 << 63, 1 << 64])
def test_ids_past_64_bits(project, big):
    for path in (f"/api/projects/@project/insights/{big}/", f"/api/projects/@project/dashboards/{big}/",
                 f"/api/projects/@project/insights/{big}/activity/"):
        assert_error(project.api("GET", path), 404)
    assert_error(project.api("PATCH", f"/api/projects/@project/insights/{big}/", {"name": "x"}), 404)
    assert_error(project.api("POST", "/api/projects/@project/insights/", {"dashboards": [big]}), 400,
                 attr="dashboards")
    assert_error(project.api("POST", "/api/projects/@project/dashboards/", {"use_dashboard": big}), 400,
                 attr="use_dashboard")
    board = project.api("POST", "/api/projects/@project/dashboards/", {"name": "ids"}).json()
    url = f"/api/projects/@project/dashboards/{board['id']}/"
    assert_error(project.api("PATCH", url, {"tiles": [{"id": big}]}), 400, attr="tiles")
    assert_error(project.api("PATCH", url, {"tiles": [{"insight": big}]}), 400, attr="tiles")
    made = create(project, {"name": "x"})
    assert_error(project.api("GET", f"/api/projects/@project/insights/{made['id']}/?from_dashboard={big}"), 400,
                 attr="from_dashboard")


def test_the_query_endpoint_takes_a_dashboards_filters_override(project):
    source = trends()["source"]
    r = project.api("POST", "/api/projects/@project/query/", {"query": source, "filters_override": {
        "date_from": "-14d", "properties": [{"key": "$browser", "value": "Chrome", "operator": "exact"}]}})
    assert r.status == 200, r.body
    chrome = [sum(1 for i in range(VIEWS.get(n, 0)) if i % 2 == 0) for n in range(14, -1, -1)]
    assert r.json()["results"][0]["data"] == chrome
    r = project.api("POST", "/api/projects/@project/query/", {"query": source, "filters_override": {
        "breakdown_filter": {"breakdown": "$browser"}}})
    assert_error(r, 400, attr="filters_override")


def test_an_insight_whose_stored_query_no_longer_runs_still_reads(srv, project):
    # As a data dir from another phlite could hold: a node this build does not run.
    row = srv.store.create_insight(project.id, {"name": "paths", "query": {"kind": "PathsQuery"}}, [],
                                   {"key_id": None}, int(NOW.timestamp() * 1000))
    url = f"/api/projects/@project/insights/{row['id']}/"
    got = project.api("GET", url)
    assert got.status == 200 and got.json()["result"] is None and got.json()["query"] == {"kind": "PathsQuery"}
    assert_error(project.api("GET", url + "?refresh=force_blocking"), 400, attr="query")
    assert project.api("PATCH", url, {"name": "renamed"}).json()["name"] == "renamed"
    listed = project.api("GET", "/api/projects/@project/insights/?search=renamed").json()["results"]
    assert [i["id"] for i in listed] == [row["id"]]


def test_a_kept_result_is_not_reused_after_the_project_zone_changes(srv):
    project = Project(srv, "zones")
    send(project, *events())
    made = create(project, {"name": "daily", "query": trends()})
    url = f"/api/projects/@project/insights/{made['id']}/"
    assert project.api("GET", url).json()["result"] == made["result"]
    r = project.api("PATCH", "/api/projects/@project/", {"timezone": "Asia/Tokyo"})
    assert r.status == 200, r.body
    got = project.api("GET", url).json()
    assert got["result"] is None and got["timezone"] == "Asia/Tokyo"  # its days were UTC's
    fresh = project.api("GET", url + "?refresh=blocking").json()
    assert made["result"][0]["days"][0] == "2026-11-25" and fresh["result"][0]["days"][0] == "2026-11-26"
