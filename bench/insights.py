"""Insights at size (docs/insights.md "Fast on SQLite"): a generated web-analytics data set sent
through the real `/batch` of a real `python app.py`, then p50 / p99 of the insight queries over HTTP,
each next to the same answer computed by DuckDB over the same events (`python app.py export`), timed
in the same run: read the ratio, the machine is shared (docs/design.md "Machine drift").

    python bench/insights.py                 # or: BENCH_ONLY=insights bash bench/run.sh

Knobs (environment): BENCH_INSIGHTS_EVENTS (default 1,000,000; a comma list runs each size, e.g.
1000000,3000000, to show growth), BENCH_INSIGHTS_PERSONS (default events / 20), BENCH_INSIGHTS_REPEAT
(runs per query, default 15), BENCH_INSIGHTS_OUT (the Markdown file written, default
docs/insights-benchmarks.md; `-` prints it only), BENCH_INSIGHTS_ORDER (`time`, the default: events
sent in time order, as a live site's arrive; `person`: person after person, as an import), BENCH_KEEP=1
(keep the data dirs), BENCH_INSIGHTS_DUCKDB_MAX=N (no export and DuckDB comparison for sizes above N
events: at 10M the export alone takes ~15 minutes),
BENCH_INSIGHTS_DATA=DIR (keep the data sets in DIR/data-<events> and reuse them on the next run: the
generation is skipped, the queries run again).
DuckDB is a dependency of this benchmark only: pip-installed here when missing.
"""

import datetime as dt
import heapq
import http.client
import itertools
import os
import platform
import queue
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from bench import Phlite, log, wait_http  # noqa: E402

DAYS = 30
REPEAT = int(os.environ.get("BENCH_INSIGHTS_REPEAT", "15"))
SIZES = [int(s) for s in os.environ.get("BENCH_INSIGHTS_EVENTS", "1000000").split(",") if s]
DUCKDB_MAX = int(os.environ.get("BENCH_INSIGHTS_DUCKDB_MAX", "0")) or float("inf")
ORDER = os.environ.get("BENCH_INSIGHTS_ORDER", "time")  # or "person" (generate's docstring)
PER_REQUEST = 1000
SENDERS = 3
TARGETS = {"trends": 200, "trends_breakdown": 200, "web_overview": 200, "funnel": 1000, "retention": 1000,
           "hogql_count": 50}

BROWSERS = [("Chrome", 60), ("Safari", 20), ("Firefox", 9), ("Edge", 7), ("Opera", 2), ("Samsung Internet", 2)]
OSES = [("Windows", 40), ("Mac OS X", 25), ("iOS", 15), ("Android", 15), ("Linux", 5)]
DEVICES = {"Windows": "Desktop", "Mac OS X": "Desktop", "Linux": "Desktop", "iOS": "Mobile", "Android": "Mobile"}
REFERRERS = [("$direct", 40), ("www.google.com", 30), ("news.ycombinator.com", 8), ("t.co", 6),
             ("www.reddit.com", 6), ("duckduckgo.com", 5), ("github.com", 5)]
PATHS = [("/", 30), ("/pricing", 12), ("/docs", 15), ("/docs/getting-started", 10), ("/blog", 8),
         ("/blog/sqlite-is-enough", 8), ("/about", 4), ("/app/dashboard", 10), ("/signup", 3)]
UTM = [("newsletter", "email", "december"), ("twitter", "social", "launch"), ("google", "cpc", "brand")]


def _pick(rng, weighted):
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


# --- the data set -----------------------------------------------------------------------------


def generate(n_events, n_persons, now_ms, seed=13, order=None):
    """posthog-js-shaped events for n_persons people over DAYS days ending at now_ms, about n_events
    in all. 60% of persons identify ($identify anon -> user, with a `signed_up`; some buy); a fifth of
    those come back later on a second device and identify again, which merges two persons. Yields event
    dicts: in time order across persons (`order` "time", the default: a live site's traffic as it
    arrives; a `purchase` is sent when it is made, up to days after its session) or person after
    person ("person": an import of history; BENCH_INSIGHTS_ORDER)."""
    order = order or ORDER
    rng = random.Random(seed)
    span = DAYS * 86_400_000
    weights = [rng.paretovariate(1.6) for _ in range(n_persons)]
    scale = n_events / sum(weights)
    streams = [_in_time_order(_person(p, weights[p], scale, span, now_ms, seed)) for p in range(n_persons)]
    if order == "person":
        merged = itertools.chain.from_iterable(streams)
    else:
        merged = heapq.merge(*streams, key=lambda item: item[0])
    for _ts, _n, event in merged:
        yield event


