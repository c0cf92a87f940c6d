"""Settings -> "Download an export": one file of the project's export (events for a date range, persons,
groups, flags or cohorts; gzip JSONL or CSV), streamed from the same exporter as `python app.py export`, so
the download is byte for byte the file the command writes (docs/lifecycle.md "From the console")."""

import datetime

import bottle

from phlite import lifecycle

DAY_MS = 86_400_000
TYPES = {"jsonl.gz": "application/gzip", "csv": "text/csv; charset=utf-8"}


def _day(text, name):
    """A YYYY-MM-DD field as UTC epoch ms of that day's start, None if empty; ValueError names the field."""
    if not text:
        return None
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{name}' must be a day (YYYY-MM-DD).") from None
    return lifecycle.parse_when(day.isoformat())


def register(ui):
    store = ui.app.store

    @ui.page("/project/<pid:int>/export")
    def export(ctx):
        table, fmt = ctx.get("table", "events"), ctx.get("format", "jsonl")
        if table not in lifecycle.TABLES or fmt not in ("jsonl", "csv"):
            return ui.error(400, "Choose a table and a format from the settings page.", ctx.session)
        try:
            after = _day(ctx.get("from"), "from")
            until = _day(ctx.get("to"), "to")
        except ValueError as e:
            return ui.error(400, str(e), ctx.session)
        before = None if until is None else until + DAY_MS  # the "to" day is included
        if after is not None and before is not None and before <= after:
            return ui.error(400, "'to' must not be before 'from'.", ctx.session)
        pid = ctx.project["id"]
        body = lifecycle.stream(store, pid, table, fmt, after=after, before=before)
        span = "".join(f"-{x}" for x in (ctx.get("from"), ctx.get("to")) if x) if table == "events" else ""
        ext = body.name.split(".", 1)[1]
        # The body is a generator: waitress sends it chunked as the pages are read, a page in memory at a time.
        return bottle.HTTPResponse(iter(body), 200, {
            "Content-Type": TYPES[ext],
            "Content-Disposition": f'attachment; filename="phlite-project-{pid}-{table}{span}.{ext}"',
        })
