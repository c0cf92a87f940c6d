"""The SQLite functions a translated query calls (registered on the read-only query connection).

Pure: each is a function of its arguments. Times are epoch milliseconds (UTC) inside SQLite; a
function that depends on the calendar takes the project's IANA zone as an argument, so one
connection serves every project (docs/insights.md "Time zones").
"""

import math
import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ZONES = {}


def zone(name):
    z = _ZONES.get(name)
    if z is None:
        z = _ZONES[name] = timezone.utc if name in ("UTC", "") else ZoneInfo(name)
    return z


def to_local(ms, tz):
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone(tz))


def to_ms(dt):
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def local_midnight(d, tz):
    """Epoch ms of 00:00 of calendar day `d` in zone `tz` (a DST day is 23 or 25 hours)."""
    return to_ms(datetime(d.year, d.month, d.day, tzinfo=zone(tz)))


def local_day(ms, tz):
    """(start, end) epoch ms of the calendar day holding `ms` in zone `tz`: the days insights bucket by,
    and the daily roll-up is cut by (docs/insights.md "Roll-ups")."""
    d = to_local(ms, tz).date()
    return local_midnight(d, tz), local_midnight(d + timedelta(days=1), tz)


def parse_datetime(text, tz):
    """A date or datetime string as epoch ms; no offset means the project's zone. None if unparsable."""
    if not isinstance(text, str):
        return None
    s = text.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(tz))
    return to_ms(dt)


# --- property values (docs/insights.md "Property values") -----------------------------


def prop(raw):
    """A property read through `->` (JSON text) as HogQL gives it: a nullable string; '' and
    'null' are NULL; strings unquoted; numbers, booleans, objects and arrays as their JSON text."""
    if raw is None:
        return None
    if raw.startswith('"'):
        s = orjson.loads(raw)
        return None if s in ("", "null") else s
    return None if raw == "null" else raw


def prop_key(text, *keys):
    """Property access for keys a JSON path cannot spell (quotes, dots, brackets in the key)."""
    if text is None:
        return None
    try:
        v = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k)
        elif isinstance(v, list) and isinstance(k, str) and k.lstrip("-").isdigit():
            i = int(k)
            v = v[i - 1] if 0 < i <= len(v) else None
        else:
            return None
    if v is None:
        return None
    if isinstance(v, str):
        return None if v in ("", "null") else v
    return orjson.dumps(v).decode()


# --- casts -----------------------------------------------------------------------------


def to_int(v):
    if v is None or isinstance(v, int):
        return v
    try:
        f = float(v)
        return int(f) if math.isfinite(f) else None
    except (TypeError, ValueError):
        return None


def to_float(v):
    if v is None or isinstance(v, float):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def to_string(v):
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def to_datetime(v, tz):
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return int(v * 1000)  # toDateTime(unix seconds)
    return parse_datetime(v, tz)


def to_date(v, tz):
    """A DateTime (ms) or a string as 'YYYY-MM-DD' in the project's zone."""
    if v is None:
        return None
    if isinstance(v, int):
        return to_local(v, tz).date().isoformat()
    if isinstance(v, str):
        try:
            return date.fromisoformat(v[:10]).isoformat()
        except ValueError:
            return None
    return None


# --- calendar ----------------------------------------------------------------------------


_SLOT_MS = 900_000  # every zone offset since 1980 is a multiple of 15 minutes, changing at a slot's start
_SLOT_SINCE = 315_532_800_000  # 1980-01-01
_SLOTS = {}


def start_of_cached(ms, unit, tz, week_start=0):
    """start_of for the query connection, called once per row: units of 15 minutes and more are the
    same for a whole 15-minute slot of UTC (its zone offset is constant and a multiple of 15 minutes),
    so each slot is computed once (a dict lookup instead of calendar arithmetic per row)."""
    if ms is None or unit in ("second", "minute") or ms < _SLOT_SINCE:
        return start_of(ms, unit, tz, week_start)
    slot = ms // _SLOT_MS
    key = (slot, unit, tz, week_start)
    hit = _SLOTS.get(key)
    if hit is None:
        lo = slot * _SLOT_MS
        hit = start_of(lo, unit, tz, week_start)
        if start_of(lo + _SLOT_MS - 1, unit, tz, week_start) != hit:  # not so in this zone: no cache
            return start_of(ms, unit, tz, week_start)
        if len(_SLOTS) > 500_000:
            _SLOTS.clear()
        _SLOTS[key] = hit
    return hit