def _in_time_order(stream):
    """(ms, n, event) of a person's (ms, event) stream in time order: a purchase, yielded with its
    session but made later, waits until the stream reaches its time."""
    pending = []
    for n, (ts, event) in enumerate(stream):
        heapq.heappush(pending, (ts, n, event))
        while pending and pending[0][0] <= ts:
            yield heapq.heappop(pending)
    while pending:
        yield heapq.heappop(pending)


def _timed(name, distinct_id, ts_ms, props):
    return ts_ms, _event(name, distinct_id, ts_ms, props)


def _person(p, weight, scale, span, now_ms, seed):
    """One person's events as (ms, event), in time order but for a purchase (made later)."""
    rng = random.Random(seed * 1_000_003 + p)
    budget = max(2, round(weight * scale))
    first = now_ms - int(span * rng.random() ** 0.7)
    identify_at = rng.randrange(budget) if rng.random() < 0.6 else None
    second_device = identify_at is not None and rng.random() < 0.2
    devices = [f"anon-{p}"] + ([f"anon-{p}-b"] if second_device else [])
    did, device = devices[0], 0
    browser, os_ = _pick(rng, BROWSERS), _pick(rng, OSES)
    times = sorted(first + int((now_ms - first) * rng.random()) for _ in range(max(1, round(budget / 4.6))))
    emitted, identified = 0, False
    for session_start in times:
        if second_device and identified and device == 0 and rng.random() < 0.3:
            device, did = 1, devices[1]  # the second device starts anonymous
            browser, os_ = _pick(rng, BROWSERS), "iOS"
        sid, wid = str(uuid.uuid4()), str(uuid.uuid4())
        ref = _pick(rng, REFERRERS)
        utm = rng.choice(UTM) if rng.random() < 0.2 else None
        t = session_start
        for _ in range(1 + int(rng.expovariate(1 / 3))):
            path = _pick(rng, PATHS)
            props = _page_props(path, browser, os_, ref, utm, sid, wid, did)
            yield _timed("$pageview", did, t, props)
            emitted += 1
            if rng.random() < 0.3:
                t += rng.randint(1000, 20_000)
                yield _timed("$autocapture", did, t, {**props, "$event_type": "click",
                                                      "$elements_chain": "button.cta:nth-child=\"1\"text=\"Go\""})
                emitted += 1
            if identify_at is not None and not identified and emitted >= identify_at:
                identified = True
                t += rng.randint(1000, 60_000)
                yield _timed("$identify", f"user-{p}", t, {**props, "$anon_distinct_id": did, "$set": {
                    "email": f"user{p}@example.com", "plan": rng.choice(["free", "pro"])}})
                yield _timed("signed_up", f"user-{p}", t + 500, {**props})
                emitted += 2
                did = f"user-{p}"
                if rng.random() < 0.3:
                    later = {k: v for k, v in props.items() if k not in ("$session_id", "$window_id")}
                    yield _timed("purchase", did, t + rng.randint(60_000, 5 * 86_400_000),
                                 {**later, "amount": rng.choice([9, 29, 99])})  # server-side: no session
                    emitted += 1
            elif device == 1 and identified and did != f"user-{p}" and rng.random() < 0.5:
                t += rng.randint(1000, 60_000)
                yield _timed("$identify", f"user-{p}", t, {**props, "$anon_distinct_id": did})
                emitted += 1
                did = f"user-{p}"
            t += rng.randint(5_000, 120_000)


