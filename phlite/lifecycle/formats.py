"""The file formats of export and import, as pure functions on rows and parsed objects.

Export writes PostHog's batch-export event schema (docs/lifecycle.md "Export format"): one JSON
object per line, or one CSV row, per event. Import reads phlite's own export, PostHog's
batch-export and managed-import files, PostHog's events API pages and Mixpanel's raw export
(docs/lifecycle.md "Import formats"), turning each object into a raw event as a client would
have sent it, so ingestion's rules apply to it unchanged. Pure: standard library and orjson.
"""

import re
import uuid
from datetime import datetime, timezone

import orjson

EVENT_FIELDS = ("uuid", "event", "distinct_id", "person_id", "properties", "person_properties", "elements_chain",
                "timestamp", "created_at", "_inserted_at")
PERSON_FIELDS = ("person_id", "distinct_id", "properties", "created_at", "is_identified")
GROUP_FIELDS = ("group_type", "group_type_index", "group_key", "group_properties", "created_at")
_EMPTY = orjson.Fragment(b"{}")
_UTC = timezone.utc
# Fixed namespace for uuids of Mixpanel events that have no $insert_id: never change it, or a
# second import of the same file stops deduplicating.
_MIXPANEL_NAMESPACE = uuid.UUID("8d4e2f61-3b7a-4c0d-a9e5-1f6b2c7d8e90")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
# Mixpanel bookkeeping that means nothing in PostHog, and Mixpanel's geo names -> PostHog's
# (as PostHog's own importer maps them).
_MIXPANEL_DROP = ("$mp_api_endpoint", "mp_processing_time_ms", "$insert_id", "$geo_source", "$mp_api_timestamp_ms",
                  "time")
_MIXPANEL_RENAME = {"$city": "$geoip_city_name", "$region": "$geoip_subdivision_1_name",
                    "mp_country_code": "$geoip_country_code"}


def iso(ms):
    """Epoch ms -> ISO 8601 UTC with microseconds and Z, as PostHog's exports write timestamps."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, _UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_when(text):
    """A CLI date or date-time (`2024-01-31`, `2024-01-31T12:00:00Z`; UTC unless it says) -> epoch ms."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    return int(when.timestamp() * 1000)


# --- export ----------------------------------------------------------------------------------------


def event_record(row):
    """A row of Store.export_events_page -> the batch-export event dict. JSON texts pass through
    as orjson.Fragment (parsing and re-encoding them would be most of the export's cost)."""
    _, uid, name, distinct_id, props, ts, created, person_uuid, person_props = row
    chain = ""
    if name == "$autocapture":  # PostHog keeps it in a column; phlite in properties (as posthog-js sends it)
        chain = orjson.loads(props).get("$elements_chain") or ""
    return {
        "uuid": uid, "event": name, "distinct_id": distinct_id, "person_id": person_uuid,
        "properties": orjson.Fragment(props),
        "person_properties": orjson.Fragment(person_props) if person_props else _EMPTY,
        "elements_chain": chain, "timestamp": iso(ts), "created_at": iso(created), "_inserted_at": iso(created),
    }


def person_records(row):
    """A row of Store.export_persons_page -> one dict per distinct id (PostHog's persons model)."""
    _, person_uuid, props, created, identified, distinct_ids = row
    for did in distinct_ids:
        yield {"person_id": person_uuid, "distinct_id": did, "properties": orjson.Fragment(props),
               "created_at": iso(created), "is_identified": bool(identified)}


def group_record(row):
    _, group_type, index, key, props, created = row
    return {"group_type": group_type, "group_type_index": index, "group_key": key,
            "group_properties": orjson.Fragment(props), "created_at": iso(created)}


def json_line(record):
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def csv_values(record, fields):
    """A record as CSV cells: objects as JSON text, None as an empty cell."""
    out = []
    for f in fields:
        v = record.get(f)
        if isinstance(v, (dict, list, orjson.Fragment)):  # a Fragment dumps as its own text
            v = orjson.dumps(v).decode()
        elif v is None:
            v = ""
        elif isinstance(v, bool):
            v = "true" if v else "false"
        out.append(v)
    return out


# --- import ----------------------------------------------------------------------------------------


def is_mixpanel(obj):
    """Mixpanel's export line: {"event", "properties": {"time", "distinct_id", ...}} and nothing of
    PostHog's top-level fields."""
    props = obj.get("properties")
    return (isinstance(props, dict) and "time" in props and "timestamp" not in obj and "distinct_id" not in obj
            and "uuid" not in obj)


def posthog_event(obj):
    """A PostHog-shaped object (phlite/PostHog export line, managed-import RawEvent, events API
    result, CSV row) -> raw event, or a drop reason."""
    props = obj.get("properties")
    if isinstance(props, str):  # CSV cells and Parquet-derived files carry properties as JSON text
        try:
            props = orjson.loads(props) if props else {}
        except orjson.JSONDecodeError:
            return "invalid_properties"
    raw = {"event": obj.get("event"), "properties": props}
    uid = obj.get("uuid")
    if not uid and isinstance(obj.get("id"), str) and _UUID.match(obj["id"]):  # the events API's `id`
        uid = obj["id"]
    if uid:
        raw["uuid"] = uid
    for key in ("distinct_id", "$distinct_id", "timestamp", "$set", "$set_once"):
        value = obj.get(key)
        if value not in (None, ""):
            raw[key] = _json_cell(value) if key in ("$set", "$set_once") else value
    chain = obj.get("elements_chain")
    if chain and isinstance(props, dict) and "$elements_chain" not in props:
        # PostHog's column; its ingestion rebuilds elements from the property.
        raw["properties"] = {**props, "$elements_chain": chain}
    return raw


def mixpanel_event(obj, track_event, token):
    """A Mixpanel export line -> raw event. `track_event` is ingestion's /import conversion
    (time -> timestamp, $insert_id -> uuid), so an event imported from a file and the same event
    sent to /import dedupe against each other."""
    props = dict(obj["properties"])
    event = {"event": obj.get("event"), "properties": props}
    track_event(event, token)
    if "uuid" not in event:  # no $insert_id: a uuid from what Mixpanel itself dedupes on
        key = "\x00".join(str(x) for x in (obj.get("event"), props.get("distinct_id"), props.get("time")))
        event["uuid"] = str(uuid.uuid5(_MIXPANEL_NAMESPACE, key))
    if event["event"] == "$mp_web_page_view":
        event["event"] = "$pageview"
    if props.get("distinct_id") in (None, "") and props.get("$distinct_id_before_identity"):
        props["distinct_id"] = props["$distinct_id_before_identity"]
    for old, new in _MIXPANEL_RENAME.items():
        if old in props and new not in props:
            props[new] = props.pop(old)
    for key in _MIXPANEL_DROP:
        props.pop(key, None)
    return event


def raw_event(obj, track_event, token):
    """Any object of an import file -> raw event, or a drop reason."""
    if not isinstance(obj, dict):
        return "not_an_object"
    if is_mixpanel(obj):
        return mixpanel_event(obj, track_event, token)
    return posthog_event(obj)


def _json_cell(value):
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value