def start_of(ms, unit, tz, week_start=0):
    """toStartOf<unit> in zone tz; week_start 0 = Sunday, 1 = Monday."""
    if ms is None:
        return None
    dt = to_local(ms, tz)
    if unit == "second":
        return ms - ms % 1000
    if unit == "minute":
        return to_ms(dt.replace(second=0, microsecond=0))
    if unit == "hour":
        return to_ms(dt.replace(minute=0, second=0, microsecond=0))
    d = dt.date()
    if unit == "week":
        back = (d.weekday() + 1) % 7 if week_start == 0 else d.weekday()
        d -= timedelta(days=back)
    elif unit == "month":
        d = d.replace(day=1)
    elif unit == "quarter":
        d = d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)
    elif unit == "year":
        d = d.replace(month=1, day=1)
    return local_midnight(d, tz)


def add_interval(ms, n, unit, tz):
    """Calendar arithmetic: months and years keep the local wall time (clamped to the month's end)."""
    if ms is None or n is None:
        return None
    n = int(n)
    if unit in ("second", "minute", "hour", "day", "week"):
        if unit in ("day", "week"):
            dt = to_local(ms, tz)
            days = n * (7 if unit == "week" else 1)
            naive = dt.replace(tzinfo=None) + timedelta(days=days)
            return to_ms(naive.replace(tzinfo=zone(tz)))
        return ms + n * {"second": 1000, "minute": 60_000, "hour": 3_600_000}[unit]
    months = n * (12 if unit == "year" else 3 if unit == "quarter" else 1)
    dt = to_local(ms, tz)
    y, m = divmod(dt.month - 1 + months, 12)
    y += dt.year
    m += 1
    last = (date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)).day
    naive = dt.replace(tzinfo=None, year=y, month=m, day=min(dt.day, last))
    return to_ms(naive.replace(tzinfo=zone(tz)))


def date_diff(unit, a, b, tz):
    """ClickHouse dateDiff: how many `unit` boundaries are crossed from a to b (23:59 -> 00:01 is 1 day)."""
    if a is None or b is None:
        return None
    unit = str(unit).lower().rstrip("s")
    if unit in ("second", "minute", "hour"):
        step = {"second": 1000, "minute": 60_000, "hour": 3_600_000}[unit]
        return b // step - a // step
    da, db_ = to_local(a, tz), to_local(b, tz)
    if unit == "day":
        return (db_.date() - da.date()).days
    if unit == "week":
        # ClickHouse counts Monday-based weeks.
        ma = da.date() - timedelta(days=da.weekday())
        mb = db_.date() - timedelta(days=db_.weekday())
        return (mb - ma).days // 7
    if unit == "month":
        return (db_.year - da.year) * 12 + db_.month - da.month
    if unit == "quarter":
        return (db_.year - da.year) * 4 + (db_.month - 1) // 3 - (da.month - 1) // 3
    if unit == "year":
        return db_.year - da.year
    return None


def date_part(ms, part, tz):
    if ms is None:
        return None
    dt = to_local(ms, tz)
    if part == "dayofweek":
        return dt.isoweekday()  # Monday = 1 ... Sunday = 7
    return getattr(dt, part)


def format_datetime(ms, tz):
    """A DateTime as the response shows it: RFC 3339 in the project zone, microseconds if any."""
    dt = to_local(ms, tz)
    s = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
    return s.replace("+00:00", "Z")


_MYSQL = {"%Y": "%Y", "%m": "%m", "%d": "%d", "%H": "%H", "%M": "%M", "%S": "%S", "%i": "%M", "%s": "%S",
          "%y": "%y", "%e": "%-d", "%j": "%j", "%u": "%u", "%w": "%w", "%p": "%p", "%I": "%I", "%%": "%%",
          "%F": "%Y-%m-%d", "%T": "%H:%M:%S", "%D": "%m/%d/%y", "%b": "%b", "%a": "%a", "%A": "%A", "%B": "%B"}


def format_datetime_fmt(ms, fmt, tz):
    if ms is None or fmt is None:
        return None
    dt = to_local(ms, tz)
    out = re.sub(r"%.", lambda m: dt.strftime(_MYSQL.get(m.group(0), m.group(0).replace("%", "%%"))), fmt)
    return out


# --- strings and regexes -------------------------------------------------------------------


_RE_CACHE = {}


def _re(pattern):
    r = _RE_CACHE.get(pattern)
    if r is None:
        if len(_RE_CACHE) > 256:
            _RE_CACHE.clear()
        r = _RE_CACHE[pattern] = re.compile(pattern)
    return r


def match(s, pattern):
    if s is None or pattern is None:
        return None
    return 1 if _re(pattern).search(str(s)) else 0


def extract(s, pattern):
    if s is None or pattern is None:
        return None
    m = _re(pattern).search(str(s))
    if not m:
        return ""
    return m.group(1) if m.re.groups else m.group(0)


def replace_regexp(s, pattern, repl, count):
    if s is None or pattern is None or repl is None:
        return None
    repl = re.sub(r"\\(\d)", r"\\g<\1>", repl)
    return _re(pattern).sub(repl, str(s), count=count)


