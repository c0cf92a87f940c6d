"""`python app.py import FILE...`: events from files, through the normal ingestion path.

Each file is read a line (or CSV row) at a time, turned into raw events by formats.raw_event and
submitted to Ingestion in chunks, as a client's /batch would be: spooled, stored by the writer,
persons built in file order, and a uuid already stored in the project ignored. So an interrupted
import run again stores only what is missing. Formats: docs/lifecycle.md "Import formats".
"""

import collections
import csv
import gzip
import io
import os

import orjson

from phlite.ingest import mixpanel_track_event
from phlite.lifecycle import formats

CHUNK = 500  # events per submitted record: a /batch of posthog-python size, ~0.5 MB


class _Counting(io.RawIOBase):
    """Counts the bytes read from the file (compressed or not), for the progress line."""

    def __init__(self, f):
        self.f = f
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, b):
        n = self.f.readinto(b)
        self.read_bytes += n or 0
        return n


def _objects(path, counter):
    """Yield each object of the file (None for a line that is not JSON)."""
    raw = open(path, "rb")
    counted = _Counting(raw)
    buffered = io.BufferedReader(counted, 1 << 16)
    stream = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == b"\x1f\x8b" else buffered
    counter.append(counted)
    try:
        name = path.name.lower()
        if ".csv" in name:
            yield from csv.DictReader(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
            return
        first = True
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                if first and line[:1] in (b"[", b"{"):
                    # A whole-file JSON document spread over lines (an array, an events API page).
                    try:
                        obj = orjson.loads(line + stream.read())
                    except orjson.JSONDecodeError:
                        yield None
                        return
                else:
                    yield None
                    continue
            first = False
            if isinstance(obj, list):
                yield from obj
            elif isinstance(obj, dict) and isinstance(obj.get("results"), list) and "event" not in obj:
                yield from obj["results"]  # an events API page
            else:
                yield obj
    finally:
        raw.close()


def import_files(ingestion, project, paths, *, progress=None):
    """Import every file into `project` (a store project dict). Returns the summary:
    {"read", "stored", "deduplicated", "dropped": {reason: n}}."""
    ingestion.flush()
    stored_before, dropped_before = ingestion.totals()
    dropped = collections.Counter()
    read = submitted = 0
    total = sum(os.path.getsize(p) for p in paths)
    done_bytes = 0
    buf = []
    for path in paths:
        counter = []
        for obj in _objects(path, counter):
            read += 1
            ev = "invalid_json" if obj is None else formats.raw_event(obj, mixpanel_track_event, project["api_token"])
            if isinstance(ev, str):
                dropped[ev] += 1
                continue
            buf.append(ev)
            if len(buf) >= CHUNK:
                ingestion.submit_historical(project["id"], buf, token=project["api_token"])
                submitted += len(buf)
                buf = []
                if progress:
                    progress(done_bytes + counter[0].read_bytes)
        done_bytes += counter[0].read_bytes if counter else 0
    if buf:
        ingestion.submit_historical(project["id"], buf, token=project["api_token"])
        submitted += len(buf)
    if progress:
        progress(total)
    if not ingestion.flush(timeout=600):
        raise RuntimeError("the writer did not store the import in time; it stays in the spool for the next start")
    stored_after, dropped_after = ingestion.totals()
    writer_dropped = dropped_after - dropped_before
    dropped.update(writer_dropped)
    stored = stored_after - stored_before
    return {"read": read, "stored": stored, "deduplicated": submitted - stored - sum(writer_dropped.values()),
            "dropped": dict(sorted(dropped.items()))}
