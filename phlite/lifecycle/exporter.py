"""`python app.py export`: a project's events, persons, groups, flags and cohorts into files.

Streams a page of rows at a time (Store.export_*_page), so memory stays flat however many events
there are; each file is written under a temporary name and renamed when complete, so a file with
the final name is never a partial export. Formats: docs/lifecycle.md "Export format".
"""

import csv
import gzip
import io
import os

from phlite import flags
from phlite.lifecycle import formats

PAGE = 2000


class _Out:
    """One output file: gzip JSONL or plain CSV, renamed into place by close()."""

    def __init__(self, path, fields=None):
        self.path = path
        self.tmp = path.with_name(path.name + ".partial")
        raw = open(self.tmp, "wb")
        if fields is None:
            # Level 6: about half the time of the default 9 for a few percent more bytes.
            self.f = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
            self.raw = raw
            self.csv = None
        else:
            self.f, self.raw = raw, None
            self.text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            self.csv = csv.writer(self.text)
            self.csv.writerow(fields)
        self.fields = fields
        self.rows = 0

    def write(self, records):
        if self.csv is not None:
            self.csv.writerows(formats.csv_values(r, self.fields) for r in records)
        else:
            self.f.write(b"".join(formats.json_line(r) for r in records))
        self.rows += len(records)

    def close(self):
        if self.csv is not None:
            self.text.close()
        else:
            self.f.close()
            self.raw.close()
        os.replace(self.tmp, self.path)


def _file(out_dir, name, fmt, fields):
    if fmt == "csv" and fields is not None:
        return _Out(out_dir / f"{name}.csv", fields)
    return _Out(out_dir / f"{name}.jsonl.gz")


def export(store, project_id, out_dir, *, after=None, before=None, fmt="jsonl", progress=None):
    """Write the project's data into out_dir; returns {file name: rows written}.

    `after`/`before` (epoch ms, `before` excluded) bound the events; persons, groups, flags and
    cohorts are exported whole (they have no date). `progress(done)` is called per page of events."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}

    out = _file(out_dir, "events", fmt, formats.EVENT_FIELDS)
    cursor, done = None, 0
    while True:
        rows = store.export_events_page(project_id, after=after, before=before, cursor=cursor, limit=PAGE)
        if not rows:
            break
        out.write([formats.event_record(r) for r in rows])
        cursor = (rows[-1][5], rows[-1][0])
        done += len(rows)
        if progress:
            progress(done)
    out.close()
    written[out.path.name] = out.rows

    out, cursor = _file(out_dir, "persons", fmt, formats.PERSON_FIELDS), 0
    while rows := store.export_persons_page(project_id, cursor=cursor, limit=PAGE):
        out.write([rec for r in rows for rec in formats.person_records(r)])
        cursor = rows[-1][0]
    out.close()
    written[out.path.name] = out.rows

    out, cursor = _file(out_dir, "groups", fmt, formats.GROUP_FIELDS), 0
    while rows := store.export_groups_page(project_id, cursor=cursor, limit=PAGE):
        out.write([formats.group_record(r) for r in rows])
        cursor = rows[-1][0]
    out.close()
    written[out.path.name] = out.rows

    # Definitions are nested documents: JSONL whatever the format (a CSV cell would only hold JSON).
    def cohort_record(r):
        record = flags.cohort_json(r, store.static_member_count(r["id"]) if r["is_static"] else None)
        if r["is_static"]:
            record["distinct_ids"] = store.static_members(r["id"])
        return record

    for name, page, record in (("feature_flags", store.list_flags, flags.flag_json),
                               ("cohorts", store.list_cohorts, cohort_record)):
        out, offset = _file(out_dir, name, fmt, None), 0
        while rows := page(project_id, limit=PAGE, offset=offset)[0]:
            out.write([record(r) for r in rows])
            offset += len(rows)
        out.close()
        written[out.path.name] = out.rows
    return written
