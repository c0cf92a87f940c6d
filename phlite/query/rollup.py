"""Whether an insight may read the hourly roll-up instead of the events (docs/insights.md "Roll-ups").

Pure. The roll-up `event_hour` counts each project's events per event name, UTC hour and distinct id, so
it answers a question exactly when the question reads nothing else (no property filter, breakdown,
session or property math) and every edge of its time buckets falls on a UTC hour: then each hour of
events lies wholly in one bucket. That holds in every zone whose offset is a whole number of hours
(most of them, DST included); in zones like Asia/Kolkata (+05:30) day edges fall at half hours, and
the runners read the events.

The roll-up is recounted an hour at a time after the hour is over (phlite/ingest/rollups.py); the hours
not recounted yet ("marked") are read from the events inside the same query.
"""

import dataclasses

HOUR_MS = 3_600_000
# A window with more hours not yet recounted than this reads the events (the SQL lists them).
MAX_MARKED = 200


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
