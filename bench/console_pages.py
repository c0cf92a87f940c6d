"""Console pages at size: server time of each page (p50 / p99 of sequential requests over
127.0.0.1) with N events and M persons, next to the events list API measured in the same run
(the baseline: docs/design.md "Machine drift").

    python bench/console_pages.py [EVENTS] [PERSONS]     # default 1,000,000 and 50,000

Events are inserted with raw sqlite3 (bench.generate_events), persons the same way; then phlite
opens the data dir in process (tests/support.InProcessServer) and a signed-in client reads each page
REPEAT times. Prints a Markdown table (docs/console.md "Page speed" quotes a run).
"""

import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from support import ConsoleClient, InProcessServer, http  # noqa: E402
from bench import generate_events  # noqa: E402
from phlite.config import Config  # noqa: E402

REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))


def generate_persons(db_path, n, project_id=1):
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA synchronous = off")
    rng = random.Random(2)
    now = int(time.time() * 1000)
    conn.execute("BEGIN")
    for i in range(1, n + 1):
        props = orjson.dumps({"email": f"user-{i}@example.com", "plan": rng.choice(["free", "pro", "team"]),
                              "$browser": rng.choice(["Chrome", "Firefox", "Safari"]), "n": i})
        cur = conn.execute("INSERT INTO person (project_id, uuid, properties, created_at, is_identified)"
                           " VALUES (?, ?, ?, ?, 1)", (project_id, str(uuid.uuid4()), props, now - i * 1000))
        conn.execute("INSERT INTO person_distinct_id (project_id, distinct_id, person_id) VALUES (?, ?, ?)",
                     (project_id, f"user-{i}", cur.lastrowid))
    conn.execute("COMMIT")
    conn.close()


def timed(fn):
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times) * 1000, times[min(len(times) - 1, int(len(times) * 0.99))] * 1000


