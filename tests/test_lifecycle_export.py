"""Export and import (docs/lifecycle.md): `python app.py export` / `import` as a user runs them, on
real data dirs; DuckDB reads the export; memory stays flat on a large export; a re-run imports nothing."""

import gzip
import io
import json
import re
import sqlite3
import subprocess
import sys
import uuid

import orjson
import pytest

from support import ROOT, InProcessServer, Project, admin, ev, send
from phlite import datadir
from phlite.config import Config
from phlite.lifecycle import Progress
from phlite.store import Store


def cli(*args, check=True):
    r = subprocess.run([sys.executable, str(ROOT / "app.py"), *args], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def read_jsonl(path):
    with gzip.open(path, "rb") as f:
        return [orjson.loads(line) for line in f]


def stored(db, project_id):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT uuid, event, distinct_id, properties, timestamp FROM event WHERE project_id = ?"
                       " ORDER BY timestamp, uuid", (project_id,)).fetchall()
    con.close()
    return [(str(uuid.UUID(bytes=r[0])), r[1], r[2], json.loads(r[3]), r[4]) for r in rows]


def persons(db, project_id):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT p.properties, group_concat(d.distinct_id) FROM person p JOIN person_distinct_id d"
                       " ON d.person_id = p.id WHERE p.project_id = ? GROUP BY p.id", (project_id,)).fetchall()
    con.close()
    return sorted((tuple(sorted(ids.split(","))), json.loads(props)) for props, ids in rows)


@pytest.fixture
def source(tmp_path):
    """A data dir with one project holding events, a merge, a group, a flag and cohorts."""
    srv = InProcessServer(Config(data_dir=tmp_path / "src"))
    p = Project(srv, "shop")
    send(p,
         ev("$pageview", "anon-1", "2024-03-01T10:00:00.123Z", **{"$current_url": "https://x.test/", "$set": {"a": 1}}),
         ev("$autocapture", "anon-1", "2024-03-01T10:01:00Z", **{"$elements_chain": "button:text=\"Buy\""}),
         ev("$identify", "user-1", "2024-03-02T09:00:00Z", **{"$anon_distinct_id": "anon-1", "$set": {"plan": "pro"}}),
         ev("$groupidentify", "user-1", "2024-03-02T09:01:00Z",
            **{"$group_type": "company", "$group_key": "acme", "$group_set": {"size": 5}}),
         ev("buy", "user-1", "2024-03-03T12:00:00Z", price=9.5, **{"$groups": {"company": "acme"}}),
         ev("late", "user-2", "2024-04-10T00:00:00Z", note="<script>x</script>,\"quoted\"\nline"))
    cohort = p.api("POST", "/api/projects/@project/cohorts/", {"name": "pros", "filters": {"properties": {
        "type": "OR", "values": [{"type": "AND", "values": [
            {"key": "plan", "value": "pro", "type": "person", "operator": "exact"}]}]}}}).json()
    assert p.api("POST", "/api/projects/@project/cohorts/",
                 {"name": "vips", "is_static": True, "distinct_ids": ["user-1"]}).status == 201
    assert p.api("POST", "/api/projects/@project/feature_flags/", {"key": "beta", "filters": {"groups": [
        {"properties": [{"key": "id", "type": "cohort", "value": cohort["id"]}], "rollout_percentage": 100}]}}
    ).status == 201
    srv.close()
    return tmp_path / "src", p.id


