"""Person and group property rules, pure data in and data out (no store access): the order of
`$set_once`, `$set` and `$unset` (docs/protocol.md "Persons: property updates"); the automatic person
properties (docs/protocol.md "Automatic person properties"); the distinct ids that never merge
(docs/protocol.md "Persons: illegal distinct ids"); which events ask for a merge or a person property
change. Mixpanel's operations are in mixpanel.py.

persons.py and groups.py decide when to apply these to which person or group, and do the lookups,
merges and writes.
"""

from phlite.ingest.normalize import clean_distinct_id

# Events that get no automatic person properties (docs/protocol.md "Automatic person properties").
NO_AUTO_PROPERTIES = frozenset({"$snapshot", "$performance_event", "$groupidentify"})
# Events that never change their person (PostHog handles them in other pipelines, unordered with
# person updates): docs/protocol.md "Persons: property updates".
NO_PERSON_UPDATE_EVENTS = frozenset({"$exception", "$$heatmap"})
# Events whose person updates are always written; on other events a change of automatic properties
# alone is not (docs/protocol.md "Automatic person properties").
PERSON_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously", "$set"})

# docs/protocol.md "Automatic person properties": event properties copied to the person ($set) and as $initial_* ($set_once).
AUTO_PERSON_PROPERTIES = (
    "$app_build", "$app_name", "$app_namespace", "$app_version", "$browser", "$browser_version",
    "$device_type", "$current_url", "$pathname", "$os", "$os_version", "$referring_domain", "$referrer",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_name", "utm_term",
    "gclid", "gad_source", "gclsrc", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "twclid", "li_fat_id",
    "mc_cid", "igshid", "ttclid", "rdt_cid",
)
_INITIAL = {k: "$initial_" + k.removeprefix("$") for k in AUTO_PERSON_PROPERTIES}
_AUTO_SET = frozenset(AUTO_PERSON_PROPERTIES)
_SERVER_SKIPPED = frozenset({"$os", "$os_version"})  # newest PostHog skips these when $is_server

_PERSON_KEYS = frozenset({"$set", "$set_once", "$unset"})
# Any of these in an event's properties may change its person (has_person_changes).
PERSON_CHANGE_KEYS = _AUTO_SET | _PERSON_KEYS

# docs/protocol.md "Persons: illegal distinct ids": distinct ids that never take part in a merge.
_ILLEGAL_ANY_CASE = {"anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email",
                     "undefined", "true", "false"}
_ILLEGAL_EXACT = {"[object Object]", "NaN", "None", "none", "null", "0", "undefined"}


def _quoted(ids):
    return frozenset(ids) | {f'"{i}"' for i in ids} | {f"'{i}'" for i in ids}


ILLEGAL_ANY_CASE = _quoted(_ILLEGAL_ANY_CASE)
ILLEGAL_EXACT = _quoted(_ILLEGAL_EXACT)

_MISSING = object()


def is_illegal_id(distinct_id: str) -> bool:
    """True for ids PostHog refuses to merge: blank, `anonymous`, `null`, `"undefined"`..."""
    return not distinct_id.strip() or distinct_id.lower() in ILLEGAL_ANY_CASE or distinct_id in ILLEGAL_EXACT


# --- property updates ---------------------------------------------------------------


def _same(a, b):
    return type(a) is type(b) and a == b


def unset_keys(value) -> list:
    """`$unset` is a list of keys, or an object whose keys are used."""
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list):
        return [k for k in value if isinstance(k, str)]
    return []


def _filtered(key: str) -> bool:
    # Keys that change on nearly every event: alone, their change is not worth a person write.
    return key in _AUTO_SET or key.startswith("$geoip_")