def _page_props(path, browser, os_, ref, utm, sid, wid, did):
    props = {
        "$os": os_, "$os_version": "14.5.0", "$browser": browser, "$browser_version": 126,
        "$device_type": DEVICES[os_], "$current_url": f"https://example.com{path}", "$host": "example.com",
        "$pathname": path, "$screen_height": 1117, "$screen_width": 1728, "$viewport_height": 959,
        "$viewport_width": 1728, "$lib": "web", "$lib_version": "1.200.0", "$browser_language": "en-US",
        "$referrer": "$direct" if ref == "$direct" else f"https://{ref}/", "$referring_domain": ref,
        "$session_id": sid, "$window_id": wid, "$device_id": did, "$pageview_id": str(uuid.uuid4()),
        "title": "Example: " + path.strip("/"), "$is_identified": did.startswith("user-"),
        "$process_person_profile": True,
    }
    if utm:
        props.update({"utm_source": utm[0], "utm_medium": utm[1], "utm_campaign": utm[2]})
    return props


def _event(name, distinct_id, ts_ms, props):
    ts = dt.datetime.fromtimestamp(ts_ms / 1000, dt.timezone.utc).isoformat()
    return {"event": name, "distinct_id": distinct_id, "properties": props, "timestamp": ts,
            "uuid": str(uuid.uuid4())}


# --- HTTP ---------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection to phlite."""

    def __init__(self, ph):
        self.conn = http.client.HTTPConnection("127.0.0.1", ph.port, timeout=120)
        self.auth = {"Authorization": f"Bearer {ph.key}"}

    def call(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers={**self.auth, **(headers or {})})
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def ingest(ph, events):
    """Send the events in /batch requests of PER_REQUEST from SENDERS threads, retrying 503s;
    returns (events sent, seconds until the writer stored them all)."""
    todo = queue.Queue(maxsize=SENDERS * 4)
    errors = []

    def sender():
        c = Client(ph)
        while (body := todo.get()) is not None:
            for attempt in range(600):
                status, data = c.call("POST", "/batch/", body, {"Content-Type": "application/json"})
                if status == 200:
                    break
                if status != 503:
                    errors.append((status, data[:300]))
                    break
                time.sleep(0.05 * min(attempt + 1, 10))

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    t0, sent, chunk = time.perf_counter(), 0, []
    for ev in events:
        chunk.append(ev)
        if len(chunk) == PER_REQUEST:
            todo.put(orjson.dumps({"api_key": ph.token, "batch": chunk}))
            sent += len(chunk)
            chunk = []
            if sent % 100_000 == 0:
                log(f"  sent {sent:,}")
    if chunk:
        todo.put(orjson.dumps({"api_key": ph.token, "batch": chunk}))
        sent += len(chunk)
    for _ in threads:
        todo.put(None)
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"/batch refused: {errors[:3]}")
    conn = sqlite3.connect(f"file:{ph.db}?mode=ro", uri=True)
    while conn.execute("SELECT count(*) FROM event").fetchone()[0] < sent:
        time.sleep(0.5)
    conn.close()
    return sent, time.perf_counter() - t0


# --- the queries --------------------------------------------------------------------------------


def queries(today):
    """(name, label, query node) for each insight; `today` is the data set's last day (UTC date)."""
    d0 = (today - dt.timedelta(days=DAYS - 1)).isoformat()
    d1 = today.isoformat()
    w0 = (today - dt.timedelta(days=6)).isoformat()
    rng = {"date_from": d0, "date_to": d1}
    series = [{"kind": "EventsNode", "event": "$pageview", "math": "total"},
              {"kind": "EventsNode", "event": "$pageview", "math": "dau"}]
    return [
        ("trends", "trends, 30 days daily, $pageview total + dau",
         {"kind": "TrendsQuery", "series": series, "interval": "day", "dateRange": rng}),
        ("trends_breakdown", "the same, breakdown by `$browser`",
         {"kind": "TrendsQuery", "series": series, "interval": "day", "dateRange": rng,
          "breakdownFilter": {"breakdown": "$browser", "breakdown_type": "event"}}),
        ("funnel", "funnel: /pricing pageview -> signed_up -> purchase, 14-day window, 30 days",
         {"kind": "FunnelsQuery", "dateRange": rng, "series": [
             {"kind": "EventsNode", "event": "$pageview",
              "properties": [{"key": "$pathname", "value": "/pricing", "operator": "exact", "type": "event"}]},
             {"kind": "EventsNode", "event": "signed_up"}, {"kind": "EventsNode", "event": "purchase"}],
          "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day"}}),
        ("retention", "retention: $pageview, recurring, 8 weeks",
         {"kind": "RetentionQuery", "dateRange": {"date_to": d1}, "retentionFilter": {
             "targetEntity": {"id": "$pageview", "type": "events"},
             "returningEntity": {"id": "$pageview", "type": "events"},
             "retentionType": "retention_recurring", "period": "Week", "totalIntervals": 8}}),
        ("web_overview", "web overview, last 7 days + the previous 7",
         {"kind": "WebOverviewQuery", "dateRange": {"date_from": w0, "date_to": d1}, "compareFilter": {"compare": True}}),
        ("hogql_count", "HogQL `SELECT count() FROM events WHERE event = '$pageview'`",
         {"kind": "HogQLQuery", "query": "SELECT count() FROM events WHERE event = '$pageview'"}),
        ("hogql_browser", "HogQL `SELECT properties.$browser, count() ... GROUP BY 1`",
         {"kind": "HogQLQuery", "query": "SELECT properties.$browser AS b, count() AS c FROM events"
                                         " GROUP BY b ORDER BY c DESC, b"}),
    ]