def test_export_writes_posthog_batch_export_files_and_import_rebuilds_the_project(source, tmp_path):
    data, pid = source
    out = tmp_path / "out"
    summary = json.loads(cli("export", "--data-dir", str(data), "--project", str(pid), "--out", str(out),
                             "--json").stdout)
    assert summary["files"] == {"events.jsonl.gz": 6, "persons.jsonl.gz": 3, "groups.jsonl.gz": 1,
                                "feature_flags.jsonl.gz": 1, "cohorts.jsonl.gz": 2}
    assert not list(out.glob("*.partial"))
    events = read_jsonl(out / "events.jsonl.gz")
    assert [e["event"] for e in events] == ["$pageview", "$autocapture", "$identify", "$groupidentify", "buy", "late"]
    first = events[0]
    assert set(first) == {"uuid", "event", "distinct_id", "person_id", "properties", "person_properties",
                          "elements_chain", "timestamp", "created_at", "_inserted_at"}
    assert first["timestamp"] == "2024-03-01T10:00:00.123000Z"
    assert first["properties"]["$current_url"] == "https://x.test/"
    # The person is the distinct id's person now: anon-1 was merged into user-1.
    assert first["person_id"] == events[2]["person_id"] and first["person_properties"]["plan"] == "pro"
    assert events[1]["elements_chain"] == 'button:text="Buy"' and first["elements_chain"] == ""
    people = read_jsonl(out / "persons.jsonl.gz")
    assert sorted(r["distinct_id"] for r in people) == ["anon-1", "user-1", "user-2"]
    [group] = read_jsonl(out / "groups.jsonl.gz")
    assert (group["group_type"], group["group_key"], group["group_properties"]) == ("company", "acme", {"size": 5})
    [flag] = read_jsonl(out / "feature_flags.jsonl.gz")
    assert flag["key"] == "beta"
    static = [c for c in read_jsonl(out / "cohorts.jsonl.gz") if c["is_static"]]
    assert static[0]["distinct_ids"] == ["user-1"]

    # A date range: [after, before).
    ranged = tmp_path / "ranged"
    cli("export", "--data-dir", str(data), "--project", str(pid), "--out", str(ranged),
        "--after", "2024-03-02", "--before", "2024-03-03T12:00:00Z")
    assert [e["event"] for e in read_jsonl(ranged / "events.jsonl.gz")] == ["$identify", "$groupidentify"]

    # Import into a fresh data dir: the same events (uuids, timestamps, properties) and persons.
    dest = tmp_path / "dest"
    target = admin(dest, "project", "create", "copy", "--json")
    r = json.loads(cli("import", str(out / "events.jsonl.gz"), "--data-dir", str(dest), "--json").stdout)
    assert r == {"read": 6, "stored": 6, "deduplicated": 0, "dropped": {}}
    assert stored(dest / "phlite.db", target["id"]) == stored(data / "phlite.db", pid)
    assert persons(dest / "phlite.db", target["id"]) == persons(data / "phlite.db", pid)
    # A second run stores nothing.
    r = json.loads(cli("import", str(out / "events.jsonl.gz"), "--data-dir", str(dest), "--json").stdout)
    assert r == {"read": 6, "stored": 0, "deduplicated": 6, "dropped": {}}
    assert len(stored(dest / "phlite.db", target["id"])) == 6


def test_duckdb_reads_the_export(source, tmp_path):
    duckdb = pytest.importorskip("duckdb")  # in the test extra: tests/run.sh installs it
    data, pid = source
    cli("export", "--data-dir", str(data), "--project", str(pid), "--out", str(tmp_path / "j"))
    cli("export", "--data-dir", str(data), "--project", str(pid), "--out", str(tmp_path / "c"), "--format", "csv")
    con = duckdb.connect()
    # The commands docs/lifecycle.md "Export format" shows, as written there.
    doc = (ROOT / "docs" / "lifecycle.md").read_text()
    commands = re.findall(r'^duckdb -c "(.*)"$', doc, re.M)
    assert len(commands) == 3
    for command in commands:
        sql = command.replace("\\$", "$").replace("export-1-csv/", f"{tmp_path}/c/").replace(
            "export-1/", f"{tmp_path}/j/")
        assert con.execute(sql).fetchall(), sql
    rows = con.execute(f"SELECT event, properties->>'$.price' FROM read_json_auto('{tmp_path}/j/events.jsonl.gz')"
                       " ORDER BY timestamp").fetchall()
    assert [r[0] for r in rows] == ["$pageview", "$autocapture", "$identify", "$groupidentify", "buy", "late"]
    assert rows[4][1] == "9.5"
    rows = con.execute(f"SELECT event, distinct_id, json_extract_string(properties, '$.note') FROM"
                       f" read_csv_auto('{tmp_path}/c/events.csv') ORDER BY timestamp").fetchall()
    assert len(rows) == 6 and rows[5] == ("late", "user-2", "<script>x</script>,\"quoted\"\nline")
    # The CSV re-imports too.
    dest = tmp_path / "dest"
    admin(dest, "project", "create", "copy", "--json")
    r = json.loads(cli("import", str(tmp_path / "c" / "events.csv"), "--data-dir", str(dest), "--json").stdout)
    assert r["stored"] == 6
    assert stored(dest / "phlite.db", 1) == stored(data / "phlite.db", pid)


