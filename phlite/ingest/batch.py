"""One group commit: spooled records -> normalised events -> persons and groups -> stored rows.

`commit(store, persons, parts, mark, now_ms)` runs in the writer thread (phlite/ingest/writer.py), or
directly in a test: it needs no thread, no queue and no clock. `parts` are slices of decoded records;
their events and `mark` (the spool position they bring the store to) are committed in one SQLite
transaction, so an event is stored exactly once (a crash before the commit replays it). Events that
cannot be stored (no name, no distinct id...) are dropped and counted, their siblings are stored.

`commit_one(...)` is the writer's slow path for a slice that failed as a whole: one event per
transaction, and an event that still fails goes to the quarantine with its reason, alone.
"""

import collections
from dataclasses import dataclass, field

import orjson

from phlite.ingest.normalize import Request, normalize_event


# Events normalised and processed together inside a group commit; between two slices the commit
# checks its time budget (docs/reliability.md "Long writer transactions"). A slice boundary is like
# a commit boundary for person processing (each slice is one PersonProcessor.process call).
SLICE_EVENTS = 1000


@dataclass
class Result:
    stored: int = 0  # new rows (a retried event already stored is not counted)
    dropped: collections.Counter = field(default_factory=collections.Counter)  # reason -> events
    # How far the commit got: `finished` parts wholly stored, then events [start, index) of the next.
    finished: int = 0
    index: int = 0


def commit(store, persons, parts, mark, now_ms, *, over_time=None, slice_events=None) -> Result:
    """Store `parts`, a list of (Record, start, stop): events [start, stop) of each, in one transaction
    that also records `mark` ((position, done_events), Store.set_spool_position).

    `over_time`: called between slices of `slice_events` events; once it returns True the commit stops
    there with what it has, and `mark` must then be a function (finished, index) -> the spool mark of
    that point (see Result). A part whose Record is None (an unreadable record) holds no events.
    `persons` is the PersonProcessor (None: no person processing, for tests of the spool alone).
    :raises phlite.store.WRITE_ERRORS: the store refused; nothing of the batch is stored. Any other
        exception: something in these events cannot be stored (nothing of the batch is stored either).
    """
    result = Result()
    slice_events = slice_events or SLICE_EVENTS
    i, index = 0, parts[0][1] if parts else 0
    with store.transaction():
        while True:
            by_project = collections.defaultdict(list)
            taken = 0
            while i < len(parts) and taken < slice_events:
                rec, start, stop = parts[i]
                end = index if rec is None else min(stop, index + slice_events - taken)
                if rec is not None and end > index:
                    request = Request(rec.received_ms, rec.sent_at, rec.ip, rec.token)
                    kept = by_project[rec.project_id]
                    operations = rec.operations
                    events = rec.events
                    for j in range(index, end):
                        ev = normalize_event(events[j], request=request)
                        if isinstance(ev, str):
                            result.dropped[ev] += 1
                            continue
                        if operations is not None and operations[j] is not None:
                            ev.mixpanel = operations[j]
                        kept.append(ev)
                    taken += end - index
                if rec is None or end >= stop:
                    i += 1
                    index = parts[i][1] if i < len(parts) else 0
                else:
                    index = end
            for project_id, events in by_project.items():
                if not events:  # every event dropped: no person processing for the project
                    continue
                if persons is not None:
                    events = persons.process(store, project_id, events, now_ms)
                result.stored += store.insert_events(project_id, events, now_ms)
            if i >= len(parts) or (over_time is not None and over_time()):
                break
        result.finished, result.index = i, index
        store.set_spool_position(*(mark(i, index) if callable(mark) else mark))
    return result


def quarantine(store, rec, index, reason, mark, now_ms):
    """Set event `index` of `rec` aside with its reason, recording `mark` in the same transaction."""
    event = {"event": rec.events[index]}
    if rec.operations is not None and rec.operations[index] is not None:
        event["operations"] = rec.operations[index]
    try:
        text = orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = orjson.dumps({"event": repr(event)[:100_000]}).decode()
    with store.transaction():
        store.quarantine_event(rec.project_id, rec.received_ms, now_ms, reason, text)
        store.set_spool_position(*mark)
