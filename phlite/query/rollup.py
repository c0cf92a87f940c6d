"""Whether an insight may read the hourly roll-up instead of the events (docs/insights.md "Roll-ups").

Pure. The roll-up `event_hour` counts each project's events per event name, UTC hour and distinct id, so
it answers a question exactly when the question reads nothing else (no property filter, breakdown,
session or property math) and every edge of its time buckets falls on a UTC hour: then each hour of
events lies wholly in one bucket. That holds in every zone whose offset is a whole number of hours
(most of them, DST included); in zones like Asia/Kolkata (+05:30) day edges fall at half hours, and
the runners read the events.

The roll-up is recounted an hour at a time after the hour is over (phlite/ingest/rollups.py); the hours
not recounted yet ("marked") are read from the events inside the same query.

The daily roll-up `actor_day` counts events per event name, day in the project's zone and person after
merges: a question with the same limits whose buckets are made of whole days reads it, with the days it
cannot trust yet (today, days with a marked hour, days marked for their recount) read through the hourly
roll-up, so only those days' events are counted per person at query time.
"""

import dataclasses

HOUR_MS = 3_600_000
# A window with more hours not yet recounted than this reads the events (the SQL lists them).
MAX_MARKED = 200
# A window with more days read through the hourly roll-up than this reads the hourly roll-up throughout.
MAX_DAYS = 10


def aligned(edges):
    """True when every edge (epoch ms; an exclusive end, a bucket start) is a UTC hour."""
    return all(e % HOUR_MS == 0 for e in edges)


def rollup_context(store, ctx, first, end, dims=False):
    """ctx reading the roll-up for the window [first, end] (ms, end inclusive), or None when too many of
    its hours wait for their recount. The caller has checked the question and its edges (`aligned`);
    `dims`: the question reads the roll-up's property columns (a breakdown)."""
    marked = store.marked_rollup_hours(ctx.project_id, first, end, MAX_MARKED)
    if len(marked) > MAX_MARKED:
        return None
    return dataclasses.replace(ctx, rollup=True, rollup_marked=tuple(marked), rollup_dims=dims)


def day_rollup_context(store, ctx, first, end, local_day):
    """ctx reading the daily roll-up for the window [first, end] (ms, end inclusive; the caller has
    checked that every bucket edge is a day start in ctx's zone), or None: the days were cut in another
    zone (or not yet), too many days must be read through the hourly roll-up, or one of those days does
    not start and end on UTC hours (a zone offset by a half hour). `local_day(ms, tz)` -> the day's
    (start, end)."""
    zone, marked_days = store.rollup_days(ctx.project_id, first, end, MAX_DAYS)
    if zone != ctx.timezone or len(marked_days) > MAX_DAYS:
        return None
    hours = store.marked_rollup_hours(ctx.project_id, first, end, MAX_MARKED)
    if len(hours) > MAX_MARKED:
        return None
    days = set(marked_days)
    for h in hours:  # an hour can straddle two days
        days |= {local_day(max(h, first), ctx.timezone), local_day(min(h + HOUR_MS - 1, end), ctx.timezone)}
    today = local_day(ctx.now_ms, ctx.timezone)
    while today[0] <= end:  # today and after: not counted yet, whatever is marked
        days.add(today)
        today = local_day(today[1], ctx.timezone)
    days = sorted(d for d in days if d[1] > first and d[0] <= end)
    if len(days) > MAX_DAYS or not aligned([e for d in days for e in d]):
        return None
    return dataclasses.replace(ctx, rollup=True, rollup_marked=tuple(hours), rollup_days=tuple(days))
