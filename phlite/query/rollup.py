"""Whether an insight may read the hourly roll-up instead of the events (docs/insights.md "Roll-ups").

Pure. The roll-up `event_hour` counts each project's events per event name, UTC hour and distinct id, so
it answers a question exactly when the question reads nothing else (no property filter, breakdown,
session or property math) and every edge of its time buckets falls on a UTC hour: then each hour of
events lies wholly in one bucket. That holds in every zone whose offset is a whole number of hours
(most of them, DST included); in zones like Asia/Kolkata (+05:30) day edges fall at half hours, and
the runners read the events.
"""

HOUR_MS = 3_600_000


def aligned(edges):
    """True when every edge (epoch ms; an exclusive end, a bucket start) is a UTC hour."""
    return all(e % HOUR_MS == 0 for e in edges)