def main():
    n_events = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_persons = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    work = Path(tempfile.mkdtemp(prefix="phlite-console-bench-"))
    srv = InProcessServer(Config(data_dir=work))
    project = srv.store.create_project("bench")
    key = srv.store.create_personal_key("bench")["personal_api_key"]
    srv.close()
    t = time.perf_counter()
    generate_persons(work / "phlite.db", n_persons, project["id"])
    generate_events(work / "phlite.db", n_events, "user-1", 1, project_id=project["id"])
    print(f"generated {n_events:,} events and {n_persons:,} persons in {time.perf_counter() - t:.0f} s",
          file=sys.stderr)
    srv = InProcessServer(Config(data_dir=work))
    try:
        pid = project["id"]
        flags = srv.app.flags
        cohort = flags.create_cohort(pid, {"name": "Pro", "filters": {"properties": {"type": "OR", "values": [
            {"type": "AND", "values": [{"key": "plan", "type": "person", "value": ["pro"], "operator": "exact"}]}]}}})
        for i in range(20):
            flags.create_flag(pid, {"key": f"flag-{i}", "filters": {"groups": [
                {"properties": [{"key": "plan", "type": "person", "value": ["pro"], "operator": "exact"}],
                 "rollout_percentage": 50}, {"properties": [{"key": "id", "type": "cohort", "value": cohort["id"]}]}]}})
        srv.app.console.create_user("bench@example.com", "admin", "bench password")
        c = ConsoleClient(srv.url)
        c.sign_in("bench@example.com", "bench password")
        person = srv.store.get_person_by_distinct_id(pid, "user-1")["uuid"]
        pages = {
            "home": f"/project/{pid}/",
            "activity": f"/project/{pid}/activity",
            "activity (live poll)": f"/project/{pid}/activity/rows",
            "activity, event filter": f"/project/{pid}/activity/rows?event=signed%20up",
            "activity, property filter": f"/project/{pid}/activity/rows?prop_key=%24lib&prop_op=exact&prop_value=posthog-python",
            "persons": f"/project/{pid}/persons",
            "persons, search": f"/project/{pid}/persons?search=user-4999",
            "person": f"/project/{pid}/persons/{person}",
            "feature flags": f"/project/{pid}/feature_flags",
            "flag form": f"/project/{pid}/feature_flags/1?test=user-1",
            "cohorts": f"/project/{pid}/cohorts",
            "dynamic cohort (members)": f"/project/{pid}/cohorts/{cohort['id']}",
            "settings": f"/project/{pid}/settings",
        }
        # The insight pages (docs/console.md "Insights"), each beside the same query through /query/.
        insight_pages = {
            "trends, 30 days daily total + unique users": (
                f"/project/{pid}/insights/trends?s0.event=%24pageview&s1.event=%24pageview&s1.math=dau&date_from=-30d",
                {"kind": "TrendsQuery", "dateRange": {"date_from": "-30d"}, "trendsFilter": {"display": "ActionsLineGraph"},
                 "interval": "day", "properties": [], "series": [
                     {"kind": "EventsNode", "event": "$pageview", "math": "total", "name": "$pageview"},
                     {"kind": "EventsNode", "event": "$pageview", "math": "dau", "name": "$pageview"}]}),
            "trends, breakdown by $browser": (
                f"/project/{pid}/insights/trends?s0.event=%24pageview&date_from=-30d&breakdown=%24browser",
                {"kind": "TrendsQuery", "dateRange": {"date_from": "-30d"}, "interval": "day", "properties": [],
                 "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total", "name": "$pageview"}],
                 "breakdownFilter": {"breakdown": "$browser", "breakdown_type": "event", "breakdown_limit": 10},
                 "trendsFilter": {"display": "ActionsLineGraph"}}),
            "funnel, 3 steps, 14-day window": (
                f"/project/{pid}/insights/funnels?s0.event=page+viewed&s1.event=signed+up&s2.event=order+completed"
                "&date_from=-30d",
                {"kind": "FunnelsQuery", "dateRange": {"date_from": "-30d"}, "properties": [], "series": [
                    {"kind": "EventsNode", "event": e, "name": e} for e in ("page viewed", "signed up", "order completed")],
                 "funnelsFilter": {"funnelOrderType": "ordered", "funnelWindowInterval": 14,
                                   "funnelWindowIntervalUnit": "day"}}),
            "retention, 8 weeks": (
                f"/project/{pid}/insights/retention?period=Week&intervals=8",
                {"kind": "RetentionQuery", "properties": [], "retentionFilter": {
                    "targetEntity": {"id": "$pageview", "type": "events"}, "returningEntity": {"id": "$pageview",
                                                                                             "type": "events"},
                    "retentionType": "retention_first_time", "period": "Week", "totalIntervals": 8}}),
            "web analytics (tiles and chart)": (f"/project/{pid}/web?date_from=-7d", None),
            "web analytics, top pages table": (f"/project/{pid}/web/table?by=Page&date_from=-7d&compare=1", {
                "kind": "WebStatsTableQuery", "breakdownBy": "Page", "dateRange": {"date_from": "-7d"}, "properties": [],
                "limit": 10, "compareFilter": {"compare": True}, "includeBounceRate": True}),
            "web analytics, all tables inline": (f"/project/{pid}/web?date_from=-7d&tables=1", None),
            "SQL, count()": (f"/project/{pid}/sql?q=SELECT+count()+FROM+events",
                             {"kind": "HogQLQuery", "query": "SELECT count() FROM events"}),
        }
        auth = {"Authorization": f"Bearer {key}"}
        base = timed(lambda: http("GET", f"{srv.url}/api/projects/{pid}/events/?limit=100", headers=auth))
        print("| page | p50 ms | p99 ms | p50 / events API p50 |\n|---|---|---|---|")
        print(f"| events API, 100 newest (baseline) | {base[0]:.1f} | {base[1]:.1f} | 1.0 |")
        for name, path in pages.items():
            assert c.get(path).status == 200, path
            p50, p99 = timed(lambda: c.get(path))
            print(f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / base[0]:.1f} |", flush=True)
        print("\n| insight page | p50 ms | p99 ms | same query via /query/, p50 ms |\n|---|---|---|---|")
        for name, (path, node) in insight_pages.items():
            body = c.get(path).body
            assert b"query-error" not in body and b"Something went wrong" not in body, (path, body[-2000:])
            p50, p99 = timed(lambda: c.get(path))
            api = "–"
            if node is not None:
                api = f"{timed(lambda: http('POST', f'{srv.url}/api/projects/{pid}/query/', {'query': node}, auth))[0]:.1f}"
            print(f"| {name} | {p50:.1f} | {p99:.1f} | {api} |", flush=True)
    finally:
        srv.close()


if __name__ == "__main__":
    main()
