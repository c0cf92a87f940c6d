"""posthog-js and mixpanel-browser, unmodified, in a real headless Chromium against phlite.

tests/js/browser.mjs drives Debian's chromium through playwright-core. The test pages and the
SDK bundles come from a second local server (another port), so every request to phlite is
cross-origin and CORS is what a real site gets. Results are read back through phlite's API.
"""

import json
import shutil
import subprocess
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from support import ROOT, Subprocess, admin, http

JS = ROOT / "tests" / "js"
MODULES = JS / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("node") is None or not (MODULES / "playwright-core").is_dir() or not CHROMIUM.exists(),
        reason="node, tests/js/node_modules or /usr/bin/chromium missing (tests/run.sh installs them)",
    ),
]

# What the page server serves: the test pages and the SDKs' npm builds, as they are installed.
PAGE_FILES = {
    "/posthog.html": JS / "pages" / "posthog.html",
    "/mixpanel.html": JS / "pages" / "mixpanel.html",
    "/away.html": JS / "pages" / "away.html",
    "/snippet.html": JS / "pages" / "snippet.html",
    "/csrf.html": JS / "pages" / "csrf.html",  # tests/test_console_browser.py
    "/posthog-js.js": MODULES / "posthog-js" / "dist" / "module.js",
    "/mixpanel-browser.js": MODULES / "mixpanel-browser" / "dist" / "mixpanel.module.js",
}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        target = PAGE_FILES.get(self.path.split("?")[0])
        if target is None:
            self.send_error(404)
            return
        body = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", TYPES[target.suffix])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_origin():
    """A second origin (another port on 127.0.0.1) serving the test pages."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run_browser(scenario, project, page_origin):
    """Runs one scenario of tests/js/browser.mjs; `project` needs .url, .token, .id and .key."""
    proc = subprocess.run(
        ["node", "browser.mjs", scenario, project.url, project.token, page_origin, str(project.id), project.key],
        cwd=JS, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in out, describe(out)
    return out


def describe(out):
    """A failure message: the error, console lines and the requests without their bodies."""
    summary = [f"{r['method']} {r['path']} {r['type']} {r['status']} {r['error'] or ''}" for r in out["requests"]]
    return "\n".join([out.get("error", ""), *out["console"], *out["pageErrors"], *summary])


def create_flags(project):
    """A boolean flag with a payload, a multivariate flag whose every user gets "test", an inactive flag."""
    flags = [
        {"key": "beta-bool", "name": "Beta", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                     "payloads": {"true": json.dumps({"color": "blue"})}}},
        {"key": "multi", "name": "Multivariate", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                     "multivariate": {"variants": [{"key": "control", "rollout_percentage": 0},
                                                   {"key": "test", "rollout_percentage": 100}]},
                     "payloads": {"test": json.dumps("test payload")}}},
        {"key": "off-flag", "name": "Off", "active": False,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}},
    ]
    for body in flags:
        r = project.api("POST", "/api/projects/@project/feature_flags/", body)
        assert r.status in (200, 201), r.body


def persons_of(project, distinct_id):
    r = project.api("GET", f"/api/projects/@project/persons/?distinct_id={quote(distinct_id)}")
    assert r.status == 200, r.body
    return r.json()["results"]


def sent_events(requests):
    """The events the page's requests carried: posthog-js {batch: [...]}, Mixpanel arrays or objects."""
    out = []
    for r in requests:
        body = r["body"]
        if r["method"] != "POST" or r["path"].startswith("/flags") or body is None:
            continue
        out.extend(body if isinstance(body, list) else body.get("batch", [body]))
    return out


def assert_stored_once(events, requests):
    """No event stored twice, and each event a request carried stored exactly once."""
    ids = Counter(e["id"] for e in events)
    assert [u for u, n in ids.items() if n > 1] == []
    sent = [e["uuid"] for e in sent_events(requests) if "uuid" in e]
    assert all(ids[u] == 1 for u in sent), [u for u in sent if ids[u] != 1]


