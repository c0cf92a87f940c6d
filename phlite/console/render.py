"""The console's templates: Jinja2 with autoescaping on for every template, so a captured value
(an event name, a property, a distinct id) is always text on the page, never markup."""

import datetime as dt
from pathlib import Path

import jinja2
import orjson

from phlite.console import charts

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _when(ms, tz=None):
    if ms is None:
        return ""
    if isinstance(ms, str):  # already formatted in the project's zone (the query API's rows)
        return ms[:19].replace("T", " ")
    from phlite.console.home import zone

    t = dt.datetime.fromtimestamp(ms / 1000, zone(tz))
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _json(value):
    """Pretty JSON as text (autoescaped where it is shown)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def _flag_value(value):
    """A flag's value as the SDKs see it: true / false, or the variant key."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def environment():
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = _json
    env.filters["flagvalue"] = _flag_value
    env.filters["num"] = charts.number
    env.filters["pct"] = charts.percent
    env.filters["duration"] = charts.duration
    return env
