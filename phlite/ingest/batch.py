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
from phlite.store.events import event_rows


@dataclass
class Result:
    stored: int = 0  # new rows (a retried event already stored is not counted)
    dropped: collections.Counter = field(default_factory=collections.Counter)  # reason -> events


def commit(store, persons, parts, mark, now_ms) -> Result:
    """Store `parts`, a list of (Record, start, stop): events [start, stop) of each, in one transaction
    that also records `mark` ((position, done_events), Store.set_spool_position).

    `persons` is the PersonProcessor (None: no person processing, for tests of the spool alone).
    :raises phlite.store.WRITE_ERRORS: the store refused; nothing of the batch is stored. Any other
        exception: something in these events cannot be stored (nothing of the batch is stored either).
    """
    result = Result()
    by_project = collections.defaultdict(list)
    for rec, start, stop in parts:
        request = Request(rec.received_ms, rec.sent_at, rec.ip, rec.token)
        kept = by_project[rec.project_id]
        operations = rec.operations
        for i in range(start, stop):
            ev = normalize_event(rec.events[i], request=request)
            if isinstance(ev, str):
                result.dropped[ev] += 1
                continue
            if operations is not None and operations[i] is not None:
                ev.mixpanel = operations[i]
            kept.append(ev)
        if not kept:  # every event dropped: no person processing for the project
            del by_project[rec.project_id]
    with store.transaction():
        for project_id, events in by_project.items():
            if persons is not None:
                events = persons.process(store, project_id, events, now_ms)
            result.stored += store.insert_event_rows(event_rows(project_id, events, now_ms))
        store.set_spool_position(*mark)
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