def test_import_reads_posthog_and_mixpanel_files_and_reports_what_it_dropped(tmp_path):
    data = tmp_path / "d"
    admin(data, "project", "create", "p", "--json")
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
    posthog = tmp_path / "posthog.jsonl"
    posthog.write_text("\n".join([
        json.dumps({"uuid": u1, "event": "$autocapture", "distinct_id": "a", "timestamp": "2021-05-01T00:00:00Z",
                    "properties": {"x": 1}, "elements_chain": "a:href=\"/\"", "person_properties": {"p": 1}}),
        "not json",
        json.dumps({"event": "", "distinct_id": "a"}),
        json.dumps({"uuid": u2, "event": "noid", "properties": {}}),
        "[1]",
    ]) + "\n")
    page = tmp_path / "page.json"  # PostHog's events API page, pretty-printed
    page.write_text(json.dumps({"next": None, "results": [
        {"id": str(uuid.uuid4()), "event": "api", "distinct_id": "b", "properties": {}, "timestamp":
         "2022-01-01T00:00:00Z"}]}, indent=2))
    mixpanel = tmp_path / "mixpanel.json.gz"
    lines = [{"event": "$mp_web_page_view", "properties": {"time": 1609459200, "distinct_id": "m1",
                                                           "$insert_id": "abc", "$city": "Paris", "mp_lib": "web"}},
             {"event": "Signed up", "properties": {"time": 1609459201, "distinct_id": "m1"}}]
    mixpanel.write_bytes(gzip.compress(b"".join(orjson.dumps(x) + b"\n" for x in lines)))

    files = [str(posthog), str(page), str(mixpanel)]
    r = json.loads(cli("import", *files, "--data-dir", str(data), "--json").stdout)
    assert r["stored"] == 4 and r["deduplicated"] == 0
    assert r["dropped"] == {"invalid_json": 1, "missing_event_name": 1, "missing_distinct_id": 1,
                            "not_an_object": 1}
    rows = {e[1]: e for e in stored(data / "phlite.db", 1)}
    assert rows["$autocapture"][0] == u1 and rows["$autocapture"][3]["$elements_chain"] == 'a:href="/"'
    assert rows["$autocapture"][4] == 1619827200000  # the old timestamp is kept
    pv = rows["$pageview"]
    assert pv[2] == "m1" and pv[4] == 1609459200000
    assert pv[3]["$geoip_city_name"] == "Paris" and pv[3]["mp_lib"] == "web"
    assert "$insert_id" not in pv[3] and "time" not in pv[3]
    # Mixpanel events without $insert_id get a uuid from what Mixpanel dedupes on: a re-run adds nothing.
    r = json.loads(cli("import", *files, "--data-dir", str(data), "--json").stdout)
    assert r["stored"] == 0 and r["deduplicated"] == 4
    # Piped output: the summary only, no progress redraws.
    out = cli("import", *files, "--data-dir", str(data))
    assert "\r" not in out.stderr + out.stdout and "stored 0, deduplicated 4" in out.stdout


