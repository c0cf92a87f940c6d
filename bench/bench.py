"""phlite's benchmark (issue 6): every figure next to a baseline measured in the same run.

Run it with `bash bench/run.sh` (installs wrk and py-spy if missing). It starts phlite on fresh
data dirs under a temporary directory, drives it with wrk from 127.0.0.1, prints one table and
writes it to docs/benchmarks.md. Each scenario is bounded in time; the whole run takes a few
minutes. Knobs (environment): BENCH_SECONDS (per wrk run, default 5), BENCH_BIG_EVENTS (default
1,000,000), BENCH_KEEP=1 (keep the data dirs), BENCH_PROFILE=1 (py-spy profiles, see README).
"""

import datetime as dt
import gzip
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LUA = ROOT / "bench" / "lua"
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
BIG_EVENTS = int(os.environ.get("BENCH_BIG_EVENTS", "1000000"))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
# BENCH_ONLY=batch,capture,fsync,flags,eval,mixed,big,threads runs only those (no table, results printed as JSON);
# BENCH_ONLY=insights runs bench/insights.py (never part of the default run: it takes tens of minutes).
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))


def wanted(name):
    return not ONLY or name in ONLY
CONNECTIONS = 16
WRK_THREADS = 2
THREADS = 8  # phlite's default `threads`; the bare app gets the same
NOW = dt.datetime.now(dt.timezone.utc)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- processes --------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Phlite:
    """A `python app.py` child process on its own data dir."""

    def __init__(self, data_dir, port=None, env=None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.env = {**os.environ, "PHLITE_LOG_LEVEL": "WARNING", **(env or {})}
        self.proc = None
        self.token = None
        self.key = None
        self.lines = []

    def start(self):
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env, text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"project API key (phc_\S+)", line)
            if m:
                self.token = m.group(1)
            m = re.search(r"store it\): (phx_\S+)", line)
            if m:
                self.key = m.group(1)

    def wait_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(" listening on http://127.0.0.1:" in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("phlite exited:\n" + "".join(self.lines))
            time.sleep(0.01)
        raise RuntimeError("phlite did not start:\n" + "".join(self.lines))

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self):
        return self.data_dir / "phlite.db"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class BareApp:
    def __init__(self, flags_response, threads=THREADS):
        self.port = free_port()
        self.file = Path(tempfile.mkstemp(prefix="bench-flags-response-")[1])
        self.file.write_bytes(flags_response)
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_app.py"), str(self.port), str(threads), str(self.file)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, text=True,
        )
        self.proc.stdout.readline()
        # Keep reading its output (waitress warns about queue depth under load): a full pipe
        # would block the server.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        wait_http(f"http://127.0.0.1:{self.port}/ping")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.file.unlink()


