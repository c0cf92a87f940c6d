"""One group commit: spooled records -> normalised events -> persons and groups -> stored rows.

`commit(store, persons, items, now_ms)` runs in the writer thread (phlite/ingest/writer.py), or
directly in a test: it needs no thread, no queue and no clock. The events of every record and the
spool position of the last one are committed in one SQLite transaction, so a record is stored
exactly once (a crash before the commit replays it). Events that cannot be stored (no name, no
distinct id...) are dropped and counted, their siblings are stored.
"""

import collections
from dataclasses import dataclass, field

from phlite.ingest import record
from phlite.ingest.normalize import Request, normalize_event
from phlite.store.events import event_rows


@dataclass
class Result:
    stored: int = 0  # new rows (a retried event already stored is not counted)
    dropped: collections.Counter = field(default_factory=collections.Counter)  # reason -> events


def commit(store, persons, items, now_ms) -> Result:
    """Store `items`, a list of (spool position, record bytes), in one transaction.

    `persons` is the PersonProcessor (None: no person processing, for tests of the spool alone).
    :raises phlite.store.DatabaseError: the store refused; nothing of the batch is stored.
    """
    result = Result()
    by_project = collections.defaultdict(list)
    for _, payload in items:
        rec = record.decode(payload)
        request = Request(rec.received_ms, rec.sent_at, rec.ip, rec.token)
        kept = by_project[rec.project_id]
        operations = rec.operations
        for i, raw in enumerate(rec.events):
            ev = normalize_event(raw, request=request)
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
        store.set_spool_position(items[-1][0])
    return result
