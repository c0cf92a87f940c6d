"""The writer alone, in process: N posthog-python /batch events through `Writer.submit` into a
temp data dir, then `writer.flush()` timed (no writer thread: flush drains inline), against a
raw sqlite3 `executemany` of the same rows into the same schema (the ceiling bench.py measures,
1,000 rows per transaction). Prints the median of the runs, by wall clock and by the thread's CPU
time: the cores are shared, and CPU time is the steadier figure when other work runs.

    python bench/writer_micro.py [--events 50000] [--runs 3] [--profile] [--shape python|js]
"""

import argparse
import cProfile
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/bench.py as `bench`, and phlite

from bench import NOW, js_event, python_event  # noqa: E402
from phlite.config import Config  # noqa: E402
from phlite.app import open_app  # noqa: E402
from phlite.store import Store  # noqa: E402
from phlite.store.db import PRAGMAS  # noqa: E402
from phlite.store.events import INSERT_EVENT  # noqa: E402

PER_REQUEST = 100  # events per /batch request, as bench.py sends


def requests(n_events, seed=7, shape="python"):
    """posthog-python events (no web properties), or posthog-js $pageviews (every materialized web property set)."""
    rng = random.Random(seed)
    out = []
    for start in range(0, n_events, PER_REQUEST):
        if shape == "js":
            out.append([{**js_event("phc_x", i, f"user-{rng.randint(1, 10000)}"), "uuid": str(uuid.uuid4())}
                        for i in range(min(PER_REQUEST, n_events - start))])
        else:
            out.append([python_event(i, str(uuid.uuid4()), f"user-{rng.randint(1, 10000)}")
                        for i in range(min(PER_REQUEST, n_events - start))])
    return out


def run_writer(work, batches, profile=False):
    """(wall, CPU) seconds for writer.flush() to store every submitted event; also the stored rows."""
    svc = open_app(Config(data_dir=work, queue_max_bytes=1 << 31), start_writer=False)
    try:
        with svc.store.db.connection_context():
            project = svc.store.create_project("bench")
        for events in batches:
            svc.ingestion.writer.submit(project["id"], events, sent_at=NOW, ip="127.0.0.1", token=project["api_token"])
        prof = cProfile.Profile() if profile else None
        t0, c0 = time.perf_counter(), time.thread_time()
        with svc.store.db.connection_context():
            if prof:
                prof.enable()
            assert svc.ingestion.flush(600)
            if prof:
                prof.disable()
        elapsed = time.perf_counter() - t0, time.thread_time() - c0
        assert svc.ingestion.writer.stored == sum(map(len, batches)), (svc.ingestion.writer.stored, dict(svc.ingestion.writer.dropped))
        with svc.store.db.connection_context():
            rows = svc.store.db.execute_sql(
                "SELECT project_id, uuid, event, distinct_id, properties, timestamp, created_at, person_id"
                " FROM event ORDER BY id").fetchall()
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        return elapsed, rows
    finally:
        svc.close()


def run_raw(work, rows):
    """(wall, CPU) seconds for sqlite3 executemany of the same rows, 1,000 per transaction, phlite's schema."""
    path = work / "phlite.db"
    Store(path).close()  # the migrations: exactly phlite's schema and indexes
    conn = sqlite3.connect(path, isolation_level=None)
    for k, v in PRAGMAS.items():
        conn.execute(f"PRAGMA {k} = {v}")
    t0, c0 = time.perf_counter(), time.thread_time()
    for start in range(0, len(rows), 1000):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_EVENT, rows[start:start + 1000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0, time.thread_time() - c0
    conn.close()
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile one writer run instead")
    ap.add_argument("--shape", choices=("python", "js"), default="python",
                    help="posthog-python events, or posthog-js $pageviews with web properties")
    args = ap.parse_args()
    batches = requests(args.events, shape=args.shape)
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            run_writer(Path(tmp), batches, profile=True)
        return
    writer_s, raw_s = [], []
    n = args.events
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            elapsed, rows = run_writer(Path(tmp) / "w", batches)
            writer_s.append(elapsed)
            raw_s.append(run_raw(Path(tmp) / "raw", rows))
        print(f"run {i + 1}: writer {n / writer_s[-1][0]:,.0f} ev/s ({n / writer_s[-1][1]:,.0f} per CPU s),"
              f" raw {n / raw_s[-1][0]:,.0f} rows/s ({n / raw_s[-1][1]:,.0f} per CPU s)", file=sys.stderr)
    for k, label in ((0, "wall"), (1, "CPU ")):
        w = n / statistics.median(s[k] for s in writer_s)
        r = n / statistics.median(s[k] for s in raw_s)
        print(f"{n:,} events, median of {args.runs}, {label}: writer {w:,.0f} ev/s,"
              f" raw executemany {r:,.0f} rows/s, ratio {w / r:.2f}")


if __name__ == "__main__":
    main()