def request(url, method="GET", body=None, headers=None, timeout=30):
    """(status, body bytes, seconds) of one HTTP request."""
    m = re.match(r"http://([^:/]+):(\d+)(.*)", url)
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=timeout)
    t = time.perf_counter()
    try:
        conn.request(method, m.group(3) or "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - t
    finally:
        conn.close()


def wait_http(url, headers=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = request(url, headers=headers, timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"no 200 from {url}")


def api(ph, method, path, body=None):
    status, data, _ = request(ph.url + path, method, orjson.dumps(body) if body is not None else None,
                              {"Authorization": f"Bearer {ph.key}", "Content-Type": "application/json"})
    if status >= 300:
        raise RuntimeError(f"{method} {path}: {status} {data[:500]!r}")
    return orjson.loads(data) if data else None


def wrk(url, script, args, seconds=None, connections=CONNECTIONS):
    cmd = ["wrk", "-t", str(WRK_THREADS), "-c", str(connections), "-d", f"{int(seconds or SECONDS)}s",
           "--timeout", "10s", "-s", str(LUA / script), url, "--", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=(seconds or SECONDS) + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            r = json.loads(line[8:])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
            r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
            return r
    raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")


def write_requests(path, requests):
    """The replay.lua file: (method, path, content type, content encoding, body) records."""
    with open(path, "wb") as f:
        for method, p, ctype, cenc, body in requests:
            f.write(f"{method} {p} {ctype or '-'} {cenc or '-'} {len(body)}\n".encode() + body)


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


class Sampler(threading.Thread):
    """Samples (time, max event id, RSS, private RSS, mapped-file RSS) of a phlite process every `every` seconds."""

    def __init__(self, ph, every=0.2):
        super().__init__(daemon=True)
        self.ph, self.every = ph, every
        self.samples = []
        self.stop_flag = threading.Event()
        self.conn = sqlite3.connect(f"file:{ph.db}?mode=ro", uri=True, check_same_thread=False)

    def max_id(self):
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM event").fetchone()[0]

    def run(self):
        while not self.stop_flag.is_set():
            pid = self.ph.proc.pid
            self.samples.append((time.perf_counter(), self.max_id(), rss_kb(pid),
                                 rss_kb(pid, "RssAnon"), rss_kb(pid, "RssFile") + rss_kb(pid, "RssShmem")))
            self.stop_flag.wait(self.every)


def db_bytes(path):
    """Bytes of the database's pages in use (WAL included: a reader sees the latest pages)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size
    finally:
        conn.close()


def count_events(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM event").fetchone()[0]
    finally:
        conn.close()


class Profiler:
    """py-spy on a process for the length of a `with` block (BENCH_PROFILE=1 only)."""

    def __init__(self, pid, name, out_dir):
        self.pid, self.name, self.out_dir = pid, name, out_dir
        self.proc = None

    def __enter__(self):
        if PROFILE and shutil.which("py-spy"):
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen(
                ["py-spy", "record", "--pid", str(self.pid), "--rate", "200", "--format", "raw", "--threads",
                 "--output", str(self.out_dir / f"{self.name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return False


# --- payloads ---------------------------------------------------------------------------------

BROWSERS = ["Chrome", "Firefox", "Safari", "Edge"]
PATHS = ["/", "/pricing", "/docs/getting-started", "/blog/sqlite-is-enough", "/app/dashboard", "/signup"]


def python_event(i, uuid_value="@@UUID@@", distinct_id="@@DID@@"):
    """An event as posthog-python's `capture()` sends it in a /batch."""
    return {
        "event": ["order completed", "page viewed", "signed up", "plan changed"][i % 4],
        "distinct_id": distinct_id,
        "properties": {
            "order_id": f"ord_{i:08d}",
            "revenue": round(10 + (i * 7.31) % 190, 2),
            "currency": "EUR",
            "plan": ["free", "pro", "team", "enterprise"][i % 4],
            "items": i % 7 + 1,
            "coupon": None if i % 3 else "WINTER10",
            "source": "backend",
            "$lib": "posthog-python",
            "$lib_version": "7.91.1",
            "$geoip_disable": True,
        },
        "timestamp": (NOW - dt.timedelta(seconds=i)).isoformat(),
        "context": {},
        "uuid": uuid_value,
        "type": "capture",
    }


def batch_template(token):
    return orjson.dumps({
        "api_key": token,
        "batch": [python_event(i) for i in range(100)],
        "historical_migration": False,
        "sent_at": NOW.isoformat(),
    })


def js_event(token, i, distinct_id):
    """A posthog-js $pageview as `/e/` receives it (before gzip)."""
    path = PATHS[i % len(PATHS)]
    return {
        "uuid": str(uuid.uuid4()),
        "event": "$pageview",
        "properties": {
            "$os": "Mac OS X", "$os_version": "14.5.0", "$browser": BROWSERS[i % 4], "$device_type": "Desktop",
            "$current_url": f"https://example.com{path}?utm_source=newsletter", "$host": "example.com",
            "$pathname": path, "$raw_user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"
            " (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "$browser_version": 126,
            "$browser_language": "en-US", "$screen_height": 1117, "$screen_width": 1728, "$viewport_height": 959,
            "$viewport_width": 1728, "$lib": "web", "$lib_version": "1.200.0", "$insert_id": uuid.uuid4().hex[:16],
            "$time": time.time(), "distinct_id": distinct_id, "$device_id": distinct_id,
            "$referrer": "https://www.google.com/", "$referring_domain": "www.google.com",
            "$session_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "$window_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
            "$pageview_id": str(uuid.uuid4()), "token": token, "$is_identified": False,
            "$process_person_profile": True, "title": "Example: pricing and plans",
        },
        "timestamp": NOW.isoformat(),
    }


def capture_requests(token, n=2000):
    out = []
    for i in range(n):
        body = gzip.compress(orjson.dumps(js_event(token, i, f"anon-{i % 500}")), 6)
        out.append(("POST", f"/e/?compression=gzip-js&ip=1&_={1700000000000 + i}&ver=1.200.0",
                     "text/plain", None, body))
    return out


FLAG_USER = "bench-flag-user"
PERSON_PROPERTIES = {
    "email": "alice@acme.com", "plan": "pro", "age": 34, "country": "DE", "signup_date": "2024-03-01T10:00:00Z",
    "app_version": "2.14.1", "beta": True, "company_size": 120, "score": 87.5, "role": "admin",
}
GROUP_PROPERTIES = {"industry": "tech", "seats": 40}


def flags_body(token):
    return orjson.dumps({"token": token, "distinct_id": FLAG_USER, "groups": {"company": "acme"}})


def flag_definitions(cohort_id):
    """20 flags: 6 rollouts, 6 person-property filters, 5 multivariate with payloads, one
    boolean with a payload and a property filter, one group flag, one cohort flag."""
    flags = []

    def flag(key, filters):
        flags.append({"key": key, "name": key, "active": True, "filters": filters})

    for i in range(6):
        flag(f"rollout-{i}", {"groups": [{"properties": [], "rollout_percentage": 10 + 15 * i}]})
    person_filters = [
        {"key": "plan", "type": "person", "operator": "exact", "value": ["pro", "enterprise"]},
        {"key": "email", "type": "person", "operator": "icontains", "value": "@acme.com"},
        {"key": "age", "type": "person", "operator": "gt", "value": 30},
        {"key": "beta", "type": "person", "operator": "is_set", "value": "is_set"},
        {"key": "email", "type": "person", "operator": "regex", "value": r"^[a-z]+@acme\.com$"},
        {"key": "signup_date", "type": "person", "operator": "is_date_after", "value": "2024-01-01"},
    ]
    for i, prop in enumerate(person_filters):
        flag(f"person-{i}", {"groups": [{"properties": [prop], "rollout_percentage": 100},
                                        {"properties": [{"key": "country", "type": "person", "operator": "exact",
                                                         "value": ["FR"]}], "rollout_percentage": 50}]})
    for i in range(5):
        flag(f"experiment-{i}", {
            "groups": [{"properties": [{"key": "company_size", "type": "person", "operator": "gte", "value": 10}],
                        "rollout_percentage": 100}],
            "multivariate": {"variants": [{"key": "control", "rollout_percentage": 34},
                                          {"key": "test-a", "rollout_percentage": 33},
                                          {"key": "test-b", "rollout_percentage": 33}]},
            "payloads": {"control": json.dumps({"color": "blue", "n": i}), "test-a": json.dumps({"color": "green"}),
                         "test-b": json.dumps({"color": "red", "copy": "Try it free"})},
        })
    flag("banner", {"groups": [{"properties": [{"key": "role", "type": "person", "operator": "exact",
                                                 "value": ["admin", "owner"]}], "rollout_percentage": 100}],
                    "payloads": {"true": json.dumps({"text": "New: SQLite backups", "dismissable": True})}})
    flag("company-beta", {"aggregation_group_type_index": 0,
                          "groups": [{"properties": [{"key": "industry", "type": "group", "group_type_index": 0,
                                                      "operator": "exact", "value": ["tech"]}],
                                      "rollout_percentage": 100}]})
    flag("cohort-gate", {"groups": [{"properties": [{"key": "id", "type": "cohort", "value": cohort_id}],
                                     "rollout_percentage": 100}]})
    return flags


# --- scenarios --------------------------------------------------------------------------------


def scenario_batch(ph, work):
    """/batch with 16 connections; events counted in the table until the writer has drained."""
    template = work / "batch.json"
    template.write_bytes(batch_template(ph.token))
    sample_events = [python_event(i, str(uuid.uuid4()), f"user-{i}") for i in range(100)]
    json_per_event = statistics.mean(len(orjson.dumps(e)) for e in sample_events)
    before_rows = count_events(ph.db)
    before_bytes = db_bytes(ph.db)
    sampler = Sampler(ph)
    sampler.start()
    t0 = time.perf_counter()
    with Profiler(ph.proc.pid, "batch", work / "profiles"):
        result = wrk(ph.url, "batch.lua", [template, random.randrange(1 << 16)])
        # Every accepted event is new and valid, so the writer has drained when the table holds
        # them all (bounded: 120 s; a stall of 10 s also ends the wait).
        expected = sampler.samples[0][1] + (result["requests"] - result["status"]) * 100
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            time.sleep(0.1)
            last = sampler.samples[-1]
            if last[1] >= expected:
                break
            if last[0] - next(t for t, mid, *_ in sampler.samples if mid == last[1]) > 10:
                log(f"  the writer stalled at {last[1]:,} of {expected:,} rows")
                break
    sampler.stop_flag.set()
    sampler.join()
    final = sampler.samples[-1][1]
    t_done = next(t for t, mid, *_ in sampler.samples if mid == final)
    stored = count_events(ph.db) - before_rows
    return {
        "stored": stored,
        "accepted_events": (result["requests"] - result["status"]) * 100,
        "stored_per_s": stored / (t_done - t0),
        "seconds": t_done - t0,
        "wrk": result,
        "peak_rss_mb": max(s[2] for s in sampler.samples) / 1024,
        "hwm_mb": rss_kb(ph.proc.pid, "VmHWM") / 1024,
        # The split at the sample with the most RSS: private memory, and pages of mapped files (shared
        # libraries, the WAL index), which are the kernel's page cache.
        "peak_anon_mb": max(sampler.samples, key=lambda s: s[2])[3] / 1024,
        "peak_file_mb": max(sampler.samples, key=lambda s: s[2])[4] / 1024,
        "bytes_per_event": (db_bytes(ph.db) - before_bytes) / max(stored, 1),
        "json_per_event": json_per_event,
    }


def scenario_raw_sqlite(n_rows, work, seconds_cap=20):
    """The ceiling: the same rows by Python sqlite3 executemany into phlite's schema, indexes and
    pragmas, 1,000 rows per transaction."""
    from phlite.store import Store
    from phlite.store.db import PRAGMAS

    path = work / "raw" / "phlite.db"
    Store(path).close()  # the migrations: exactly phlite's schema and indexes
    conn = sqlite3.connect(path, isolation_level=None)
    for k, v in PRAGMAS.items():
        conn.execute(f"PRAGMA {k} = {v}")
    created = int(time.time() * 1000)
    templates = [python_event(i) for i in range(100)]
    rng = random.Random(6)
    rows = []
    for i in range(n_rows):
        ev = templates[i % 100]
        rows.append((1, uuid.uuid4().bytes, ev["event"], f"user-{rng.randint(1, 10000)}",
                     orjson.dumps(ev["properties"]), created - i, created, None))
    sql = ("INSERT OR IGNORE INTO event (project_id, uuid, event, distinct_id, properties, timestamp, created_at,"
           " person_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    t0 = time.perf_counter()
    done = 0
    for start in range(0, n_rows, 1000):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[start:start + 1000])
        conn.execute("COMMIT")
        done += len(rows[start:start + 1000])
        if time.perf_counter() - t0 > seconds_cap:
            break
    elapsed = time.perf_counter() - t0
    conn.close()
    return {"rows": done, "rows_per_s": done / elapsed}


def best_of(runs):
    return max(runs, key=lambda r: r["rps"])


def cpu_seconds(pid):
    """User + system CPU time of a process so far (from /proc/PID/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_with_cpu(url, pid, script, args, **kw):
    """A wrk run plus the server's CPU microseconds per request: steadier than requests/s on a
    shared machine, because time spent waiting for the cores is not counted."""
    before = cpu_seconds(pid)
    r = wrk(url, script, args, **kw)
    time.sleep(0.5)  # the writer's share of the work may end a little after the last answer
    r["cpu_us_per_request"] = (cpu_seconds(pid) - before) / max(r["requests"], 1) * 1e6
    return r


def scenario_http_pair(ph, bare, script_args, rounds=2):
    """phlite and the bare app alternately, `rounds` times each; the best run of each."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(wrk_with_cpu(ph.url, ph.proc.pid, "replay.lua", script_args))
        theirs.append(wrk_with_cpu(bare.url, bare.proc.pid, "replay.lua", script_args))
    return best_of(ours), best_of(theirs)


def scenario_fsync(ph, work, cap_file):
    """/capture with `--fsync batch` (a fresh server) against the default one, alternately."""
    fs = Phlite(work / "fsync", env={"PHLITE_FSYNC": "batch"}).start()
    try:
        fs.wait_listening()
        f = work / "capture-fsync.req"
        write_requests(f, capture_requests(fs.token))
        ours, base = [], []
        for _ in range(2):
            ours.append(wrk_with_cpu(fs.url, fs.proc.pid, "replay.lua", [f]))
            base.append(wrk_with_cpu(ph.url, ph.proc.pid, "replay.lua", [cap_file]))
        return best_of(ours), best_of(base)
    finally:
        fs.stop()


def scenario_writer_alone(work, seconds_cap=20):
    """Diagnostic: phlite's writer storing the /batch events in process, no HTTP and no other
    thread: normalisation, person processing and the inserts, one group commit at a time."""
    from phlite.config import Config
    from phlite.app import open_app

    svc = open_app(Config(data_dir=work / "writer-alone"), start_writer=False)
    try:
        with svc.store.db.connection_context():
            project = svc.store.create_project("bench")
        rng = random.Random(7)
        n_batches = 300
        for _ in range(n_batches):
            events = [python_event(i, str(uuid.uuid4()), f"user-{rng.randint(1, 10000)}") for i in range(100)]
            svc.ingestion.writer.submit(project["id"], events, sent_at=NOW, ip="127.0.0.1", token=project["api_token"])
        t0 = time.perf_counter()
        with svc.store.db.connection_context():
            svc.ingestion.flush(seconds_cap)
        elapsed = time.perf_counter() - t0
        return {"events": svc.ingestion.writer.stored, "events_per_s": svc.ingestion.writer.stored / elapsed}
    finally:
        svc.close()


def scenario_threads(work, counts=(4, 8, 16)):
    """Diagnostic: /capture at several waitress thread counts (fresh phlite and bare app each)."""
    out = {}
    for n in counts:
        ph = Phlite(work / f"threads-{n}", env={"PHLITE_THREADS": str(n)}).start()
        bare = None
        try:
            ph.wait_listening()
            f = work / f"threads-{n}.req"
            write_requests(f, capture_requests(ph.token, 1000))
            bare = BareApp(b"{}", threads=n)
            ours = wrk_with_cpu(ph.url, ph.proc.pid, "replay.lua", [f], seconds=4)
            theirs = wrk_with_cpu(bare.url, bare.proc.pid, "replay.lua", [f], seconds=4)
            out[n] = (ours, theirs)
        finally:
            if bare:
                bare.stop()
            ph.stop()
    return out


def wait_for_person(ph, timeout=30):
    conn = sqlite3.connect(f"file:{ph.db}?mode=ro", uri=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT p.properties, p.uuid FROM person p JOIN person_distinct_id d ON d.person_id = p.id"
                " WHERE d.distinct_id = ?", (FLAG_USER,)).fetchone()
            group = conn.execute("SELECT properties FROM group_ WHERE group_key = 'acme'").fetchone()
            if row and group and all(k in orjson.loads(row[0]) for k in PERSON_PROPERTIES):
                return row[1]
            time.sleep(0.1)
    finally:
        conn.close()
    raise RuntimeError("the benchmark person was not stored in time")


def setup_flags(ph):
    """The person with 10 properties, the group, a cohort and the 20 flags."""
    events = [
        {"event": "$identify", "distinct_id": FLAG_USER, "properties": {"$set": PERSON_PROPERTIES},
         "timestamp": NOW.isoformat()},
        {"event": "$groupidentify", "distinct_id": FLAG_USER,
         "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": GROUP_PROPERTIES},
         "timestamp": NOW.isoformat()},
    ]
    status, data, _ = request(ph.url + "/batch/", "POST", orjson.dumps({"api_key": ph.token, "batch": events}),
                              {"Content-Type": "application/json"})
    assert status == 200, (status, data)
    person_uuid = wait_for_person(ph)
    project = api(ph, "GET", "/api/projects/")["results"][0]["id"]
    cohort = api(ph, "POST", f"/api/projects/{project}/cohorts/", {
        "name": "Germany and France",
        "filters": {"properties": {"type": "OR", "values": [{"type": "AND", "values": [
            {"key": "country", "type": "person", "operator": "exact", "value": ["DE", "FR"]}]}]}},
    })
    for f in flag_definitions(cohort["id"]):
        api(ph, "POST", f"/api/projects/{project}/feature_flags/", f)
    return project, person_uuid


def scenario_flag_eval(ph, seconds=1.5):
    """In process, the same definitions and properties: phlite's evaluator vs posthog-python's."""
    from posthog.feature_flags import (
        InconclusiveMatchError, RequiresServerEvaluation, match_feature_flag_properties, resolve_bucketing_value,
    )

    from phlite.flags import Context, compile_flags, evaluate

    defs = api(ph, "GET", f"/api/feature_flag/local_evaluation?token={ph.token}")
    flags, cohorts = defs["flags"], defs.get("cohorts") or {}
    mapping = defs.get("group_type_mapping") or {"0": "company"}
    groups, group_properties = {"company": "acme"}, {"company": GROUP_PROPERTIES}
    compiled = compile_flags(flags, cohorts)
    ctx = Context(FLAG_USER, PERSON_PROPERTIES, now=NOW, groups=groups, group_properties=group_properties,
                  group_type_mapping={int(k): v for k, v in mapping.items()})
    by_key = {f["key"]: f for f in flags}

    def posthog_all():
        out = {}
        for flag in flags:
            common = dict(cohort_properties=cohorts, flags_by_key=by_key, evaluation_cache={},
                          group_type_mapping=mapping, groups=groups, group_properties=group_properties)
            try:
                aggregation = (flag.get("filters") or {}).get("aggregation_group_type_index")
                if aggregation is not None:
                    name = mapping[str(aggregation)]
                    key = groups[name]
                    value = match_feature_flag_properties(flag, key, group_properties[name],
                                                          bucketing_value=key, **common)
                else:
                    bucketing = resolve_bucketing_value(flag, FLAG_USER, None)
                    value = match_feature_flag_properties(flag, FLAG_USER, PERSON_PROPERTIES,
                                                          bucketing_value=bucketing, **common)
            except (InconclusiveMatchError, RequiresServerEvaluation):
                out[flag["key"]] = None
                continue
            lookup = str(value).lower() if isinstance(value, bool) else str(value)
            out[flag["key"]] = (value, ((flag.get("filters") or {}).get("payloads") or {}).get(lookup))
        return out

    def time_per_call(fn):
        fn()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(50):
                fn()
            n += 50
        return (time.perf_counter() - t0) / n

    # Alternate twice and keep the best of each: the machine is shared.
    ours, theirs = [], []
    for _ in range(2):
        ours.append(time_per_call(lambda: evaluate(compiled, ctx)))
        theirs.append(time_per_call(posthog_all))
    ph_results = {k: (r.value, r.payload) for k, r in evaluate(compiled, ctx).items()}
    sdk_results = posthog_all()
    agree = sum(1 for k, v in sdk_results.items() if v is not None and ph_results.get(k) == v)
    conclusive = sum(1 for v in sdk_results.values() if v is not None)
    return {"phlite_us_per_flag": min(ours) / len(flags) * 1e6, "posthog_us_per_flag": min(theirs) / len(flags) * 1e6,
            "flags": len(flags), "agree": agree, "conclusive": conclusive}


def scenario_mixed(ph, project, work, token):
    """90% capture / 10% flags with wrk while the events list is read once a second."""
    reqs = []
    captures = capture_requests(token, 1800)
    body = flags_body(token)
    for i in range(2000):
        reqs.append(("POST", "/flags/?v=2", "application/json", None, body) if i % 10 == 9 else captures[i - i // 10])
    path = work / "mixed.req"
    write_requests(path, reqs)
    reads = []
    stop = threading.Event()

    def reader():
        while not stop.wait(1.0):
            try:
                status, _, secs = request(f"{ph.url}/api/projects/{project}/events/?limit=100",
                                          headers={"Authorization": f"Bearer {ph.key}"})
            except OSError as e:
                status, secs = str(e), 0
            reads.append((status, secs))

    # Latency of single /flags and /capture requests under the same load, 10 a second, beside wrk's overall figures.
    probes = {"flags": [], "capture": []}

    def prober():
        n = 0
        while not stop.wait(0.1):
            kind = "flags" if n % 2 else "capture"
            method, p, ctype, cenc, data = reqs[9] if kind == "flags" else captures[n % len(captures)]
            headers = {k: v for k, v in (("Content-Type", ctype), ("Content-Encoding", cenc)) if v}
            try:
                status, _, secs = request(ph.url + p, method, data, headers)
                probes[kind].append(secs)
            except OSError:
                pass
            n += 1

    def p99(values):
        values = sorted(values)
        return values[min(len(values) - 1, int(len(values) * 0.99))] * 1000 if values else None

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=prober, daemon=True)]
    for t in threads:
        t.start()
    result = wrk(ph.url, "replay.lua", [path], seconds=max(SECONDS, 8))
    stop.set()
    for t in threads:
        t.join()
    lat = sorted(s for _, s in reads)
    return {"wrk": result, "reads": len(reads), "read_errors": sum(1 for s, _ in reads if s != 200),
            "read_p99_ms": p99(lat), "read_p50_ms": statistics.median(lat) * 1000 if lat else None,
            "flags_p99_ms": p99(probes["flags"]), "capture_p99_ms": p99(probes["capture"]),
            "probes": {k: len(v) for k, v in probes.items()}}


def cold_start(ph):
    """Seconds from process start to the first 200 of an authenticated API read."""
    t0 = time.perf_counter()
    ph.start()
    if ph.key is None:  # an empty data dir: the key is printed at first start, before listening
        ph.wait_listening()
    wait_http(ph.url + "/api/projects/", headers={"Authorization": f"Bearer {ph.key}"})
    return time.perf_counter() - t0


def generate_events(db_path, n, person_distinct_id, person_id, project_id=1):
    """n events inserted with raw sqlite3 into a data dir phlite created (indexes dropped during
    the load and re-created with their own SQL, which is much faster than inserting through them)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA synchronous = off")
    conn.execute("PRAGMA cache_size = -200000")
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'event'"
                           " AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    props = [orjson.dumps(python_event(i)["properties"]) for i in range(100)]
    names = ["order completed", "page viewed", "signed up", "plan changed", "$pageview"]
    start = int(time.time() * 1000) - 30 * 86400 * 1000
    step = 30 * 86400 * 1000 // n
    rng = random.Random(1)
    sql = ("INSERT INTO event (project_id, uuid, event, distinct_id, properties, timestamp, created_at, person_id)"
           " VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    chunk = 50_000
    for base in range(0, n, chunk):
        rows = []
        for i in range(base, min(n, base + chunk)):
            mine = i % 100 == 0
            ts = start + i * step
            rows.append((project_id, rng.randbytes(16), names[i % 5],
                         person_distinct_id if mine else f"user-{rng.randint(1, 10000)}",
                         props[i % 100], ts, ts + 50, person_id if mine else None))
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    for _, index_sql in indexes:
        conn.execute(index_sql)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def scenario_big(work):
    """Cold start on an empty data dir and with BIG_EVENTS events, then the events list at that size."""
    ph = Phlite(work / "big")
    empty = cold_start(ph)
    status, data, _ = request(ph.url + "/batch/", "POST", orjson.dumps({"api_key": ph.token, "batch": [
        {"event": "$identify", "distinct_id": FLAG_USER, "properties": {"$set": PERSON_PROPERTIES},
         "timestamp": NOW.isoformat()}]}), {"Content-Type": "application/json"})
    assert status == 200, data
    person_uuid = wait_for_person_only(ph)
    ph.stop()
    conn = sqlite3.connect(ph.db)
    person_id = conn.execute("SELECT id FROM person WHERE uuid = ?", (person_uuid,)).fetchone()[0]
    conn.close()
    t = time.perf_counter()
    generate_events(ph.db, BIG_EVENTS, FLAG_USER, person_id)
    log(f"generated {BIG_EVENTS:,} events in {time.perf_counter() - t:.1f} s")
    ph2 = Phlite(ph.data_dir, port=ph.port)
    ph2.token, ph2.key = ph.token, ph.key
    full = cold_start(ph2)
    auth = {"Authorization": f"Bearer {ph2.key}"}
    out = {"cold_empty_s": empty, "cold_big_s": full, "events": count_events(ph2.db)}
    for name, path in [("list_project", "/api/projects/1/events/?limit=100"),
                       ("list_person", f"/api/projects/1/events/?limit=100&person_id={person_uuid}")]:
        times = []
        for _ in range(30):
            status, data, secs = request(ph2.url + path, headers=auth)
            assert status == 200 and len(orjson.loads(data)["results"]) == 100, (status, data[:300])
            times.append(secs)
        out[name + "_p50_ms"] = statistics.median(times) * 1000
    ph2.stop()
    return out


def wait_for_person_only(ph, timeout=30):
    conn = sqlite3.connect(f"file:{ph.db}?mode=ro", uri=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT p.uuid FROM person p JOIN person_distinct_id d ON d.person_id = p.id"
                " WHERE d.distinct_id = ?", (FLAG_USER,)).fetchone()
            if row:
                return row[0]
            time.sleep(0.05)
    finally:
        conn.close()
    raise RuntimeError("person not stored")


# --- report -----------------------------------------------------------------------------------


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import bottle
    import peewee
    import posthog
    import waitress

    from phlite import __version__

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    try:
        from importlib.metadata import version
        waitress_version = version("waitress")
    except Exception:
        waitress_version = getattr(waitress, "__version__", "?")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip()
    return {
        "cores": os.cpu_count(), "cpu": model, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "bottle": bottle.__version__, "waitress": waitress_version, "peewee": peewee.__version__,
        "orjson": orjson.__version__, "posthog": posthog.VERSION if hasattr(posthog, "VERSION") else "?",
        "wrk": wrk_version, "phlite": __version__, "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "kernel": platform.release(),
    }


def ratio(a, b):
    return a / b if b else float("nan")


def verdict(ok):
    return "met" if ok else "**missed**"


def build_table(r):
    b, raw, m = r["batch"], r["raw"], r["machine"]
    cap_p, cap_b = r["capture"]
    fl_p, fl_b = r["flags"]
    ev, mx, big = r["eval"], r["mixed"], r["big"]
    rows = []

    def add(scenario, phlite, baseline, target, value, ok):
        rows.append(f"| {scenario} | {phlite} | {baseline} | {target} | {value} {'' if ok is None else verdict(ok)} |")

    rb = ratio(b["stored_per_s"], raw["rows_per_s"])
    add("`/batch`, 100 posthog-python events per request, 16 connections: events **stored**/s",
        f"{b['stored_per_s']:,.0f}/s ({b['stored']:,} rows in {b['seconds']:.1f} s; {b['wrk']['requests']:,} requests,"
        f" {b['wrk']['status_503']:,} answered 503 queue full, {b['wrk']['errors'] - b['wrk']['status_503']} other errors)",
        f"raw `executemany`, 1,000 rows/txn: {raw['rows_per_s']:,.0f}/s ({raw['rows']:,} rows). Diagnostic: phlite's"
        f" writer alone in process (no HTTP): {r['writer_alone']['events_per_s']:,.0f}/s"
        f" ({ratio(r['writer_alone']['events_per_s'], raw['rows_per_s']):.2f})",
        ">= 0.8", f"{rb:.2f}", rb >= 0.8)

    def http_row(name, p, bare, target):
        q = ratio(p["rps"], bare["rps"])
        add(name, f"{p['rps']:,.0f} req/s, p50 {p['p50_us'] / 1000:.1f} ms, p99 {p['p99_us'] / 1000:.1f} ms"
            f"{', ' + str(p['errors']) + ' errors' if p['errors'] else ''}; server CPU {p['cpu_us_per_request']:.0f} µs/req",
            f"bare bottle+waitress ({THREADS} threads): {bare['rps']:,.0f} req/s, p50 {bare['p50_us'] / 1000:.1f} ms,"
            f" p99 {bare['p99_us'] / 1000:.1f} ms; CPU {bare['cpu_us_per_request']:.0f} µs/req", f">= {target}",
            f"{q:.2f} (CPU {ratio(bare['cpu_us_per_request'], p['cpu_us_per_request']):.2f})", q >= target)

    http_row("`/capture` (`/e/`), one posthog-js event per request, gzip, 16 connections", cap_p, cap_b, 0.7)
    http_row("`/flags?v=2`, 20 flags, stored person with 10 properties, 16 connections", fl_p, fl_b, 0.6)
    if r.get("fsync"):
        fb, fo = r["fsync"]
        q = ratio(fb["rps"], fo["rps"])
        add("`/capture` as above with `--fsync batch` (group fsync of the spool before each 200)",
            f"{fb['rps']:,.0f} req/s, p50 {fb['p50_us'] / 1000:.1f} ms, p99 {fb['p99_us'] / 1000:.1f} ms;"
            f" server CPU {fb['cpu_us_per_request']:.0f} µs/req",
            f"phlite with the default `--fsync off`: {fo['rps']:,.0f} req/s, p50 {fo['p50_us'] / 1000:.1f} ms,"
            f" p99 {fo['p99_us'] / 1000:.1f} ms", "— (its cost)", f"{q:.2f} of off", None)
    speed = ratio(ev["posthog_us_per_flag"], ev["phlite_us_per_flag"])
    add("flag evaluation in process, the same 20 flags: µs per flag",
        f"{ev['phlite_us_per_flag']:.2f} µs",
        f"posthog {m['posthog']} local evaluator: {ev['posthog_us_per_flag']:.2f} µs"
        f" (agrees on {ev['agree']}/{ev['conclusive']} conclusive flags)",
        ">= 2x faster", f"{speed:.1f}x", speed >= 2)
    w = mx["wrk"]
    ok = w["errors"] == 0 and mx["read_errors"] == 0 and mx["read_p99_ms"] is not None and mx["read_p99_ms"] <= 50
    add("mixed: 90% capture / 10% flags, events list read once a second",
        f"{w['rps']:,.0f} req/s, {w['errors']} errors; {mx['reads']} reads, {mx['read_errors']} errors,"
        f" p50 {mx['read_p50_ms']:.1f} ms, p99 {mx['read_p99_ms']:.1f} ms; single requests beside the load"
        f" ({mx['probes']['flags']} each): `/flags` p99 {mx['flags_p99_ms']:.1f} ms, `/capture` p99"
        f" {mx['capture_p99_ms']:.1f} ms", "—", "no error, reads p99 <= 50 ms",
        "", ok)
    add("cold start to first 200: empty data dir", f"{big['cold_empty_s']:.2f} s", "—", "<= 1 s", "",
        big["cold_empty_s"] <= 1)
    add(f"cold start to first 200: {big['events']:,} stored events", f"{big['cold_big_s']:.2f} s", "—", "<= 2 s", "",
        big["cold_big_s"] <= 2)
    add("peak RSS during `/batch`", f"{b['peak_rss_mb']:.1f} MB (VmHWM {b['hwm_mb']:.1f} MB; at the peak {b['peak_anon_mb']:.0f} MB private, "
        f"{b['peak_file_mb']:.0f} MB mapped files: libraries, the WAL index)", "—", "<= 80 MB", "",
        b["peak_rss_mb"] <= 80)
    rd = ratio(b["bytes_per_event"], b["json_per_event"])
    add("bytes on disk per stored event", f"{b['bytes_per_event']:,.0f} B",
        f"compact JSON of the event: {b['json_per_event']:,.0f} B", "<= 1.5x", f"{rd:.2f}x", rd <= 1.5)
    add(f"events list, newest 100 of the project, {big['events']:,} events: p50", f"{big['list_project_p50_ms']:.1f} ms",
        "—", "<= 20 ms", "", big["list_project_p50_ms"] <= 20)
    add(f"events list, newest 100 of one person, {big['events']:,} events: p50", f"{big['list_person_p50_ms']:.1f} ms",
        "—", "<= 20 ms", "", big["list_person_p50_ms"] <= 20)
    head = ("| scenario | phlite | baseline measured in the same run | target | ratio / result |\n"
            "|---|---|---|---|---|")
    table = head + "\n" + "\n".join(rows)
    if r.get("threads"):
        table += ("\n\nDiagnostic, `/capture` by waitress thread count (`threads` setting; 16 connections; one 4 s run"
                  " each, fresh servers):\n\n| threads | phlite | bare app, same threads | ratio |\n|---|---|---|---|\n")
        for n, (p, bare) in r["threads"].items():
            table += (f"| {n} | {p['rps']:,.0f} req/s, p99 {p['p99_us'] / 1000:.1f} ms, CPU {p['cpu_us_per_request']:.0f} µs/req"
                      f" | {bare['rps']:,.0f} req/s, p99 {bare['p99_us'] / 1000:.1f} ms, CPU {bare['cpu_us_per_request']:.0f}"
                      f" µs/req | {ratio(p['rps'], bare['rps']):.2f} |\n")
    return table


def main():
    if "insights" in ONLY:
        # Its own data set, server and report (docs/insights-benchmarks.md); only when asked for by name:
        # it takes tens of minutes.
        log("insights (bench/insights.py)")
        subprocess.run([sys.executable, str(ROOT / "bench" / "insights.py")], check=True)
        if ONLY == {"insights"}:
            return
    work = Path(tempfile.mkdtemp(prefix="phlite-bench-"))
    results = {"machine": machine(), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    log(f"work dir {work}")
    ph = Phlite(work / "main").start()
    bare = None
    try:
        ph.wait_listening()
        wait_http(ph.url + "/api/projects/", headers={"Authorization": f"Bearer {ph.key}"})

        if wanted("batch"):
            log("/batch")
            results["batch"] = scenario_batch(ph, work)
            log(f"  {results['batch']['stored_per_s']:,.0f} stored/s")
            log("raw sqlite3 ceiling")
            results["raw"] = scenario_raw_sqlite(max(50_000, min(results["batch"]["stored"], 300_000)), work)
            log(f"  {results['raw']['rows_per_s']:,.0f} rows/s")
            results["writer_alone"] = scenario_writer_alone(work)
            log(f"  writer alone: {results['writer_alone']['events_per_s']:,.0f} events/s")

        if any(wanted(n) for n in ("capture", "flags", "eval", "mixed", "fsync")):
            log("flags setup")
            project, _ = setup_flags(ph)
            status, flags_response, _ = request(ph.url + "/flags/?v=2", "POST", flags_body(ph.token),
                                                {"Content-Type": "application/json"})
            assert status == 200, flags_response
            results["flags_response"] = orjson.loads(flags_response)
            bare = BareApp(flags_response)

            if wanted("capture"):
                log("/capture vs bare")
                cap_file = work / "capture.req"
                write_requests(cap_file, capture_requests(ph.token))
                with Profiler(ph.proc.pid, "capture", work / "profiles"):
                    results["capture"] = scenario_http_pair(ph, bare, [cap_file])
            if wanted("fsync"):
                log("/capture with --fsync batch vs the default")
                cap_file = work / "capture.req"
                write_requests(cap_file, capture_requests(ph.token))
                results["fsync"] = scenario_fsync(ph, work, cap_file)
            if wanted("flags"):
                log("/flags vs bare")
                flags_file = work / "flags.req"
                write_requests(flags_file, [("POST", "/flags/?v=2", "application/json", None, flags_body(ph.token))])
                with Profiler(ph.proc.pid, "flags", work / "profiles"):
                    results["flags"] = scenario_http_pair(ph, bare, [flags_file])
            if wanted("eval"):
                log("flag evaluation in process")
                results["eval"] = scenario_flag_eval(ph)
            if wanted("mixed"):
                log("mixed")
                results["mixed"] = scenario_mixed(ph, project, work, ph.token)
    finally:
        if bare:
            bare.stop()
        ph.stop()
    if wanted("big"):
        log("cold start and 1M events")
        results["big"] = scenario_big(work)
    if wanted("threads"):
        log("/capture at 4, 8 and 16 waitress threads")
        results["threads"] = scenario_threads(work)
    if ONLY:
        results.pop("flags_response", None)
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode())
        return

    table = build_table(results)
    m = results["machine"]
    doc = f"""# Benchmarks

Latest run of `bash bench/run.sh` (how to run and read it: [bench/README.md](../bench/README.md)). Every
figure sits next to a baseline measured in the same run on the same machine: the machines here are shared
and their speed drifts, so read ratios, not absolute numbers.

- date: {results['date']}
- machine: {m['cores']} cores, {m['cpu']}, Linux {m['kernel']}
- versions: phlite {m['phlite']} ({m['commit']}), Python {m['python']}, SQLite {m['sqlite']}, bottle {m['bottle']},
  waitress {m['waitress']}, peewee {m['peewee']}, orjson {m['orjson']}, posthog {m['posthog']}, {m['wrk']}
- load: wrk, {WRK_THREADS} threads, {CONNECTIONS} keep-alive connections, {SECONDS:g} s per run (HTTP pairs: best of 2
  alternating runs each), on the same cores as the server; phlite with its default settings ({THREADS} threads)

{table}
Insights (trends, funnels, retention, web overview, HogQL) at 1,000,000 events, next to DuckDB:
[docs/insights-benchmarks.md](insights-benchmarks.md), written by `BENCH_ONLY=insights bash bench/run.sh`.
"""
    notes = ROOT / "bench" / "notes.md"
    if notes.exists():
        doc += "\n" + notes.read_text()
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "benchmarks.md").write_text(doc)
    raw_file = work.parent / "phlite-bench-results.json"
    raw_file.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str))
    print(table)
    print(f"\nwritten to docs/benchmarks.md; raw results in {raw_file}")
    if os.environ.get("BENCH_KEEP") != "1" and not PROFILE:
        shutil.rmtree(work, ignore_errors=True)
    elif PROFILE:
        log(f"profiles in {work / 'profiles'}")


if __name__ == "__main__":
    main()
