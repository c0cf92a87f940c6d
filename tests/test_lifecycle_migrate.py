"""`python app.py migrate posthog` phlite -> phlite (docs/lifecycle.md "Migrate to PostHog"): a second
real phlite is the destination; events, persons (merges), groups, flags and cohorts come out equal; a
second run adds nothing; a run killed mid-way resumes with nothing missing or doubled; 429s are waited off."""

import json
import sqlite3
import subprocess
import sys
import uuid

import pytest

from support import ROOT, InProcessServer, Project, ev, send
from phlite.config import Config


def migrate(src, dst, *args, env=None, check=True):
    import os
    e = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, str(ROOT / "app.py"), "migrate", "posthog", "--data-dir", str(src["dir"]),
                        "--project", str(src["id"]), "--host", dst.url, "--project-api-key", dst.token,
                        "--personal-api-key", dst.key, *args], capture_output=True, text=True, cwd=str(ROOT),
                       timeout=300, env=e)
    if check:
        assert r.returncode == 0, r.stderr + r.stdout
    return r


def events(db, pid):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT uuid, event, distinct_id, properties, timestamp FROM event WHERE project_id = ?"
                       " ORDER BY id", (pid,)).fetchall()
    con.close()
    return [(str(uuid.UUID(bytes=r[0])), r[1], r[2], json.loads(r[3]), r[4]) for r in rows]


def persons(db, pid):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT p.properties, p.is_identified, group_concat(d.distinct_id) FROM person p"
                       " JOIN person_distinct_id d ON d.person_id = p.id WHERE p.project_id = ? GROUP BY p.id",
                       (pid,)).fetchall()
    groups = con.execute("SELECT t.group_type, g.group_key, g.properties FROM group_ g JOIN group_type t"
                         " ON t.project_id = g.project_id AND t.group_type_index = g.group_type_index"
                         " WHERE g.project_id = ? ORDER BY 1, 2", (pid,)).fetchall()
    con.close()
    return (sorted((tuple(sorted(ids.split(","))), json.loads(props), ident) for props, ident, ids in rows),
            [(t, k, json.loads(p)) for t, k, p in groups])


def definitions(project):
    """Flags and cohorts as the API shows them, with ids replaced by names/keys (they differ by design)."""
    cohorts = project.api("GET", "/api/projects/@project/cohorts/?limit=100").json()["results"]
    flags = project.api("GET", "/api/projects/@project/feature_flags/?limit=100").json()["results"]
    cname = {c["id"]: c["name"] for c in cohorts}
    fkey = {f["id"]: f["key"] for f in flags}

    def names(node):
        if isinstance(node, dict):
            out = {k: names(v) for k, v in node.items()}
            if node.get("type") == "cohort":
                out["value"] = cname.get(int(node["value"]))
            if node.get("type") == "flag":
                out["key"] = fkey.get(int(node["key"]))
            return out
        if isinstance(node, list):
            return [names(x) for x in node]
        return node

    members = {}
    for c in cohorts:
        if c["is_static"]:
            r = project.api("GET", f"/api/projects/@project/cohorts/{c['id']}/?include_members=1").json()
            members[c["name"]] = sorted(r.get("distinct_ids") or [])
    keep_f = ("key", "name", "active", "ensure_experience_continuity", "evaluation_runtime", "evaluation_tags",
              "is_remote_configuration")
    return (sorted((c["name"], c["is_static"], json.dumps(names(c["filters"]), sort_keys=True)) for c in cohorts),
            members,
            sorted((json.dumps({k: f[k] for k in keep_f}, sort_keys=True), json.dumps(names(f["filters"]), sort_keys=True))
                   for f in flags))


@pytest.fixture
def source(tmp_path):
    srv = InProcessServer(Config(data_dir=tmp_path / "src"))
    p = Project(srv, "source")
    batch = []
    for day in range(1, 6):
        for i in range(60):
            batch.append(ev("$pageview", f"anon-{i}", f"2024-05-0{day}T{i % 24:02d}:00:00Z",
                            **{"$current_url": f"https://x.test/{i}", "$browser": "Firefox"}))
    send(p, *batch)
    send(p, ev("$identify", "user-1", "2024-05-06T00:00:00Z", **{"$anon_distinct_id": "anon-1",
                                                                  "$set": {"plan": "pro"}}),
         ev("$create_alias", "user-1", "2024-05-06T00:01:00Z", alias="anon-2"),
         ev("$groupidentify", "user-1", "2024-05-06T00:02:00Z",
            **{"$group_type": "company", "$group_key": "acme", "$group_set": {"size": 5}}),
         ev("buy", "user-1", "2024-05-06T00:03:00Z", **{"$groups": {"company": "acme"}, "$set_once": {"f": 1}}))
    base = p.api("POST", "/api/projects/@project/cohorts/", {"name": "pros", "filters": {"properties": {
        "type": "OR", "values": [{"type": "AND", "values": [
            {"key": "plan", "value": "pro", "type": "person", "operator": "exact"}]}]}}}).json()
    nested = p.api("POST", "/api/projects/@project/cohorts/", {"name": "pros-again", "filters": {"properties": {
        "type": "OR", "values": [{"type": "AND", "values": [
            {"key": "id", "value": base["id"], "type": "cohort"}]}]}}}).json()
    assert p.api("POST", "/api/projects/@project/cohorts/",
                 {"name": "vips", "is_static": True, "distinct_ids": ["user-1", "anon-9"]}).status == 201
    dep = p.api("POST", "/api/projects/@project/feature_flags/", {"key": "base-flag", "filters": {"groups": [
        {"properties": [{"key": "id", "type": "cohort", "value": nested["id"]}], "rollout_percentage": 50}]}}).json()
    assert p.api("POST", "/api/projects/@project/feature_flags/", {"key": "child", "name": "Child", "filters": {
        "groups": [{"properties": [{"key": str(dep["id"]), "type": "flag", "value": True,
                                    "operator": "flag_evaluates_to"}], "rollout_percentage": 100}],
        "multivariate": None, "payloads": {"true": "{\"a\": 1}"}}}).status == 201
    yield {"dir": tmp_path / "src", "id": p.id, "project": p, "srv": srv}
    srv.close()