def apply_updates(props: dict, set_once: dict | None, set_: dict | None, unset=None, *,
                  skip_auto_only: bool = False) -> bool:
    """docs/protocol.md "Persons: property updates", in place: $set_once, then $set, then $unset, each judged against the
    properties before this event. Returns whether anything changed.

    With skip_auto_only (an existing person, an event outside PERSON_EVENTS), changes that touch only
    automatic properties ($current_url, $browser...) or $geoip_* are not applied, as PostHog's ingestion
    does; any other change brings them along."""
    writes, removes = {}, []
    if set_once:
        for k, v in set_once.items():
            if k not in props:
                writes[k] = v
    if set_:
        for k, v in set_.items():
            old = props.get(k, _MISSING)
            if old is _MISSING or not _same(old, v):
                writes[k] = v
    if unset:
        removes = [k for k in dict.fromkeys(unset) if k in props]
    if not writes and not removes:
        return False
    if skip_auto_only and not removes and all(_filtered(k) for k in writes):
        return False
    props.update(writes)
    for k in removes:
        del props[k]
    return True


def sanitize(value):
    """U+0000 in strings (keys too) -> U+FFFD, as PostHog stores person properties; other values as they are."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {sanitize(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    return value


def person_updates(ev) -> tuple[dict, dict, list]:
    """The ($set, $set_once, $unset keys) an event applies to its person, with the automatic
    properties of docs/protocol.md "Automatic person properties" added (never overriding an explicit key)."""
    props = ev.properties
    set_ = props.get("$set")
    set_ = set_ if isinstance(set_, dict) else {}
    set_once = props.get("$set_once")
    set_once = set_once if isinstance(set_once, dict) else {}
    if ev.event not in NO_AUTO_PROPERTIES:
        found = _AUTO_SET.intersection(props)
        if found:
            if props.get("$is_server") is True:
                found -= _SERVER_SKIPPED
            set_, set_once = dict(set_), dict(set_once)
            for k in AUTO_PERSON_PROPERTIES:  # in a fixed order, so stored properties are stable
                if k not in found:
                    continue
                v = props[k]
                set_.setdefault(k, v)
                set_once.setdefault(_INITIAL[k], v)
    return sanitize(set_), sanitize(set_once), unset_keys(props.get("$unset"))


# --- groups ---

MAX_GROUP_TYPE_CHARS = 400  # PostHog's column for the name
_CONTROL = frozenset(map(chr, [*range(32), 127]))


def valid_group_type(name) -> bool:
    """Whether a `$groups` / `$group_type` name may take one of the project's five group-type slots
    (docs/protocol.md "Groups: group types"): text of 1-400 characters, not only whitespace, no
    control characters. A junk name must not use up a slot that is never freed."""
    return (isinstance(name, str) and 0 < len(name) <= MAX_GROUP_TYPE_CHARS and not name.isspace()
            and _CONTROL.isdisjoint(name))


# --- events -------------------------------------------------------------------------


def merge_other_id(ev):
    """The distinct id an event asks to merge into its own (docs/protocol.md "Persons: merges"), or None."""
    if ev.event == "$identify":
        other = ev.properties.get("$anon_distinct_id")
    elif ev.event in ("$create_alias", "$merge_dangerously"):
        other = ev.properties.get("alias")
    else:
        return None
    if other is None or other == "" or isinstance(other, (dict, list, bool)):
        return None
    return clean_distinct_id(other if isinstance(other, str) else str(other))


def has_person_changes(ev) -> bool:
    """Whether an event may change its person's properties (explicit keys or automatic ones, docs/protocol.md "Automatic person properties")."""
    if ev.event == "$groupidentify" or ev.event in NO_PERSON_UPDATE_EVENTS:
        # never touch person properties (docs/protocol.md "Groups: $groupidentify", "Persons: property updates")
        return False
    if ev.mixpanel:  # an /engage update's operations
        return True
    if ev.event in NO_AUTO_PROPERTIES:
        return not _PERSON_KEYS.isdisjoint(ev.properties)
    return not PERSON_CHANGE_KEYS.isdisjoint(ev.properties)
