"""Mixpanel's request shapes -> PostHog-shaped events plus explicit Mixpanel operations.

`/track` and `/import` events keep their shape (their `time` and `$insert_id` become timestamp and
uuid); an `/engage` people update becomes a `$identify` event, a `/groups` update a `$groupidentify`
event. The operations PostHog has no word for (`$add`, `$append`, `$union`, `$remove`, `$delete`)
are not written into the event: they travel beside it as its `operations` (the spool record's `m`
field, then `Event.mixpanel`), so a stored event keeps only what the client sent and a `/capture`
client cannot ask for Mixpanel semantics with in-band properties. See docs/protocol.md "Mixpanel clients".
Pure: imports only the standard library and orjson.
"""

import math
import uuid
from datetime import datetime, timedelta, timezone

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Fixed namespace for Mixpanel $insert_id -> uuid: never change it, or retried events stop deduplicating.
_INSERT_ID_NAMESPACE = uuid.UUID("5b0c8a3e-1f7d-4c1e-9a51-0d7f5e2b6c44")
PERSON_OPERATIONS = ("$add", "$append", "$union", "$remove")
GROUP_OPERATIONS = ("$union", "$remove")


def convert(item: dict, endpoint: str) -> tuple[dict, dict | None]:
    """An `/engage` or `/groups` item -> (event, its Mixpanel operations). An item that already is
    an event (it has a name) is left alone, with no operations."""
    if item.get("event") is None:
        if endpoint == "engage":
            return engage_event(item)
        if endpoint == "groups":
            return group_event(item)
    return item, None


def _operations(obj: dict, names) -> dict:
    ops = {op: obj[op] for op in names if op in obj}
    if "$delete" in obj:
        ops["$delete"] = True
    return ops


def engage_event(obj: dict) -> tuple[dict, dict]:
    """A people update (PostHog's engage shape or Mixpanel's /engage object) -> a `$identify` event."""
    event = {"event": "$identify"}
    for key in ("uuid", "timestamp", "offset", "$set", "$set_once"):
        if key in obj:
            event[key] = obj[key]
    _copy_token(obj, event)
    distinct_id = obj.get("distinct_id")
    if distinct_id is None:
        distinct_id = obj.get("$distinct_id")
    if distinct_id is not None:
        event["distinct_id"] = distinct_id
    _copy_time(obj, event)
    ops = _operations(obj, PERSON_OPERATIONS)
    props = obj.get("properties")
    if props is not None and not isinstance(props, dict):
        event["properties"] = props  # normalize drops it as invalid_properties
        return event, ops
    props = dict(props or {})
    if "$unset" in obj:
        props["$unset"] = _key_list(obj["$unset"])
    if isinstance(obj.get("$ip"), str) and obj["$ip"]:
        props.setdefault("$ip", obj["$ip"])
    event["properties"] = props
    return event, ops


def group_event(obj: dict) -> tuple[dict, dict]:
    """A Mixpanel /groups object -> a `$groupidentify` event (distinct_id as posthog-node makes it)."""
    props: dict = {}
    event = {"event": "$groupidentify", "properties": props}
    _copy_token(obj, event)
    group_type, group_key = obj.get("$group_key"), obj.get("$group_id")
    if group_type is not None:
        props["$group_type"] = text(group_type)
    if group_key is not None:
        props["$group_key"] = text(group_key)
    if group_type is not None and group_key is not None:
        event["distinct_id"] = f"${props['$group_type']}_{props['$group_key']}"
    props["$group_set"] = obj["$set"] if isinstance(obj.get("$set"), dict) else {}
    if isinstance(obj.get("$set_once"), dict) and obj["$set_once"]:
        props["$group_set_once"] = obj["$set_once"]
    if "$unset" in obj:
        props["$group_unset"] = _key_list(obj["$unset"])
    _copy_time(obj, event)
    return event, _operations(obj, GROUP_OPERATIONS)


