"""The query layer's shortcuts give the answers of the slow paths they replace (docs/insights.md
"Fast on SQLite"): cached time buckets, integer-arithmetic buckets in UTC, bare comparisons in WHERE."""

import random
import sqlite3

import pytest

from phlite.query import functions as fn
from phlite.query.hogql import Context, compile_query
from phlite.query.runner import FUNCTIONS

ZONES = ["UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "Europe/Berlin", "Pacific/Chatham"]


@pytest.mark.parametrize("tz", ZONES)
def test_cached_buckets_are_start_of(tz):
    rnd = random.Random(tz)
    fn._SLOTS.clear()
    times = [rnd.randrange(1_600_000_000_000, 1_700_000_000_000) for _ in range(600)]
    times += [t + d for t in times[:200] for d in (-1, 0, 1)]  # neighbours share slots
    for unit in ("hour", "day", "week", "month", "quarter", "year"):
        for ws in (0, 1):
            for t in times:
                assert fn.start_of_cached(t, unit, tz, ws) == fn.start_of(t, unit, tz, ws), (t, unit, ws)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_buckets_and_comparisons_in_sql_match_python(tz):
    """toStartOf* and toStartOfWeek over events in SQLite, against functions.start_of in Python."""
    con = sqlite3.connect(":memory:")
    for name, (n, f) in FUNCTIONS[0].items():
        con.create_function(name, n, f, deterministic=True)
    for name, (n, cls) in FUNCTIONS[1].items():
        con.create_aggregate(name, n, cls)
    con.execute("CREATE TABLE event (id INTEGER PRIMARY KEY, project_id, uuid, event, distinct_id, properties,"
                " timestamp, created_at, person_id)")
    rnd = random.Random(2)
    times = [rnd.randrange(-86_400_000 * 3, 1_800_000_000_000) for _ in range(400)] + [0, -1, 86_400_000 * 3]
    con.executemany("INSERT INTO event (project_id, uuid, event, distinct_id, properties, timestamp, created_at)"
                    " VALUES (1, x'00', 'e', 'd', '{}', ?, 0)", [(t,) for t in times])
    ctx = Context(project_id=1, timezone=tz, week_start_day=1)
    text = ("SELECT timestamp, toStartOfMinute(timestamp), toStartOfHour(timestamp), toStartOfDay(timestamp),"
            " toStartOfWeek(timestamp), toStartOfWeek(timestamp, 0), toStartOfMonth(timestamp) FROM events"
            " WHERE timestamp >= '1969-12-30' AND (timestamp < '2026-01-01' OR timestamp <= 0) ORDER BY timestamp"
            " LIMIT 1000")
    rows = con.execute(compile_query(text, ctx).sql).fetchall()
    lo, hi = fn.parse_datetime("1969-12-30", tz), fn.parse_datetime("2026-01-01", tz)
    want = sorted(t for t in times if t >= lo and (t < hi or t <= 0))
    assert [r[0] for r in rows] == want and len(want) > 100
    for t, minute, hour, day, week, week_sun, month in rows:
        assert (minute, hour, day, week, week_sun, month) == (
            fn.start_of(t, "minute", tz), fn.start_of(t, "hour", tz), fn.start_of(t, "day", tz),
            fn.start_of(t, "week", tz, 1), fn.start_of(t, "week", tz, 0), fn.start_of(t, "month", tz)), t