def test_import_is_not_rate_limited_and_refuses_a_data_dir_in_use(tmp_path):
    data = tmp_path / "d"
    admin(data, "project", "create", "p", "--json")
    src = tmp_path / "many.jsonl"
    src.write_text("".join(json.dumps({"event": "e", "distinct_id": f"u{i % 7}", "timestamp":
                                       f"2020-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"}) + "\n"
                           for i in range(3000)))
    r = json.loads(cli("import", str(src), "--data-dir", str(data), "--rate-limit", "1", "--json").stdout)
    assert r["stored"] == 3000
    lock = datadir.DataDirLock(data).acquire()  # as a running server holds it
    try:
        r = cli("import", str(src), "--data-dir", str(data), check=False)
        assert r.returncode == 2 and "is in use by another phlite" in r.stderr
    finally:
        lock.release()


def test_progress_redraws_on_a_terminal_only():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    t = [0.0]
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        t[0] = 0.0
        bar = Progress(stream, "exporting events", 1000, clock=lambda: t[0])
        for done in (100, 500, 1000):
            t[0] += 1
            bar.update(done)
        bar.finish()
    assert "\rexporting events: 1,000/1,000 (100%)" in tty.getvalue() and tty.getvalue().endswith("\n")
    assert pipe.getvalue() == ""


@pytest.mark.slow
def test_export_memory_stays_flat_as_events_grow(tmp_path):
    # Peak RSS of the export process for 50k and for 150k events: streaming keeps the difference
    # small; holding the rows (~100 MB more of Python objects at 150k) would not. Both sizes fill
    # SQLite's page cache (16 MB per connection, bounded), which the smaller size alone would not.
    def make(n):
        data = tmp_path / f"d{n}"
        store = Store(data / "phlite.db")
        pid = store.create_project("p")["id"]
        props = orjson.dumps({"$current_url": "https://example.test/" + "x" * 200, "n": 1}).decode()
        with store.transaction():
            store.db.connection().executemany(
                "INSERT INTO event (project_id, uuid, event, distinct_id, properties, timestamp, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((pid, uuid.uuid4().bytes, "$pageview", f"u{i % 5000}", props, 1_700_000_000_000 + i, 0)
                 for i in range(n)))
        store.close()
        return data

    def peak_kb(data):
        wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True);"
                   " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, str(ROOT / "app.py"), "export",
                              "--data-dir", str(data), "--out", str(data / "out")],
                             capture_output=True, text=True, cwd=str(ROOT), timeout=300, check=True)
        return int(out.stdout.split()[-1])

    small, large = peak_kb(make(50_000)), peak_kb(make(150_000))
    assert large - small < 8_000, (small, large)
    assert sum(1 for _ in gzip.open(tmp_path / "d150000" / "out" / "events.jsonl.gz")) == 150_000


def test_time_cursors_page_through_ties(tmp_path):
    """The events list and the export page by (timestamp, id) cursors that seek the time index; events
    sharing a timestamp across a page boundary are neither skipped nor repeated."""
    from phlite.store.events import INSERT_EVENT

    store = Store(tmp_path / "phlite.db")
    try:
        with store.db.connection_context():
            pid = store.create_project("ties")["id"]
            times = [1_700_000_000_000 + 1000 * (i // 7) for i in range(40)]  # runs of 7 equal timestamps
            with store.transaction():
                store.db.connection().executemany(INSERT_EVENT, [
                    (pid, uuid.uuid4().bytes, "e", f"d{i}", "{}", t, 0, None) for i, t in enumerate(times)])
            listed, cursor = [], None
            for _ in range(20):  # bounded: a cursor that does not advance fails, it does not hang
                rows, cursor = store.list_events(pid, cursor=cursor, limit=3)
                listed += [r["_id"] for r in rows]
                if cursor is None:
                    break
            exported, cur = [], None
            for _ in range(20):
                rows = store.export_events_page(pid, cursor=cur, limit=3)
                if not rows:
                    break
                exported += [r[0] for r in rows]
                cur = (rows[-1][5], rows[-1][0])
        ids = sorted(range(1, 41), key=lambda i: (times[i - 1], i))
        assert exported == ids and listed == ids[::-1]
    finally:
        store.close()
