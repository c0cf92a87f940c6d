"""Groups in person processing: `$groups` on an event gets the project's group type index
(0-4, at most five types), and `$groupidentify` creates or updates the group, with Mixpanel's
`/groups` operations when the event came from there. See docs/protocol.md
"Groups: group types" and "Groups: $groupidentify".

`GroupTypes` is the writer's cache of each project's group types (owned by PersonProcessor);
`GroupBatch` holds the groups one batch changes and writes each of them once.
"""

import logging

from phlite.ingest.mixpanel import apply_operations
from phlite.ingest.rules import apply_updates, unset_keys, valid_group_type

log = logging.getLogger(__name__)

MAX_GROUP_TYPES = 5


class GroupTypes:
    """project_id -> {group type name: index}, filled from the store or this thread's own inserts."""

    def __init__(self):
        self.types = {}
        self._warned = set()

    def clear(self):
        self.types.clear()

    def index(self, store, project_id, group_type):
        """The group type's index, assigned on first use; None once the project has five."""
        types = self.types.get(project_id)
        if types is None:
            types = {name: i for i, name in store.group_type_mapping(project_id).items()}
            self.types[project_id] = types
        index = types.get(group_type)
        if index is not None:
            return index
        free = sorted(set(range(MAX_GROUP_TYPES)) - set(types.values()))
        if not free:
            if (project_id, group_type) not in self._warned and len(self._warned) < 10_000:
                self._warned.add((project_id, group_type))
                log.warning("project %s already has %d group types; group type %r is not attached",
                            project_id, MAX_GROUP_TYPES, group_type)
            return None
        store.insert_group_type(project_id, free[0], group_type)
        types[group_type] = free[0]
        return free[0]


class _Group:
    __slots__ = ("properties", "created_at", "deleted", "dirty")

    def __init__(self, properties, created_at):
        self.properties = properties
        self.created_at = created_at
        self.deleted = False
        self.dirty = False


class GroupBatch:
    """The groups of one project in one writer transaction."""

    def __init__(self, types, store, project_id, warnings):
        self.types = types
        self.store = store
        self.project_id = project_id
        self.warnings = warnings  # a Counter shared with the person batch
        self.groups = {}  # (index, key) -> _Group

    def attach(self, ev):
        """`$groups` -> `$group_N` properties; then a `$groupidentify` updates its group."""
        props = ev.properties
        groups = props.get("$groups")
        if isinstance(groups, dict) and groups:
            junk = [t for t, key in groups.items() if not valid_group_type(t) or key is None or key == ""]
            if junk:  # dropped from the stored event too: only the valid groups are kept
                self.warnings["invalid_group_type_or_key"] += len(junk)
                groups = {t: key for t, key in groups.items() if t not in junk}
                props["$groups"] = groups
            for group_type, key in groups.items():
                index = self.types.index(self.store, self.project_id, group_type)
                if index is not None:
                    props[f"$group_{index}"] = key
        if ev.event == "$groupidentify":
            self._identify(ev)

    def _identify(self, ev):
        props = ev.properties
        group_type, key = props.get("$group_type"), props.get("$group_key")
        if not valid_group_type(group_type) or key is None or key == "":
            self.warnings["invalid_group_type_or_key"] += 1
            return
        key = key if isinstance(key, str) else str(key)
        index = self.types.index(self.store, self.project_id, group_type)
        if index is None:
            return
        group = self.groups.get((index, key))
        if group is None:
            stored = self.store.get_group(self.project_id, index, key)
            if stored is None:
                group = _Group({}, ev.timestamp)
                group.dirty = True
            else:
                group = _Group(stored["group_properties"], stored["created_at"])
            self.groups[(index, key)] = group
        ops = ev.mixpanel or {}  # only a /groups update carries operations
        if ops.get("$delete") is True:
            group.properties, group.created_at, group.deleted, group.dirty = {}, ev.timestamp, True, True
            return
        if group.deleted:
            group.deleted = False
            group.created_at = ev.timestamp
        group_set = props.get("$group_set")
        if group_set is not None and not isinstance(group_set, dict):
            self.warnings["invalid_group_set"] += 1
            group_set = None
        group_set_once = props.get("$group_set_once")
        changed = apply_updates(group.properties, group_set_once if isinstance(group_set_once, dict) else None,
                                group_set, unset_keys(props.get("$group_unset")))
        if ops:
            changed = apply_operations(group.properties, ops) or changed
        if changed:
            group.dirty = True

    def flush(self):
        if not self.groups:
            return
        gone = [k for k, g in self.groups.items() if g.deleted]
        if gone:
            self.store.delete_groups(self.project_id, gone)
        rows = [(k[0], k[1], g.properties, g.created_at) for k, g in self.groups.items()
                if g.dirty and not g.deleted]
        if rows:
            self.store.upsert_groups(self.project_id, rows)