def answer(name, body):
    """The comparable part of phlite's answer."""
    r = orjson.loads(body)["results"]
    if name.startswith("trends"):
        return sorted((s.get("breakdown_value"), s["action"]["math"], tuple(s["data"])) for s in r)
    if name == "funnel":
        return [s["count"] for s in r]
    if name == "retention":
        return [[v["count"] for v in c["values"]] for c in r]
    if name == "web_overview":
        return {m["key"]: (m["value"], m["previous"]) for m in r}
    return [tuple(row) for row in r]


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.99 * (len(times) - 1)))], out


def run_phlite(ph, qs, repeat):
    c = Client(ph)
    out = {}
    for name, _label, node in qs:
        def once():
            status, data = c.call("POST", "/api/projects/1/query/", orjson.dumps({"query": node}),
                                  {"Content-Type": "application/json"})
            assert status == 200, (name, status, data[:500])
            return data
        p50, p99, data = timed(once, repeat)
        out[name] = {"p50": p50, "p99": p99, "answer": answer(name, data)}
        log(f"  {name}: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    return out


# Questions like queries()'s, as the console's pages ask them (their GET forms; docs/console.md).
CONSOLE_PAGES = [
    "/project/1/insights/trends?s0.event=%24pageview&s0.math=total&s1.event=%24pageview&s1.math=dau&date_from=-30d",
    "/project/1/insights/trends?s0.event=%24pageview&date_from=-30d&breakdown=%24browser",
    "/project/1/insights/funnels?s0.event=%24pageview&s1.event=signed_up&s2.event=purchase&date_from=-30d",
    "/project/1/insights/retention?period=Week",
    "/project/1/web?date_from=-7d",
    "/project/1/sql?q=SELECT+count()+FROM+events+WHERE+event+%3D+%27%24pageview%27",
]


def console_pages(ph, repeat):
    """The console's insight pages with their default forms, signed in: [(path, p50, p99)] (docs/console.md)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support import ConsoleClient

    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "user", "create", email, "--admin", "--json",
                          "--data-dir", str(ph.data_dir)], capture_output=True, text=True, check=True)
    link = orjson.loads(out.stdout)["link"]
    c = ConsoleClient(ph.url)
    token_path = link[link.index("/console/link/"):]
    assert c.get(token_path).status == 200
    assert c.post(token_path, {"email": email, "password": "bench horse battery staple"}).status == 303
    rows = []
    for path in CONSOLE_PAGES:
        def once():
            r = c.get(path)
            assert r.status == 200 and b"Query failed" not in r.body, (path, r.status, r.body[:300])
        try:
            p50, p99, _ = timed(once, repeat)
        except TimeoutError:  # the client waits 30 s
            p50 = p99 = float("inf")
        rows.append((path, p50, p99))
        log(f"  {path}: p50 {p50:.0f} ms")
    return rows


# --- DuckDB ---------------------------------------------------------------------------------------


def duckdb_module():
    try:
        import duckdb
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "duckdb"], check=True)
        import duckdb
    return duckdb


def load_duckdb(export_dir):
    duckdb = duckdb_module()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Typed columns for the properties the queries read: DuckDB's own way (a column per property).
    con.execute(f"""CREATE TABLE events AS SELECT event, distinct_id, coalesce(person_id, distinct_id) AS actor,
        CAST(timestamp AS TIMESTAMP) AS ts,
        json_extract_string(properties, '$."$session_id"') AS session_id,
        json_extract_string(properties, '$."$browser"') AS browser,
        json_extract_string(properties, '$."$pathname"') AS pathname
        FROM read_json('{export_dir / "events.jsonl.gz"}', columns = {{event: 'VARCHAR', distinct_id: 'VARCHAR',
            person_id: 'VARCHAR', properties: 'JSON', timestamp: 'VARCHAR'}})""")
    return duckdb.__version__, con


def duck_queries(today):
    """The same answers as queries(today), in DuckDB SQL; each returns rows shaped by `duck_answer`."""
    d0 = dt.datetime.combine(today - dt.timedelta(days=DAYS - 1), dt.time())
    d1 = dt.datetime.combine(today + dt.timedelta(days=1), dt.time())
    w0 = d1 - dt.timedelta(days=7)
    # Retention: weeks start on Sunday (PostHog's default); the window ends at the start of the week after today.
    week = "(CAST(ts AS DATE) - CAST(dayofweek(ts) AS INTEGER))"
    end_week = today + dt.timedelta(days=7 - (today.isoweekday() % 7))
    r0 = end_week - dt.timedelta(weeks=8)
    rng = f"ts >= TIMESTAMP '{d0}' AND ts < TIMESTAMP '{d1}'"
    sessions = lambda lo, hi: f"""(SELECT session_id, min(ts) AS first, max(ts) AS last,
        count(*) FILTER (WHERE event = '$pageview' AND ts >= TIMESTAMP '{lo}') AS views,
        count(*) FILTER (WHERE event = '$pageview') AS all_views,
        count(*) FILTER (WHERE event = '$autocapture') AS autocaptures,
        min(CASE WHEN event = '$pageview' THEN actor END) AS visitor
        FROM events WHERE session_id IS NOT NULL AND ts >= TIMESTAMP '{lo}' - INTERVAL 1 DAY AND ts < TIMESTAMP '{hi}'
        GROUP BY session_id)"""  # noqa: E731

    def overview(lo, hi):
        return f"""SELECT count(DISTINCT visitor), sum(views), count(*), avg(floor(epoch(last) - epoch(first))),
            100 * avg(CASE WHEN all_views > 1 OR autocaptures > 0 OR epoch(last) - epoch(first) >= 10 THEN 0 ELSE 1 END)
            FROM {sessions(lo, hi)} WHERE first >= TIMESTAMP '{lo}' AND views > 0"""
    return {
        "trends": f"""SELECT CAST(ts AS DATE) AS d, count(*), count(DISTINCT actor) FROM events
            WHERE event = '$pageview' AND {rng} GROUP BY d ORDER BY d""",
        "trends_breakdown": f"""SELECT coalesce(nullif(browser, ''), '$$_posthog_breakdown_null_$$') AS b,
            CAST(ts AS DATE) AS d, count(*), count(DISTINCT actor) FROM events
            WHERE event = '$pageview' AND {rng} GROUP BY b, d ORDER BY b, d""",
        "funnel": f"""WITH s1 AS (SELECT actor, ts FROM events WHERE event = '$pageview' AND pathname = '/pricing' AND {rng}),
            s2 AS (SELECT actor, ts FROM events WHERE event = 'signed_up' AND {rng}),
            s3 AS (SELECT actor, ts FROM events WHERE event = 'purchase' AND {rng}),
            a2 AS (SELECT s1.actor, s1.ts AS t1, min(s2.ts) AS t2 FROM s1 LEFT JOIN s2 ON s2.actor = s1.actor
                   AND s2.ts >= s1.ts AND s2.ts <= s1.ts + INTERVAL 14 DAY GROUP BY s1.actor, s1.ts),
            a3 AS (SELECT a2.actor, a2.t2, min(s3.ts) AS t3 FROM a2 LEFT JOIN s3 ON s3.actor = a2.actor
                   AND s3.ts >= a2.t2 AND s3.ts <= a2.t1 + INTERVAL 14 DAY GROUP BY a2.actor, a2.t1, a2.t2),
            best AS (SELECT actor, max(CASE WHEN t3 IS NOT NULL THEN 3 WHEN t2 IS NOT NULL THEN 2 ELSE 1 END) AS n
                     FROM a3 GROUP BY actor)
            SELECT count(*), count(*) FILTER (WHERE n >= 2), count(*) FILTER (WHERE n >= 3) FROM best""",
        "retention": f"""WITH w AS (SELECT DISTINCT actor, {week} AS wk FROM events WHERE event = '$pageview'
                AND ts >= TIMESTAMP '{r0}' AND ts < TIMESTAMP '{end_week}')
            SELECT c.wk, datediff('week', c.wk, r.wk) AS j, count(*) FROM w c JOIN w r ON r.actor = c.actor
            AND r.wk >= c.wk GROUP BY c.wk, j ORDER BY c.wk, j""",
        "web_overview": [overview(w0, d1), overview(w0 - dt.timedelta(days=7), w0)],
        "hogql_count": "SELECT count(*) FROM events WHERE event = '$pageview'",
        "hogql_browser": "SELECT browser, count(*) AS c FROM events GROUP BY browser ORDER BY c DESC, browser",
    }, r0


def duck_answer(name, rows, days, r0):
    """DuckDB rows in the shape of answer()."""
    if name == "trends":
        by_day = {r[0]: r for r in rows[0]}
        return sorted([(None, "total", tuple(by_day.get(d, (0, 0, 0))[1] for d in days)),
                       (None, "dau", tuple(by_day.get(d, (0, 0, 0))[2] for d in days))])
    if name == "trends_breakdown":
        out = {}
        for b, d, total, dau in rows[0]:
            out.setdefault(b, {})[d] = (total, dau)
        return sorted((b, m, tuple(float(v.get(d, (0, 0))[i]) for d in days))
                      for b, v in out.items() for i, m in ((0, "total"), (1, "dau")))
    if name == "funnel":
        return list(rows[0][0])
    if name == "retention":
        table = {}
        for wk, j, n in rows[0]:
            table[(wk - r0).days // 7, j] = n
        return [[float(table.get((k, j), 0)) for j in range(8)] for k in range(8)]
    if name == "web_overview":
        keys = ("visitors", "views", "sessions", "session duration", "bounce rate")
        cur, prev = rows[0][0], rows[1][0]
        return {k: (cur[i], prev[i]) for i, k in enumerate(keys)}
    return [tuple(r) for r in rows[0]]


def same(name, a, b):
    if name == "web_overview":
        return all(_close(a[k][0], b[k][0]) and _close(a[k][1], b[k][1]) for k in a)
    if name.startswith("trends") or name == "retention":
        flat = lambda v: [x for row in v for x in (row[2] if name.startswith("trends") else row)]  # noqa: E731
        keys = lambda v: [row[:2] for row in v] if name.startswith("trends") else len(v)  # noqa: E731
        return keys(a) == keys(b) and all(_close(x, y) for x, y in zip(flat(a), flat(b)))
    return a == b


def _close(x, y):
    if x is None or y is None:
        return x == y or (not x and not y)
    return abs(float(x) - float(y)) <= 1e-6 * max(1.0, abs(float(x)))


def run_duckdb(con, today, repeat):
    sqls, r0 = duck_queries(today)
    days = [today - dt.timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    out = {}
    for name, sql in sqls.items():
        parts = sql if isinstance(sql, list) else [sql]
        p50, p99, rows = timed(lambda: [con.execute(s).fetchall() for s in parts], repeat)
        out[name] = {"p50": p50, "p99": p99, "answer": duck_answer(name, rows, days, r0)}
    return out


# --- one size ---------------------------------------------------------------------------------------


def wait_rollups(db, limit_s=120):
    """Until the server's background pass has recounted every hour (and day) that is over (docs/insights.md
    "Roll-ups"): the queries are measured on a server in its steady state, not while it catches up."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            now_ms = int(time.time() * 1000)
            waiting = conn.execute("SELECT count(*) FROM rollup_dirty WHERE hour <= ?", (now_ms - 3_600_000,)).fetchone()[0]
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'day_dirty'").fetchone():  # m0015 on
                waiting += conn.execute("SELECT count(*) FROM day_dirty WHERE day_end <= ?", (now_ms,)).fetchone()[0]
        if not waiting:
            log(f"  roll-up recounted ({time.monotonic() - t0:.1f} s after the last event)")
            return
        time.sleep(0.5)
    log(f"  roll-up: {waiting} hours still waiting after {limit_s} s")