def test_posthog_js(project, page_origin):
    """posthog-js 1.449.2 (npm dist/module.js): remote config, $pageview, autocapture, flags and
    payloads, identify (merge, $anon_distinct_id on /flags), group, unload beacon, no duplicates."""
    create_flags(project)
    out = run_browser("posthog", project, page_origin)
    requests = out["requests"]

    # The remote config came from config.js (no JSON fallback), and every answer phlite gave the
    # page was a 200 that CORS let through. The one exception: posthog-js's npm build fetches the
    # surveys extension even when the config says `surveys: false` (it then stays off), and
    # /static/ answers 404 JSON without static_dir; the failed script load is harmless.
    paths = [r["path"] for r in requests]
    assert f"/array/{project.token}/config.js" in paths
    assert f"/array/{project.token}/config" not in paths
    static = [r for r in requests if r["path"].startswith("/static/")]
    assert {r["path"] for r in static} <= {"/static/1.449.2/surveys.js", "/static/surveys.js"}, static
    assert [r for r in requests if r["status"] != 200 and r not in static] == []
    assert not [c for c in out["console"] if "CORS" in c or "Access-Control" in c], out["console"]
    # gzip bodies (the remote config's supportedCompression), no JSON fallback; the events go to
    # the config's analytics endpoint once the config is in.
    posts = [r for r in requests if r["method"] == "POST"]
    assert posts and all(r["contentType"].startswith("text/plain") for r in posts), posts
    assert any(r["path"] == "/i/v0/e/" for r in posts), paths

    # Flags, as the SDK reads them (an inactive flag is not in the response: undefined).
    assert out["flagsCallback"]["errorsLoading"] is False
    assert out["flags"] == {
        "enabled": True, "disabled": None, "variant": "test",
        "boolPayload": {"color": "blue"}, "variantPayload": "test payload", "missing": None,
    }
    assert out["flagsAfterIdentifyBody"]["$anon_distinct_id"] == out["anonId"]
    assert out["flagsAfterIdentifyBody"]["distinct_id"] == "ph-user-1"

    # The events queued when the page was left went by sendBeacon (never by fetch) and arrived.
    assert out["beacons"] and all(b["ok"] and b["url"].startswith(project.url) for b in out["beacons"])
    assert out["fetchedBeforeLeave"] == 0

    events = project.events()
    assert_stored_once(events, requests)
    names = Counter(e["event"] for e in events)
    assert names["$pageview"] == 1
    assert names["$identify"] == 1
    assert names["before-leave-1"] == names["before-leave-2"] == 1
    autocaptures = [e for e in events if e["event"] == "$autocapture"]
    assert len(autocaptures) == 1
    assert autocaptures[0]["properties"]["$event_type"] == "click"
    assert "buy-button" in autocaptures[0]["properties"]["$elements_chain"]
    pageview = next(e for e in events if e["event"] == "$pageview")
    assert pageview["distinct_id"] == out["anonId"]
    assert pageview["properties"]["$current_url"].startswith(page_origin)

    # identify merged the anonymous visitor into the identified person.
    [person] = persons_of(project, "ph-user-1")
    assert set(person["distinct_ids"]) == {out["anonId"], "ph-user-1"}
    assert person["properties"]["email"] == "ph-user-1@example.com"
    assert persons_of(project, out["anonId"]) == [person]

    # group() made the group profile.
    r = project.api("GET", "/api/projects/@project/groups_types/")
    index = next(t["group_type_index"] for t in r.json() if t["group_type"] == "company")
    r = project.api("GET", f"/api/projects/@project/groups/find?group_type_index={index}&group_key=acme")
    assert r.status == 200, r.body
    assert r.json()["group_properties"] == {"name": "Acme", "seats": 10}
    assert names["$groupidentify"] == 1