@pytest.fixture
def dest(tmp_path):
    srv = InProcessServer(Config(data_dir=tmp_path / "dst"))
    # Ids at the destination differ from the source's: a cohort and a flag already there.
    p = Project(srv, "destination")
    assert p.api("POST", "/api/projects/@project/cohorts/", {"name": "other", "is_static": True,
                                                             "distinct_ids": []}).status == 201
    yield p
    srv.close()


def assert_equal(source, dest, person_properties=True):
    dest.flush()
    assert events(dest.srv.app.config.db_path, dest.id) == events(source["dir"] / "phlite.db", source["id"])
    theirs, mine = persons(dest.srv.app.config.db_path, dest.id), persons(source["dir"] / "phlite.db", source["id"])
    if not person_properties:
        theirs, mine = [[(ids, ident) for ids, _, ident in theirs[0]], theirs[1]], [[(ids, ident) for ids, _, ident
                                                                                   in mine[0]], mine[1]]
    assert theirs == mine
    theirs = definitions(dest)
    mine = definitions(source["project"])
    assert [c for c in theirs[0] if c[0] != "other"] == mine[0]
    assert {k: v for k, v in theirs[1].items() if k != "other"} == mine[1]
    assert theirs[2] == mine[2]


def test_migrate_moves_everything_and_a_second_run_adds_nothing(source, dest, tmp_path):
    cp = tmp_path / "cp.json"
    dry = migrate(source, dest, "--checkpoint", str(cp), "--dry-run", "--json")
    assert json.loads(dry.stdout)["events_to_send"] == 304 and not cp.exists()
    assert dest.events() == []
    r = json.loads(migrate(source, dest, "--checkpoint", str(cp), "--json").stdout)
    assert (r["cohorts"], r["flags"], r["events_sent"]) == (3, 2, 304)
    assert r["verification"]["ok"] and "query" in r["verification"]["method"]
    assert_equal(source, dest)
    # Again with the checkpoint: nothing to send. Again without it: everything is resent and the
    # destination dedupes it; definitions are matched by cohort name and flag key.
    r = json.loads(migrate(source, dest, "--checkpoint", str(cp), "--json").stdout)
    assert (r["cohorts"], r["flags"], r["events_sent"]) == (0, 0, 0) and r["verification"]["ok"]
    r = json.loads(migrate(source, dest, "--checkpoint", str(tmp_path / "fresh.json"), "--json").stdout)
    assert (r["cohorts"], r["flags"], r["events_sent"]) == (0, 0, 304) and r["verification"]["ok"]
    # The destination stores no event twice, but (like PostHog) applies a resent event's person
    # updates again: the same persons and merges, their automatic properties may move (docs/lifecycle.md
    # "Migrate to PostHog": keep the checkpoint).
    assert_equal(source, dest, person_properties=False)


@pytest.mark.slow
def test_migrate_killed_mid_way_resumes_with_nothing_missing_or_doubled(source, dest, tmp_path):
    cp = tmp_path / "cp.json"
    r = migrate(source, dest, "--checkpoint", str(cp), "--batch-size", "40", check=False,
                env={"PHLITE_MIGRATE_KILL_AFTER_BATCHES": "3"})
    assert r.returncode == -9
    dest.flush()
    assert len(dest.events()) == 120  # three batches sent, the third not checkpointed
    assert json.loads(cp.read_text())["last_event_id"] > 0
    r = json.loads(migrate(source, dest, "--checkpoint", str(cp), "--batch-size", "40", "--json").stdout)
    assert r["events_sent"] == 304 - 80 and r["verification"]["ok"]
    assert_equal(source, dest)


@pytest.mark.slow
def test_migrate_waits_off_429s(source, tmp_path):
    srv = InProcessServer(Config(data_dir=tmp_path / "limited", rate_limit=150))
    try:
        p = Project(srv, "limited")
        r = json.loads(migrate(source, p, "--checkpoint", str(tmp_path / "cp.json"), "--batch-size", "100",
                               "--json").stdout)
        assert r["throttled"] >= 1 and r["events_sent"] == 304 and r["verification"]["ok"]
        assert_equal(source, p)
    finally:
        srv.close()
