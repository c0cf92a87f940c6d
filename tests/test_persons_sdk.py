"""Real SDK flows for persons and groups against a real phlite: posthog-python (set, set_once,
alias, group_identify), posthog-node (identify with properties inside `properties`, alias,
groupIdentify) and posthog-js-shaped payloads; results read back through the API."""

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest
from posthog import Posthog

from support import http, person

JS = Path(__file__).resolve().parent / "js"


def group(project, index, key):
    r = project.api("GET", "/api/projects/@project/groups/find?" + urlencode({"group_type_index": index,
                                                                              "group_key": key}))
    return r.json() if r.status == 200 else None


def test_posthog_python_set_set_once_alias_group_identify(project):
    errors = []
    c = Posthog(project.token, host=project.url, on_error=lambda e, batch: errors.append(e), max_retries=0)
    c.capture("signup", distinct_id="py-anon", properties={"$current_url": "https://app.example/signup"})
    c.set(distinct_id="py-user", properties={"email": "py@example.com", "plan": "free"})
    c.set(distinct_id="py-user", properties={"plan": "pro"})
    c.set_once(distinct_id="py-user", properties={"first_plan": "free"})
    c.set_once(distinct_id="py-user", properties={"first_plan": "ignored"})
    c.alias(previous_id="py-anon", distinct_id="py-user")
    c.capture("purchase", distinct_id="py-user", groups={"company": "acme", "team": "core"})
    c.group_identify("company", "acme", {"name": "Acme Inc", "employees": 11})
    c.group_identify("company", "acme", {"employees": 12})
    c.flush()
    c.shutdown()
    assert not errors, errors
    project.flush()

    p = person(project, "py-user")
    assert p == person(project, "py-anon")
    assert p["distinct_ids"] == ["py-anon", "py-user"]
    assert p["is_identified"] is True
    props = p["properties"]
    assert {k: props[k] for k in ("email", "plan", "first_plan", "$current_url", "$initial_current_url")} == {
        "email": "py@example.com", "plan": "pro", "first_plan": "free",
        "$current_url": "https://app.example/signup", "$initial_current_url": "https://app.example/signup"}
    assert "$os" not in props  # posthog-python events are $is_server: the server's OS is not the person's

    types = project.api("GET", "/api/projects/@project/groups_types/").json()
    assert types == [{"group_type": "company", "group_type_index": 0}, {"group_type": "team", "group_type_index": 1}]
    assert group(project, 0, "acme")["group_properties"] == {"name": "Acme Inc", "employees": 12}
    (purchase,) = project.events(event="purchase")
    assert purchase["properties"]["$group_0"] == "acme" and purchase["properties"]["$group_1"] == "core"
    # group_identify never touches person properties
    assert "name" not in props and "employees" not in props


@pytest.mark.skipif(shutil.which("node") is None or not (JS / "node_modules" / "posthog-node").is_dir(),
                    reason="node or tests/js/node_modules missing (tests/run.sh installs them)")
@pytest.mark.parametrize("capture_mode", ["v0", "v1"])  # v1: /i/v1/analytics/events, posthog-node's env switch
def test_posthog_node_identify_alias_group_identify(project, capture_mode):
    env = {**os.environ, "POSTHOG_CAPTURE_MODE": capture_mode}
    out = subprocess.run(["node", "node_persons.mjs", project.url, project.token], cwd=JS,
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    project.flush()

    p = person(project, "node-user")
    assert sorted(p["distinct_ids"]) == ["node-anon", "node-legacy-id", "node-user"]
    assert person(project, "node-anon") == p == person(project, "node-legacy-id")
    assert p["is_identified"] is True
    props = p["properties"]
    assert {k: props.get(k) for k in ("email", "plan", "first_plan", "name", "$initial_current_url")} == {
        "email": "node@example.com", "plan": "pro", "first_plan": "pro", "name": "Node User",
        "$initial_current_url": "https://shop.example/"}
    assert group(project, 0, "acme") == {**group(project, 0, "acme"),
                                         "group_properties": {"name": "Acme", "employees": 11}}
    (purchase,) = project.events(event="purchase")
    assert purchase["properties"]["$group_0"] == "acme"
    names = sorted(e["event"] for e in project.events(person_id=p["uuid"]))
    assert names == ["$create_alias", "$identify", "$identify", "pageview", "purchase"]


@pytest.mark.parametrize("one_request", [False, True], ids=["two-requests", "one-group-commit"])
def test_anonymous_visitor_who_identifies_is_one_person(project, one_request):
    """posthog-js's shape (top-level $set/$set_once on $identify, `$process_person_profile:
    false` while anonymous with person_profiles 'identified_only', then an $identify).

    In one request the person is created and changed within one group commit: the events after
    the creating one must still see an existing person (it was a flaky failure under load)."""
    base = {"$lib": "web", "$browser": "Firefox", "$os": "Mac OS X", "$device_id": "dev-1",
            "$current_url": "https://site.example/pricing?utm_source=news", "utm_source": "news"}

    def post(events):
        r = http("POST", project.url + "/e/", {"api_key": project.token, "batch": events})
        assert r.status == 200, r.body

    first = [{"event": "$pageview", "properties": {**base, "distinct_id": "anon-dev-1", "token": project.token}},
             {"event": "clicked", "properties": {**base, "distinct_id": "anon-dev-1", "$process_person_profile": False}}]
    if not one_request:
        post(first)
        first = []
    post(first + [{"event": "$identify", "$set": {"email": "ada@example.com"}, "$set_once": {"signup_source": "pricing"},
           "properties": {**base, "distinct_id": "ada", "$anon_distinct_id": "anon-dev-1", "$user_id": "ada"}},
          {"event": "$pageview", "properties": {**base, "distinct_id": "ada",
                                                "$current_url": "https://site.example/app"}}])
    project.flush()
    p = person(project, "ada")
    assert p == person(project, "anon-dev-1")
    assert p["distinct_ids"] == ["ada", "anon-dev-1"]
    assert p["is_identified"] is True
    props = p["properties"]
    assert props["email"] == "ada@example.com" and props["signup_source"] == "pricing"
    assert props["$browser"] == "Firefox" and props["$initial_browser"] == "Firefox"
    assert props["$initial_utm_source"] == "news"
    assert props["$initial_current_url"] == "https://site.example/pricing?utm_source=news"
    # The last $pageview changes only an automatic property: PostHog does not write that to the person.
    assert props["$current_url"] == "https://site.example/pricing?utm_source=news"
    r = project.api("GET", "/api/projects/@project/persons/")
    assert len(r.json()["results"]) == 1
    events = project.events(person_id=p["uuid"])
    assert sorted(e["event"] for e in events) == ["$identify", "$pageview", "$pageview", "clicked"]
