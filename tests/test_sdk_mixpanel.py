"""The Mixpanel server libraries, unmodified, against phlite: mixpanel-node (npm `mixpanel`, GETs
with ?data=<base64> and base64 form batches, bare `1` answers) and mixpanel-python (PyPI
`mixpanel`, pointed at phlite through per-endpoint Consumer URLs, JSON form bodies with
`verbose=1`). Events, people and group profiles are read back through phlite's API.
"""

import json
import shutil
import subprocess
import time
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from support import ROOT, person

JS = ROOT / "tests" / "js"


def iso_ms(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def group(project, group_type, key):
    r = project.api("GET", "/api/projects/@project/groups_types/")
    assert r.status == 200, r.body
    index = next(t["group_type_index"] for t in r.json() if t["group_type"] == group_type)
    r = project.api("GET", f"/api/projects/@project/groups/find?group_type_index={index}&group_key={quote(key)}")
    assert r.status == 200, r.body
    return r.json()


def by_name(events):
    out = {}
    for e in events:
        out.setdefault(e["event"], []).append(e)
    return out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None or not (JS / "node_modules" / "mixpanel").is_dir(),
                    reason="node or tests/js/node_modules missing (tests/run.sh installs them)")
def test_mixpanel_node(project):
    # Whole milliseconds, an hour ago: import and the batches carry `time` in ms.
    t0 = (int(time.time()) - 3600) * 1000
    before = time.time()
    proc = subprocess.run(["node", "mixpanel_node.mjs", project.url, project.token, str(t0)],
                          cwd=JS, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"errors": []}

    events = project.events()
    assert len({e["id"] for e in events}) == len(events)
    named = by_name(events)

    # track: a GET without `time`, stamped on arrival.
    [tracked] = named["node-track"]
    assert tracked["distinct_id"] == "mpn-1"
    assert tracked["properties"]["plan"] == "pro"
    assert tracked["properties"]["mp_lib"] == "node"
    stamped = datetime.fromisoformat(tracked["timestamp"].replace("Z", "+00:00")).timestamp()
    assert before - 1 <= stamped <= time.time() + 1

    # import (GET) and import_batch (POST form): `time` in milliseconds; a repeated $insert_id is
    # stored once.
    [single] = named["node-import-single"]
    assert single["timestamp"] == iso_ms(t0)
    imported = sorted(named["node-import"], key=lambda e: e["timestamp"])
    assert [e["timestamp"] for e in imported] == [iso_ms(t0 + 1000), iso_ms(t0 + 2000)]
    assert [e["properties"]["$insert_id"] for e in imported] == ["imp-1", "imp-2"]

    # track_batch: POST form of two events, each with its own time.
    batch = sorted(named["node-batch"], key=lambda e: e["properties"]["n"])
    assert [(e["distinct_id"], e["timestamp"]) for e in batch] == [("mpn-2", iso_ms(t0 + 3000)),
                                                                   ("mpn-2", iso_ms(t0 + 4000))]
    # verbose=1 in the query: the JSON answer mixpanel-node then wants.
    assert len(named["node-verbose"]) == 1

    # alias merged the two ids; people.set and groups.set made the profiles.
    p = person(project, "mpn-1")
    assert set(p["distinct_ids"]) == {"mpn-1", "mpn-alias"}
    assert p["properties"]["name"] == "Node User"
    assert p["properties"]["plan"] == "pro"
    assert person(project, "mpn-alias")["id"] == p["id"]
    g = group(project, "company", "node-co")
    assert g["group_properties"] == {"name": "Node Co", "seats": 5}


def test_mixpanel_python(project):
    from mixpanel import BufferedConsumer, Consumer, Mixpanel

    urls = {f"{kind}_url": f"{project.url}/{path}" for kind, path in
            [("events", "track"), ("people", "engage"), ("groups", "groups"), ("import", "import")]}
    mp = Mixpanel(project.token, consumer=Consumer(**urls))

    before = time.time()
    mp.track("mpp-1", "py-event", {"plan": "pro", "n": 1})
    mp.people_set("mpp-1", {"name": "Py User", "email": "py@example.com"})
    mp.people_set_once("mpp-1", {"first_seen": "2026-01-01"})
    mp.group_set("company", "py-co", {"name": "Py Co"})
    # import_data: Basic auth with the secret (phlite authenticates by the token in the event).
    t_import = int(time.time()) - 7200
    mp.import_data("mp-api-key", "mpp-1", "py-import", t_import, {"source": "import"}, api_secret="mp-secret")

    # BufferedConsumer: JSON arrays of up to max_size records per request.
    buffered = Mixpanel(project.token, consumer=BufferedConsumer(max_size=3, **urls))
    for n in range(4):
        buffered.track("mpp-2", "py-buffered", {"n": n})
    buffered.people_set("mpp-2", {"name": "Buffered"})
    buffered._consumer.flush()

    events = project.events()
    named = by_name(events)
    [tracked] = named["py-event"]
    assert tracked["distinct_id"] == "mpp-1"
    assert tracked["properties"]["plan"] == "pro"
    assert tracked["properties"]["mp_lib"] == "python"
    # `time` in float seconds becomes the timestamp (to the millisecond).
    stamped = datetime.fromisoformat(tracked["timestamp"].replace("Z", "+00:00")).timestamp()
    assert before - 0.01 <= stamped <= time.time() + 0.01
    [imported] = named["py-import"]
    assert imported["timestamp"] == iso_ms(t_import * 1000)
    assert imported["properties"]["source"] == "import"
    assert Counter(e["properties"]["n"] for e in named["py-buffered"]) == Counter(range(4))

    p = person(project, "mpp-1")
    assert p["properties"]["name"] == "Py User"
    assert p["properties"]["email"] == "py@example.com"
    assert p["properties"]["first_seen"] == "2026-01-01"
    assert person(project, "mpp-2")["properties"]["name"] == "Buffered"
    assert group(project, "company", "py-co")["group_properties"] == {"name": "Py Co"}


def test_mixpanel_python_merge(project):
    """mixpanel-python's merge(): /import with {"event": "$merge", "properties": {"$distinct_ids": [a, b]}}
    joins the two ids into one person, even when both were already identified."""
    from mixpanel import Consumer, Mixpanel

    urls = {f"{kind}_url": f"{project.url}/{path}" for kind, path in
            [("events", "track"), ("people", "engage"), ("groups", "groups"), ("import", "import")]}
    mp = Mixpanel(project.token, consumer=Consumer(**urls))
    mp.people_set("mp-a", {"name": "A"})
    mp.people_set("mp-b", {"plan": "pro"})
    project.flush()
    assert person(project, "mp-a")["uuid"] != person(project, "mp-b")["uuid"]
    mp.merge("mp-api-key", "mp-a", "mp-b", api_secret="mp-secret")
    project.flush()
    merged = person(project, "mp-a")
    assert merged == person(project, "mp-b")
    assert sorted(merged["distinct_ids"]) == ["mp-a", "mp-b"]
    assert {k: merged["properties"][k] for k in ("name", "plan")} == {"name": "A", "plan": "pro"}