def run_size(work, n_events, n_persons):
    data = os.environ.get("BENCH_INSIGHTS_DATA")
    # A query measured must finish: past the default 10 s limit (a loaded machine) it would be a 400.
    ph = Phlite((Path(data) if data else work) / f"data-{n_events}", env={"PHLITE_QUERY_TIMEOUT": "600"})
    first = not (ph.db).exists()
    ph.start()
    if first:
        ph.wait_listening()
    meta_file = ph.data_dir / "bench-insights.json"
    result = {"events": n_events, "persons": n_persons}
    try:
        if first:
            now_ms = int(time.time() * 1000)
            wait_http(ph.url + "/api/projects/", headers={"Authorization": f"Bearer {ph.key}"})
            log(f"sending {n_events:,} events of {n_persons:,} persons through /batch")
            sent, secs = ingest(ph, generate(n_events, n_persons, now_ms))
            log(f"  stored {sent:,} in {secs:.0f} s ({sent / secs:,.0f}/s)")
            meta_file.write_bytes(orjson.dumps({"now_ms": now_ms, "key": ph.key, "token": ph.token, "sent": sent,
                                                "ingest_s": secs}))
        meta = orjson.loads(meta_file.read_bytes())
        ph.key, ph.token = meta["key"], meta["token"]
        wait_http(ph.url + "/api/projects/", headers={"Authorization": f"Bearer {ph.key}"})
        wait_rollups(ph.db)
        result.update(stored=meta["sent"], ingest_per_s=meta["sent"] / meta["ingest_s"])
        today = dt.datetime.fromtimestamp(meta["now_ms"] / 1000, dt.timezone.utc).date()
        qs = queries(today)
        log("phlite queries")
        result["phlite"] = run_phlite(ph, qs, REPEAT)
        result["pages"] = console_pages(ph, REPEAT)
    finally:
        ph.stop()
    with sqlite3.connect(f"file:{ph.db}?mode=ro", uri=True) as conn:
        result["persons_stored"] = conn.execute("SELECT count(*) FROM person").fetchone()[0]
        result["db_mb"] = (conn.execute("PRAGMA page_count").fetchone()[0]
                           * conn.execute("PRAGMA page_size").fetchone()[0]) / 1e6
    result["labels"] = {name: label for name, label, _ in qs}
    if n_events > DUCKDB_MAX:
        log(f"no DuckDB comparison above {DUCKDB_MAX:,} events (BENCH_INSIGHTS_DUCKDB_MAX)")
        result["duckdb"] = None
        return result
    export_dir = work / f"export-{n_events}"
    shutil.rmtree(export_dir, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "app.py"), "export", "--data-dir", str(ph.data_dir), "--project", "1",
                    "--out", str(export_dir)], check=True, capture_output=True)
    result["export_s"] = time.perf_counter() - t
    log(f"exported in {result['export_s']:.0f} s; DuckDB")
    version, con = load_duckdb(export_dir)
    result["duckdb_version"] = version
    result["duckdb"] = run_duckdb(con, today, REPEAT)
    con.close()
    shutil.rmtree(export_dir, ignore_errors=True)
    return result