def test_mixpanel_browser(project, page_origin):
    """mixpanel-browser 2.83.0 (npm dist/mixpanel.module.js, `flags: true`): GET /flags variants,
    track, identify (merge of the $device: id), people.set, no duplicates."""
    create_flags(project)
    out = run_browser("mixpanel", project, page_origin)
    requests = out["requests"]
    assert [r for r in requests if r["status"] != 200] == []
    assert out["flags"] == {"variant": "test", "enabled": True, "disabled": False, "missing": "fallback"}
    assert out["identifiedId"] == "mp-user-1"
    assert out["variantAfterIdentify"] == "test"

    events = project.events()
    assert_stored_once(events, requests)
    names = Counter(e["event"] for e in events)
    assert names["mp-browser-event"] == 1
    assert names["$mp_web_page_view"] == 1
    # One identify sent through /track (it carries mp_lib); people.set arrives from /engage as $identify
    # events too (phlite's Mixpanel conversion), which carry only what the client sent: no mp_lib.
    assert len([e for e in events if e["event"] == "$identify" and "mp_lib" in e["properties"]]) == 1
    insert_ids = Counter(e["properties"].get("$insert_id") for e in events if "$insert_id" in e["properties"])
    sent = [e["properties"]["$insert_id"] for e in sent_events(requests) if "properties" in e]
    assert sent and all(insert_ids[i] == 1 for i in sent), insert_ids
    tracked = next(e for e in events if e["event"] == "mp-browser-event")
    assert tracked["distinct_id"] == out["anonId"]
    assert tracked["properties"]["plan"] == "pro"
    assert tracked["properties"]["mp_lib"] == "web"

    [person] = persons_of(project, "mp-user-1")
    assert set(person["distinct_ids"]) >= {out["anonId"], "mp-user-1"}
    assert person["properties"]["name"] == "MP User"
    assert person["properties"]["email"] == "mp-user-1@example.com"


class AppProject:
    """The first-start project of a `python app.py` subprocess, and the key it printed."""

    def __init__(self, srv, data_dir):
        [p] = admin(data_dir, "project", "list", "--json")
        self.url, self.id, self.token = srv.url, p["id"], p["api_token"]
        self.key = "".join(srv.output).split("shown once, store it): ")[1].split()[0]

    def events(self):
        r = http("GET", f"{self.url}/api/projects/{self.id}/events/?limit=1000",
                 headers={"Authorization": f"Bearer {self.key}"})
        assert r.status == 200, r.body
        return r.json()["results"]


def test_posthog_js_snippet_against_app_py(tmp_path, page_origin):
    """`python app.py --static-dir <posthog-js dist>`: PostHog's HTML snippet loads
    <api_host>/static/array.js, and phlite serves the SDK (and its lazy surveys extension) itself."""
    srv = Subprocess(tmp_path, "--static-dir", str(MODULES / "posthog-js" / "dist"))
    try:
        project = AppProject(srv, tmp_path)
        out = run_browser("snippet", project, page_origin)
        requests = out["requests"]
        served = {r["path"]: r["status"] for r in requests if r["path"].startswith("/static/")}
        assert served["/static/array.js"] == 200
        # The versioned extension path is not in dist/ (404 JSON); the SDK then asks for the plain one.
        assert served["/static/surveys.js"] == 200, served
        assert [r for r in requests if r["status"] != 200 and not r["path"].startswith("/static/1.449.2/")] == []
        assert not [c for c in out["console"] if "CORS" in c or "Access-Control" in c], out["console"]

        # browser.mjs waited until phlite had stored the $pageview.
        events = project.events()
        assert Counter(e["event"] for e in events)["$pageview"] == 1
        pageview = next(e for e in events if e["event"] == "$pageview")
        assert pageview["properties"]["$lib_version"] == out["libVersion"] == "1.449.2"
    finally:
        assert srv.terminate() == 0