def track_event(event: dict, token: str | None) -> None:
    """/track and /import: `properties.time` -> timestamp, `$insert_id` -> a stable uuid, `$merge` -> a merge."""
    props = event.get("properties")
    if not isinstance(props, dict):
        return
    if event.get("timestamp") is None:
        iso = _epoch_to_iso(props.get("time"))
        if iso:
            event["timestamp"] = iso
    insert_id = props.get("$insert_id")
    if not event.get("uuid") and insert_id not in (None, ""):
        # Mixpanel deduplicates on event name, distinct id, time to the second and $insert_id together
        # (docs/protocol.md "Mixpanel clients"): the same five (with the token) give the same uuid, which
        # the writer stores once.
        distinct_id = props.get("distinct_id", event.get("distinct_id"))
        ms = _epoch_ms(props.get("time"))
        second = "" if ms is None else str(ms // 1000)
        key = ":".join((token or "", text(event.get("event")), text(distinct_id), second, text(insert_id)))
        event["uuid"] = str(uuid.uuid5(_INSERT_ID_NAMESPACE, key))
    ids = props.get("$distinct_ids")
    if event.get("event") == "$merge" and isinstance(ids, list) and len(ids) == 2 and all(
            isinstance(i, (str, int)) and not isinstance(i, bool) and str(i) for i in ids):
        # mixpanel-python's merge(): join the two ids whatever they are, which is PostHog's $merge_dangerously.
        event["event"] = "$merge_dangerously"
        event.setdefault("distinct_id", str(ids[0]))
        props.setdefault("alias", str(ids[1]))


def _copy_token(obj: dict, event: dict) -> None:
    for key in ("token", "$token", "api_key"):
        if obj.get(key) is not None:
            event["token"] = obj[key]
            return


def _copy_time(obj: dict, event: dict) -> None:
    if event.get("timestamp") is None:
        iso = _epoch_to_iso(obj.get("$time"))
        if iso:
            event["timestamp"] = iso


def _epoch_ms(value) -> int | None:
    """Mixpanel time: float seconds, or integer ms (told apart by magnitude) -> epoch ms."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if abs(value) > 1e11 else round(value * 1000)


def _epoch_to_iso(value) -> str | None:
    """Mixpanel time -> ISO 8601 UTC."""
    ms = _epoch_ms(value)
    if ms is None:
        return None
    try:
        when = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key_list(value) -> list:
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, str) else []


def text(value) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


# --- applying the operations (person processing calls these) -------------------------------------


_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def apply_operations(props: dict, ops: dict) -> bool:
    """Mixpanel's people/group operations, in place. Returns whether anything changed.

    $add: numeric increment (a missing property counts as 0); $append: add one value to a
    list (created if missing); $union: add the values not already in the list; $remove:
    remove every occurrence of a value from a list. An operation on a property holding the
    wrong type is ignored, as Mixpanel rejects it. An integer sum beyond 64 bits is stored as its
    decimal text (exact; a later $add on it is then ignored, as on any string).
    """
    changed = False
    add = ops.get("$add")
    if isinstance(add, dict):
        for k, v in add.items():
            cur = props.get(k)
            if _is_number(v) and (cur is None or _is_number(cur)):
                total = (cur or 0) + v
                # A sum past what JSON numbers hold here (orjson: -2^63 .. 2^64-1) is kept exactly, as text.
                props[k] = str(total) if isinstance(total, int) and not _INT_MIN <= total <= _UINT_MAX else total
                changed = True
    append = ops.get("$append")
    if isinstance(append, dict):
        for k, v in append.items():
            cur = props.get(k)
            if cur is None:
                props[k] = [v]
                changed = True
            elif isinstance(cur, list):
                props[k] = [*cur, v]
                changed = True
    union = ops.get("$union")
    if isinstance(union, dict):
        for k, values in union.items():
            values = values if isinstance(values, list) else [values]
            cur = props.get(k)
            if cur is None:
                cur = []
            if isinstance(cur, list):
                new = list(cur)
                for v in values:
                    if v not in new:
                        new.append(v)
                if new != cur or k not in props:
                    props[k] = new
                    changed = True
    remove = ops.get("$remove")
    if isinstance(remove, dict):
        for k, v in remove.items():
            cur = props.get(k)
            if isinstance(cur, list) and v in cur:
                props[k] = [x for x in cur if x != v]
                changed = True
    return changed
