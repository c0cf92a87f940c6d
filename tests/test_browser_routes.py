"""The routes posthog-js fetches besides capture and flags (phlite/web/browser.py), over HTTP:
the remote config as script and JSON, the empty survey/experiment/tour lists, /static/, CORS."""

import json
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest

from support import http

ORIGIN = "http://shop.example:3000"
BOOL_FLAG = {"key": "on", "active": True, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}


def get(url, **headers):
    return http("GET", url, headers={"Origin": ORIGIN, **headers})


def assert_cors(r):
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Allow-Credentials"] == "true"


def script_config(body, token):
    """The object config.js stores in window._POSTHOG_REMOTE_CONFIG[token]."""
    text = body.decode()
    marker = f"window._POSTHOG_REMOTE_CONFIG[{json.dumps(token)}]="
    assert text.startswith("(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};")
    assert marker in text
    return json.loads(text.split(marker, 1)[1].rsplit(";})();", 1)[0])


def test_remote_config_script_and_json(project):
    r = get(f"{project.url}/array/{project.token}/config.js")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/javascript")
    assert_cors(r)
    stored = script_config(r.body, project.token)
    assert stored["siteApps"] == []
    config = stored["config"]

    for path in (f"/array/{project.token}/config", f"/array/{project.token}/config/"):
        r = get(project.url + path)
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        assert_cors(r)
        assert r.json() == config

    assert config["token"] == project.token
    assert config["supportedCompression"] == ["gzip", "gzip-js"]
    assert config["autocapture_opt_out"] is False
    assert config["elementsChainAsString"] is True
    assert config["analytics"] == {"endpoint": "/i/v0/e/"}
    assert config["siteApps"] == []
    for product in ("sessionRecording", "heatmaps", "surveys", "productTours", "capturePerformance",
                    "autocaptureExceptions", "captureDeadClicks"):
        assert config[product] is False, product


def test_has_feature_flags_follows_the_active_flags(project):
    def has_flags():
        return get(f"{project.url}/array/{project.token}/config").json()["hasFeatureFlags"]

    assert has_flags() is False
    r = project.api("POST", "/api/projects/@project/feature_flags/", {**BOOL_FLAG, "key": "off", "active": False})
    assert r.status == 201, r.body
    assert has_flags() is False
    r = project.api("POST", "/api/projects/@project/feature_flags/", BOOL_FLAG)
    assert r.status == 201, r.body
    assert has_flags() is True
    assert script_config(get(f"{project.url}/array/{project.token}/config.js").body,
                         project.token)["config"]["hasFeatureFlags"] is True


@pytest.mark.parametrize("path", ["/array/phc_unknown/config.js", "/array/phc_unknown/config"])
def test_unknown_token_is_404_json(server, path):
    r = get(server.url + path)
    assert r.status == 404
    assert r.headers["Content-Type"] == "application/json"
    assert_cors(r)
    assert r.json()["code"] == "not_found"


def test_preflight(project):
    r = http("OPTIONS", f"{project.url}/array/{project.token}/config",
             headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
                      "Access-Control-Request-Headers": "content-type,traceparent"})
    assert r.status == 200
    assert_cors(r)
    assert r.headers["Access-Control-Allow-Headers"] == "content-type,traceparent"
    assert "GET" in r.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("path,body", [
    ("/api/surveys/", {"surveys": []}),
    ("/api/surveys", {"surveys": []}),
    ("/api/web_experiments/", {"experiments": []}),
    ("/api/product_tours/", {"product_tours": []}),
])
def test_empty_product_lists(project, path, body):
    r = get(f"{project.url}{path}?token={project.token}")
    assert r.status == 200
    assert_cors(r)
    assert r.json() == body


def test_static_is_404_json_without_static_dir(server):
    r = get(server.url + "/static/1.449.2/surveys.js")
    assert r.status == 404
    assert r.headers["Content-Type"] == "application/json"
    assert_cors(r)


def raw_get(url, path):
    """GET with the path sent exactly as given (urllib would normalise `..`)."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", path, headers={"Origin": ORIGIN})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_static_dir_is_served_without_traversal(make_server, tmp_path):
    assets = tmp_path / "assets"
    (assets / "1.449.2").mkdir(parents=True)
    (assets / "surveys.js").write_text("window.surveys = 1;")
    (assets / "1.449.2" / "surveys.js").write_text("window.surveys = 2;")
    (assets / ".hidden").write_text("no")
    (tmp_path / "secret.txt").write_text("no")
    srv = make_server(static_dir=assets)

    r = get(srv.url + "/static/surveys.js?v=1.449.2")
    assert r.status == 200 and r.body == b"window.surveys = 1;"
    assert "javascript" in r.headers["Content-Type"]
    assert_cors(r)
    assert get(srv.url + "/static/1.449.2/surveys.js").body == b"window.surveys = 2;"

    for path in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/1.449.2/../../secret.txt",
                 "/static/.hidden", "/static/missing.js", "/static/1.449.2", "/static/%2fetc%2fpasswd"):
        status, body = raw_get(srv.url, path)
        assert status == 404, path
        assert json.loads(body)["code"] == "not_found"