def table(results):
    out = []
    for r in results:
        out.append(f"\n### {r['events']:,} events, {r['persons_stored']:,} persons stored "
                   f"({r['persons']:,} generated, merges applied)\n")
        out.append(f"Ingestion through `/batch` ({PER_REQUEST:,} events per request, {SENDERS} connections): "
                   f"{r['ingest_per_s']:,.0f} events stored/s. Database: {r['db_mb']:,.0f} MB.\n")
        out.append("| query | phlite p50 | phlite p99 | DuckDB p50 | ratio (phlite / DuckDB, p50) | target p50 "
                   "| same answer |")
        out.append("|---|---|---|---|---|---|---|")
        for name, label in r["labels"].items():
            p = r["phlite"][name]
            target = TARGETS.get(name)
            verdict = "" if target is None else (" met" if p["p50"] <= target else " **missed**")
            d = r["duckdb"][name] if r["duckdb"] else None
            duck = (f"{d['p50']:,.1f} ms | {p['p50'] / max(d['p50'], 0.01):,.1f}" if d else "not run | —")
            agree = "not compared" if not d else "yes" if same(name, p["answer"], d["answer"]) else "**no**"
            out.append(f"| {label} | {p['p50']:,.0f} ms | {p['p99']:,.0f} ms | {duck} "
                       f"| {f'<= {target} ms' if target else '—'}{verdict} | {agree} |")
        for path, p50, p99 in r["pages"]:
            shown = lambda v: "> 30 s" if v == float("inf") else f"{v:,.0f} ms"  # noqa: E731
            out.append(f"| console page `{urllib.parse.unquote_plus(path)}` | {shown(p50)} | {shown(p99)} "
                       "| — | — | — | — |")
    if len(results) > 1:
        a, b = results[0], results[-1]
        k = b["events"] / a["events"]
        out.append(f"\nGrowth from {a['events']:,} to {b['events']:,} events ({k:g}x the events), p50 ratio "
                   "(linear would be the same factor):\n")
        out.append("| query | " + " | ".join(f"x{k:g} events" for _ in [0]) + " |")
        out.append("|---|---|")
        for name, label in a["labels"].items():
            out.append(f"| {label} | {b['phlite'][name]['p50'] / max(a['phlite'][name]['p50'], 0.01):.2f}x |")
    return "\n".join(out) + "\n"


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 "unknown CPU")
    from phlite import __version__
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip()
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "kernel": platform.release(), "phlite": __version__,
            "commit": commit + (" with uncommitted changes" if dirty else "")}