def replace_one(s, old, new):
    if s is None or old is None or new is None:
        return None
    return str(s).replace(old, new, 1)


def substring(s, start, length=None):
    if s is None or start is None:
        return None
    s, start = str(s), int(start)
    i = start - 1 if start > 0 else max(len(s) + start, 0)
    return s[i:] if length is None else s[i:i + max(int(length), 0)]


def position(s, needle):
    if s is None or needle is None:
        return None
    return str(s).find(str(needle)) + 1


def split_by_char(sep, s):
    if s is None or sep is None:
        return None
    return orjson.dumps(str(s).split(sep)).decode()


# --- JSON --------------------------------------------------------------------------------


def _json_path(text, keys):
    try:
        v = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None, False
    for k in keys:
        if isinstance(v, dict) and isinstance(k, str) and k in v:
            v = v[k]
        elif isinstance(v, list) and isinstance(k, int) and 0 < k <= len(v):
            v = v[k - 1]
        else:
            return None, False
    return v, True


def json_extract_string(text, *keys):
    v, ok = _json_path(text, keys)
    return v if ok and isinstance(v, str) else ""


def json_extract_raw(text, *keys):
    v, ok = _json_path(text, keys)
    return orjson.dumps(v).decode() if ok else ""


def json_extract_number(text, *keys):
    v, ok = _json_path(text, keys)
    return v if ok and isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def json_extract_array_raw(text, *keys):
    v, ok = _json_path(text, keys)
    return orjson.dumps([orjson.dumps(x).decode() for x in v]).decode() if ok and isinstance(v, list) else "[]"


def json_has(text, *keys):
    return 1 if _json_path(text, keys)[1] else 0


def json_length(text, *keys):
    v, ok = _json_path(text, keys)
    return len(v) if ok and isinstance(v, (list, dict)) else 0


def array_has(arr, x):
    v, ok = _json_path(arr, ())
    return 1 if ok and isinstance(v, list) and x in v else 0


# --- aggregates ----------------------------------------------------------------------------


class Quantile:
    """quantile(p)(x) and median(x): exact, with linear interpolation (ClickHouse's is approximate)."""

    def __init__(self):
        self.values = []
        self.p = 0.5

    def step(self, value, p):
        self.p = p
        if value is None:
            return
        try:
            self.values.append(float(value))
        except (TypeError, ValueError):
            pass

    def finalize(self):
        if not self.values:
            return None
        v = sorted(self.values)
        pos = (len(v) - 1) * float(self.p)
        lo = math.floor(pos)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)


class GroupArray:
    def __init__(self):
        self.values = []

    def step(self, value):
        if value is not None:
            self.values.append(value)

    def finalize(self):
        return orjson.dumps(self.values).decode()


class ArgMax:
    def __init__(self):
        self.best = None
        self.value = None
        self.seen = False

    def step(self, value, key):
        if key is not None and (not self.seen or key > self.best):
            self.best, self.value, self.seen = key, value, True

    def finalize(self):
        return self.value


class ArgMin(ArgMax):
    def step(self, value, key):
        if key is not None and (not self.seen or key < self.best):
            self.best, self.value, self.seen = key, value, True


def uuid_text(raw):
    if raw is None:
        return None
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# name -> (number of args (-1: any), function); registered with deterministic=True.
SCALARS = {
    "ph_prop": (1, prop),
    "ph_prop_key": (-1, prop_key),
    "ph_to_int": (1, to_int),
    "ph_to_float": (1, to_float),
    "ph_to_string": (1, to_string),
    "ph_to_datetime": (2, to_datetime),
    "ph_to_date": (2, to_date),
    "ph_parse_datetime": (2, parse_datetime),
    "ph_start_of": (4, start_of_cached),
    "ph_add_interval": (4, add_interval),
    "ph_date_diff": (4, date_diff),
    "ph_date_part": (3, date_part),
    "ph_format_datetime": (3, format_datetime_fmt),
    "ph_match": (2, match),
    "ph_extract": (2, extract),
    "ph_replace_regexp": (4, replace_regexp),
    "ph_replace_one": (3, replace_one),
    "ph_substring": (-1, substring),
    "ph_position": (2, position),
    "ph_split_by_char": (2, split_by_char),
    "ph_json_string": (-1, json_extract_string),
    "ph_json_raw": (-1, json_extract_raw),
    "ph_json_number": (-1, json_extract_number),
    "ph_json_array_raw": (-1, json_extract_array_raw),
    "ph_json_has": (-1, json_has),
    "ph_json_length": (-1, json_length),
    "ph_has": (2, array_has),
    "ph_uuid": (1, uuid_text),
}
AGGREGATES = {
    "ph_quantile": (2, Quantile),
    "ph_group_array": (1, GroupArray),
    "ph_arg_max": (2, ArgMax),
    "ph_arg_min": (2, ArgMin),
}
