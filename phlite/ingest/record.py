"""The spool record: one accepted capture request, as it is kept on disk until it is stored.

A record is a JSON object (the spool frames it with a length and a CRC, phlite/ingest/spool.py):

    {"v": 1, "p": project id, "t": received at (epoch ms), "s": sent_at (ISO 8601) or null,
     "ip": client address or null, "k": project key, "e": [raw events, as the client sent them],
     "m": [Mixpanel operations of each event, or null] (only for /engage and /groups requests)}

Version 1 added "v" and "m". Records written before (no "v") have the same fields but "m" and
are still read: a spool written by an older phlite replays after an upgrade. A new version must
keep reading every older one. Pure: standard library, orjson, errors.
"""

from dataclasses import dataclass
from datetime import datetime

import orjson

from phlite import errors

VERSION = 1


@dataclass(slots=True)
class Record:
    project_id: int
    received_ms: int
    sent_at: datetime | None
    ip: str | None
    token: str
    events: list  # raw event dicts
    operations: list | None = None  # per event: its Mixpanel operations or None


def encode(record: Record) -> bytes:
    obj = {
        "v": VERSION,
        "p": record.project_id,
        "t": record.received_ms,
        "s": record.sent_at.isoformat() if record.sent_at else None,
        "ip": record.ip,
        "k": record.token,
        "e": record.events,
    }
    if record.operations is not None:
        obj["m"] = record.operations
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as e:
        # orjson reads 1,024 levels of nesting but writes only 254: refuse what cannot be stored.
        raise errors.BadRequest(f"failed to parse request: {e} (JSON nested too deeply)", code="invalid_payload")


def decode(payload: bytes) -> Record:
    """A record as encode() wrote it, in this version or an older one."""
    rec = orjson.loads(payload)
    version = rec.get("v", 0)
    if version > VERSION:
        raise ValueError(f"spool record version {version} is newer than this phlite reads ({VERSION})")
    return Record(
        rec["p"],
        rec["t"],
        datetime.fromisoformat(rec["s"]) if rec.get("s") else None,
        rec.get("ip"),
        rec.get("k") or "",
        rec["e"],
        rec.get("m"),
    )
