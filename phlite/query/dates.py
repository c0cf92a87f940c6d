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
        try:
            ms = fn.add_interval(now_ms, -n, unit, tz)
            if edge or round_relative:
                ms = fn.start_of(ms, "day" if unit in ("day",) or not edge else unit, tz, week_start)
                if edge == "End":
                    ms = fn.add_interval(ms, 1, unit if unit != "hour" else "hour", tz) - 1
        except (ValueError, OverflowError):  # past year 1 or 9999
            raise errors.BadRequest(f"'{attr}' is too far from today: {value!r}.", code="invalid", attr=attr) from None
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




INTERVALS = ("minute", "hour", "day", "week", "month")


def resolve_range(date_range, interval, now_ms, tz, week_start):
    """An insight's window: (date_from, date_to, lower) in epoch ms, as PostHog resolves it
    (docs/insights.md "Date ranges"). Events count when lower <= timestamp <= date_to."""
    date_range = date_range or {}
    if not isinstance(date_range, dict):
        raise errors.BadRequest("'dateRange' must be an object.", code="invalid", attr="dateRange")
    explicit = bool(date_range.get("explicitDate"))
    raw_from, raw_to = date_range.get("date_from"), date_range.get("date_to")
    if raw_from in (None, ""):
        start = fn.add_interval(fn.start_of(now_ms, "day", tz), -7, "day", tz)
    elif raw_from == "all":
        start = None
    else:
        start = parse_date(raw_from, now_ms, tz, "date_from")
        m = _RELATIVE.match(raw_from.strip()) if isinstance(raw_from, str) else None
        if m and not m.group(3) and not explicit and interval != "minute":
            start = fn.start_of(start, "hour" if m.group(2) == "h" else "day", tz)
    end = now_ms if raw_to in (None, "") else parse_date(raw_to, now_ms, tz, "date_to")
    if not explicit:
        if interval in ("day", "week", "month"):
            end = fn.add_interval(fn.start_of(end, "day", tz), 1, "day", tz) - 1
        elif interval == "hour" and (raw_to in (None, "") or _RELATIVE.match(str(raw_to))):
            end = fn.start_of(end, "hour", tz) + 3_600_000 - 1
    if start is None:
        return None, end, None
    if interval in ("day", "month") and not explicit:
        lower = fn.start_of(start, interval, tz, week_start)
    elif interval == "week" and not explicit:
        lower = fn.start_of(start, "day", tz)
    else:
        lower = start
    return start, end, lower


def buckets(start, end, interval, tz, week_start):
    """Bucket starts from start (aligned to the interval) while <= end."""
    if interval == "minute":
        b = start - start % 60_000
    else:
        b = fn.start_of(start, interval, tz, week_start)
    out = []
    while b <= end:
        out.append(b)
        b = fn.add_interval(b, 1, interval, tz) if interval not in ("minute",) else b + 60_000
        if len(out) > 10_000:
            raise errors.BadRequest("That date range has more than 10,000 intervals; choose a larger interval.",
                                    code="invalid", attr="interval")
    return out


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def label(ms, interval, tz, start=None, end=None):
    d = fn.to_local(ms, tz)
    if interval in ("hour", "minute"):
        return f"{d.day}-{_MONTHS[d.month - 1]} {d.hour:02d}:{d.minute:02d}"
    if interval == "month":
        return f"{_MONTHS[d.month - 1]} {d.year}"
    if interval == "week":
        lo = max(ms, start) if start is not None else ms
        hi = fn.add_interval(ms, 7, "day", tz) - 1
        if end is not None:
            hi = min(hi, end)
        a, b = fn.to_local(lo, tz), fn.to_local(hi, tz)
        if a.year != b.year:
            return f"{a.day}-{_MONTHS[a.month - 1]}-{a.year} – {b.day}-{_MONTHS[b.month - 1]}-{b.year}"
        if a.month != b.month:
            return f"{a.day}-{_MONTHS[a.month - 1]} – {b.day}-{_MONTHS[b.month - 1]}"
        return f"{a.day}–{b.day} {_MONTHS[a.month - 1]}"
    return f"{d.day}-{_MONTHS[d.month - 1]}-{d.year}"


def day_text(ms, interval, tz):
    d = fn.to_local(ms, tz)
    if interval in ("hour", "minute"):
        return d.strftime("%Y-%m-%d %H:%M:%S")
    return d.strftime("%Y-%m-%d")


def iso(ms, tz):
    return fn.format_datetime(ms, tz)
