"""A project's home page, as data: the counts, the 30-day chart's geometry (server-rendered SVG, so
no chart library is shipped) and the "connect your app" snippets. Pure: the counts come in."""

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CHART_DAYS = 30
CHART_W, CHART_H, CHART_PAD = 600, 140, 20


def zone(name):
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def day_starts(now_s: float, tz_name: str, days: int = CHART_DAYS) -> list[int]:
    """Epoch ms of the start of each of the last `days` local days, oldest first, plus the end of
    today: days + 1 boundaries (local midnights, so a day is 23 or 25 hours across DST)."""
    tz = zone(tz_name)
    today = dt.datetime.fromtimestamp(now_s, tz).date()
    out = []
    for i in range(days - 1, -2, -1):
        d = today - dt.timedelta(days=i)
        out.append(int(dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() * 1000))
    return out


def week_start(now_s: float, tz_name: str, week_start_day: int) -> int:
    """Epoch ms of the start of this local week (week_start_day 0 = Sunday, 1 = Monday)."""
    tz = zone(tz_name)
    today = dt.datetime.fromtimestamp(now_s, tz).date()
    back = (today.weekday() + 1) % 7 if week_start_day == 0 else today.weekday()
    d = today - dt.timedelta(days=back)
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() * 1000)


def chart(boundaries: list[int], counts: list[int], tz_name: str) -> dict:
    """Bars of an SVG bar chart: [{x, y, w, h, label, count}] in a CHART_W x CHART_H box."""
    tz = zone(tz_name)
    top = max(counts, default=0) or 1
    inner_h = CHART_H - CHART_PAD
    step = CHART_W / max(1, len(counts))
    bars = []
    for i, n in enumerate(counts):
        h = round(inner_h * n / top, 1)
        day = dt.datetime.fromtimestamp(boundaries[i] / 1000, tz).date()
        bars.append({"x": round(i * step + 1, 1), "w": round(step - 2, 1), "y": round(inner_h - h, 1), "h": h,
                     "count": n, "label": day.isoformat(), "tick": (len(counts) - 1 - i) % 7 == 0})
    return {"bars": bars, "width": CHART_W, "height": CHART_H, "max": max(counts, default=0),
            "axis_y": inner_h, "total": sum(counts)}


def snippets(api_host: str, token: str) -> dict:
    """The lines a user pastes into their app, with this server and project filled in."""
    return {
        "posthog-js": (
            "npm install posthog-js\n\n"
            "import posthog from 'posthog-js'\n"
            f"posthog.init('{token}', {{ api_host: '{api_host}' }})\n"
            "posthog.capture('my event', { property: 'value' })"),
        "posthog-python": (
            "pip install posthog\n\n"
            "from posthog import Posthog\n"
            f"posthog = Posthog('{token}', host='{api_host}')\n"
            "posthog.capture('my event', distinct_id='user-1')"),
        "posthog-node": (
            "npm install posthog-node\n\n"
            "import { PostHog } from 'posthog-node'\n"
            f"const posthog = new PostHog('{token}', {{ host: '{api_host}' }})\n"
            "posthog.capture({ distinctId: 'user-1', event: 'my event' })\n"
            "await posthog.shutdown()"),
    }
