"""Date parsing for the is_date_* operators, as the flags server reads dates (docs/flags-protocol.md "Date operators").

Naive dates and times are wall-clock time in the team timezone, explicit offsets are honoured,
relative dates ("-7d") count back from the `now` the caller passes in; the clock is never read.
"""

import calendar
import email.utils
import functools
import math
import re
from datetime import date, datetime, timedelta, timezone, tzinfo

from .values import _RUST_FLOAT

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_RELATIVE = re.compile(r"-?([0-9]+)([hdwmy])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
# RFC 3339 as chrono accepts it: seconds required, "T", "t" or " " between date and time.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_DATE = re.compile(r"([+-]?\d{4,})-(\d{1,2})-(\d{1,2})")
_NAIVE = re.compile(r"(\d{4,})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?")
_TRAILING_ZONE = re.compile(r"(.*?)\s*(?:(UTC|GMT|Z)|([+-]\d{2}):?(\d{2}))", re.IGNORECASE)


def parse_relative(text: str) -> tuple[int, str] | None:
    """("-7d") -> (7, "d"); the number must stay below 10000."""
    match = _RELATIVE.fullmatch(text)
    if match is None or int(match.group(1)) >= 10_000:
        return None
    return int(match.group(1)), match.group(2)


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def resolve_relative(number: int, unit: str, now: datetime, tz: tzinfo = UTC) -> datetime | None:
    """now minus the interval, computed on the team's wall clock (months and years clamp the day)."""
    local = now.astimezone(tz).replace(tzinfo=None)
    try:
        if unit in "hdw":
            local -= timedelta(**{_UNITS[unit]: number})
        elif unit == "m":
            for _ in range(number):  # one month at a time, clamping each step like the server
                year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
                local = local.replace(year=year, month=month, day=min(local.day, _last_day(year, month)))
        else:
            for _ in range(number):
                year = local.year - 1
                day = min(local.day, _last_day(year, 2)) if local.month == 2 else local.day
                local = local.replace(year=year, day=day)
    except (ValueError, OverflowError):
        return None
    return _localise(local, tz)


def _localise(naive: datetime, tz: tzinfo) -> datetime | None:
    # DST overlap: the earlier instant; DST gap: no such wall-clock time, so no date (as the server).
    aware = naive.replace(tzinfo=tz, fold=0)
    if tz is not UTC and aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        return None
    return aware.astimezone(UTC)


def _fraction(text: str | None) -> int:
    return int((text or "0")[:6].ljust(6, "0"))


@functools.lru_cache(maxsize=4096)
def parse_absolute(text: str, tz: tzinfo = UTC) -> datetime | None:
    """An absolute date/time string as a UTC datetime, or None if the server could not read it."""
    try:
        match = _RFC3339.fullmatch(text)
        if match:
            y, mo, d, h, mi, s, frac, zulu, sign, oh, om = match.groups()
            offset = timedelta(0) if zulu else (1 if sign == "+" else -1) * timedelta(
                hours=int(oh), minutes=int(om)
            )
            moment = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), _fraction(frac))
            return (moment - offset).replace(tzinfo=UTC)
        match = _DATE.fullmatch(text)
        if match:
            return _localise(datetime(*(int(g) for g in match.groups())), tz)
        match = _NAIVE.fullmatch(text)
        if match:
            y, mo, d, h, mi, s, frac = match.groups()
            moment = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), _fraction(frac))
            return _localise(moment, tz)
    except (ValueError, OverflowError):
        return None
    return _parse_fallback(text)


def _parse_fallback(text: str) -> datetime | None:
    """Other common shapes (ISO 8601 variants, RFC 2822, "... UTC"); naive ones are read as UTC."""
    candidates = [text]
    match = _TRAILING_ZONE.fullmatch(text.strip())
    if match and match.group(1):
        head, named, hours, minutes = match.groups()
        candidates.append(head + ("+00:00" if named else f"{hours}:{minutes}"))
    for candidate in candidates:
        try:
            parsed = datetime.fromisoformat(candidate.strip())
        except ValueError:
            continue
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def from_timestamp(seconds: float) -> datetime | None:
    """Epoch seconds as the server reads them (floor + truncated positive fraction)."""
    if math.isinf(seconds):
        return None
    if math.isnan(seconds):
        return _EPOCH  # Rust casts NaN to 0
    whole = math.floor(seconds)
    micros = max(0, round(math.fmod(seconds, 1.0) * 1_000_000))
    try:
        return _EPOCH + timedelta(seconds=whole, microseconds=micros)
    except OverflowError:
        return None


def parse_property_date(value, now: datetime, tz: tzinfo = UTC) -> datetime | None:
    """The person/group side of a date comparison: numbers are epoch seconds, strings are dates."""
    if value is True or value is False or value is None:
        return None
    if isinstance(value, int):
        return from_timestamp(float(value)) if abs(value) < 2**63 else None
    if isinstance(value, float):
        return from_timestamp(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, date):
        return _localise(datetime(value.year, value.month, value.day), tz)
    if not isinstance(value, str):
        return None
    if _RUST_FLOAT.fullmatch(value):
        return from_timestamp(float(value))
    relative = parse_relative(value)
    if relative is not None:
        return resolve_relative(relative[0], relative[1], now, tz)
    return parse_absolute(value, tz)
