"""`python app.py export` and the console's download: a project's events, persons, groups, flags and cohorts.

One code path for both: `stream()` yields the bytes of one file (gzip JSONL or CSV) a page of rows at a
time (Store.export_*_page), so memory stays flat however many events there are. `export()` writes each
stream to a file under a temporary name and renames it when complete, so a file with the final name is
never a partial export; the console sends the same bytes as a download (phlite/web/console/settings.py).
Formats: docs/lifecycle.md "Export format".
"""

import csv
import gzip
import io
import os

from phlite import flags
from phlite.lifecycle import formats

PAGE = 2000
TABLES = ("events", "persons", "groups", "feature_flags", "cohorts")
# The tables CSV can hold: the others are nested documents, JSONL whatever the format (a CSV cell would only
# hold JSON).
CSV_FIELDS = {"events": formats.EVENT_FIELDS, "persons": formats.PERSON_FIELDS, "groups": formats.GROUP_FIELDS}


def file_name(table, fmt):
    return f"{table}.csv" if fmt == "csv" and table in CSV_FIELDS else f"{table}.jsonl.gz"


class _Sink:
    """A write-only file whose bytes are taken out after each page (what GzipFile writes into)."""

    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        out = b"".join(self.parts)
        self.parts.clear()
        return out


class Stream:
    """The bytes of one export file, as an iterable of chunks; `rows` counts the records written so far."""

    def __init__(self, store, project_id, table, fmt="jsonl", *, after=None, before=None, progress=None):
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        self.store, self.project_id, self.table = store, project_id, table
        self.after, self.before, self.progress = after, before, progress
        self.fields = CSV_FIELDS.get(table) if fmt == "csv" else None
        self.name = file_name(table, fmt)
        self.rows = 0

    def __iter__(self):
        if self.fields is not None:
            text = io.StringIO()
            out = csv.writer(text)
            out.writerow(self.fields)
            for records in self._pages():
                out.writerows(formats.csv_values(r, self.fields) for r in records)
                self.rows += len(records)
                yield text.getvalue().encode()
                text.seek(0)
                text.truncate()
            if text.tell():  # no rows: the header alone
                yield text.getvalue().encode()
            return
        sink = _Sink()
        # Level 6: about half the time of the default 9 for a few percent more bytes. mtime 0: the same
        # data gives the same bytes.
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=6, mtime=0)
        for records in self._pages():
            gz.write(b"".join(formats.json_line(r) for r in records))
            self.rows += len(records)
            chunk = sink.take()
            if chunk:
                yield chunk
        gz.close()
        yield sink.take()

    def _pages(self):
        """Lists of records, a page at a time."""
        store, pid = self.store, self.project_id
        if self.table == "events":
            cursor, done = None, 0
            while rows := store.export_events_page(pid, after=self.after, before=self.before, cursor=cursor,
                                                   limit=PAGE):
                yield [formats.event_record(r) for r in rows]
                cursor = (rows[-1][5], rows[-1][0])
                done += len(rows)
                if self.progress:
                    self.progress(done)
        elif self.table == "persons":
            cursor = 0
            while rows := store.export_persons_page(pid, cursor=cursor, limit=PAGE):
                yield [rec for r in rows for rec in formats.person_records(r)]
                cursor = rows[-1][0]
        elif self.table == "groups":
            cursor = 0
            while rows := store.export_groups_page(pid, cursor=cursor, limit=PAGE):
                yield [formats.group_record(r) for r in rows]
                cursor = rows[-1][0]
        else:
            page, record = ((store.list_flags, flags.flag_json) if self.table == "feature_flags"
                            else (store.list_cohorts, self._cohort_record))
            offset = 0
            while rows := page(pid, limit=PAGE, offset=offset)[0]:
                yield [record(r) for r in rows]
                offset += len(rows)

    def _cohort_record(self, r):
        record = flags.cohort_json(r, self.store.static_member_count(r["id"]) if r["is_static"] else None)
        if r["is_static"]:
            record["distinct_ids"] = self.store.static_members(r["id"])
        return record


def stream(store, project_id, table, fmt="jsonl", *, after=None, before=None, progress=None):
    """One export file's bytes, chunk by chunk (see Stream)."""
    return Stream(store, project_id, table, fmt, after=after, before=before, progress=progress)


def export(store, project_id, out_dir, *, after=None, before=None, fmt="jsonl", progress=None):
    """Write the project's data into out_dir; returns {file name: rows written}.

    `after`/`before` (epoch ms, `before` excluded) bound the events; persons, groups, flags and
    cohorts are exported whole (they have no date). `progress(done)` is called per page of events."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for table in TABLES:
        s = Stream(store, project_id, table, fmt, after=after, before=before, progress=progress)
        path = out_dir / s.name
        tmp = path.with_name(path.name + ".partial")
        with open(tmp, "wb") as f:
            for chunk in s:
                f.write(chunk)
        os.replace(tmp, path)
        written[path.name] = s.rows
    return written
