"""Date ranges of query requests: absolute dates and PostHog's relative strings (`-7d`, `-1mStart`).

Pure; `now_ms` is passed in (docs/insights.md "Date ranges").
"""

import re

from phlite import errors
from phlite.query import functions as fn

_RELATIVE = re.compile(r"^-?(\d+)([hdwmqy])(Start|End)?$")
_UNIT = {"h": "hour", "d": "day", "w": "week", "m": "month", "q": "quarter", "y": "year"}


def parse_date(value, now_ms, tz, attr, round_relative=False, week_start=0):
    """A date_from/date_to value as epoch ms, or None for none/'all'."""
    if value in (None, "", "all"):
        return None
    if not isinstance(value, str):
        raise errors.BadRequest(f"'{attr}' must be a string.", code="invalid", attr=attr)
    m = _RELATIVE.match(value.strip())
    if m:
        n, unit, edge = int(m.group(1)), _UNIT[m.group(2)], m.group(3)
        ms = fn.add_interval(now_ms, -n, unit, tz)
        if edge or round_relative:
            ms = fn.start_of(ms, "day" if unit in ("day",) or not edge else unit, tz, week_start)
            if edge == "End":
                ms = fn.add_interval(ms, 1, unit if unit != "hour" else "hour", tz) - 1
        return ms
    if value in ("today", "dStart"):
        return fn.start_of(now_ms, "day", tz)
    if value == "yesterday":
        return fn.start_of(fn.add_interval(now_ms, -1, "day", tz), "day", tz)
    ms = fn.parse_datetime(value, tz)
    if ms is None:
        raise errors.BadRequest(f"'{attr}' is not a date: {value!r}.", code="invalid", attr=attr)
    return ms


def ms_literal(ms, tz):
    """A time as a HogQL string literal the compiler reads back in the project zone."""
    dt = fn.to_local(ms, tz)
    return "'" + dt.isoformat(timespec="microseconds") + "'"