def main():
    work = Path(tempfile.mkdtemp(prefix="phlite-insights-bench-"))
    results = []
    try:
        for n in SIZES:
            persons = int(os.environ.get("BENCH_INSIGHTS_PERSONS", "0")) or max(1, n // 20)
            results.append(run_size(work, n, persons))
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"data kept in {work}")
    m = machine()
    doc = f"""# Insights benchmark

Generated by `python bench/insights.py` (or `BENCH_ONLY=insights bash bench/run.sh`); do not edit by hand.
How it is built and what it measures: bench/README.md and docs/insights.md "Fast on SQLite".
Each query runs {REPEAT} times over HTTP (`POST /api/projects/1/query/`, one keep-alive connection) against
`python app.py` on the data set; DuckDB {next((r['duckdb_version'] for r in results if r.get('duckdb')), '(not run)')} runs the same question {REPEAT} times in
process over the same events (`python app.py export`, loaded into a table with a column per property read), and
the last column says whether both gave the same answer. The machine is shared: read the ratios.

- date: {dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
- machine: {m['cores']} cores, {m['cpu']}, Linux {m['kernel']}; Python {m['python']}, SQLite {m['sqlite']}
- phlite {m['phlite']} ({m['commit']})
- data: {DAYS} days of posthog-js-shaped `$pageview` sessions (1-10 pages, some `$autocapture`), 60% of persons
  identify (`$identify` + `signed_up`, 30% of them a `purchase`), a fifth of those merge a second device; sent
  {"in time order, as a live site's events arrive" if ORDER == "time" else "person after person, as an import"}
  (BENCH_INSIGHTS_ORDER={ORDER})
{table(results)}"""
    target = os.environ.get("BENCH_INSIGHTS_OUT", str(ROOT / "docs" / "insights-benchmarks.md"))
    if target == "-":
        print(doc)
    else:
        Path(target).write_text(doc)
        print(doc)
        log(f"written to {target}")
    raw = Path(tempfile.gettempdir()) / "phlite-insights-results.json"
    raw.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str))


if __name__ == "__main__":
    main()
