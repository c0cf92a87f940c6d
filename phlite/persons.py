"""Person and group processing: the writer's processor that turns events into person
and group changes, as PostHog's ingestion does (posthog-api.md 2.4, 2.7, 2.8, 3).

Runs in the writer thread inside its group-commit transaction, in event order, so there
are no races between requests. Per batch it looks every distinct id up in one query
(after a bounded in-memory cache), loads only the persons whose properties an event
changes, and writes each changed person once. Orchestrates lookups, merges and writes;
the pure property rules are in phlite.personprops, all SQL in phlite.store.persons.
"""

import collections
import logging

from phlite.normalize import uuid7
from phlite.personprops import (PERSON_CHANGE_KEYS, apply_mixpanel, apply_updates, has_person_changes,
                                 is_illegal_id, merge_other_id, person_updates, unset_keys)

log = logging.getLogger(__name__)

MERGE_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously"})
# Dropped (not stored) when they carry `$process_person_profile: false` (2.7).
PERSON_ONLY_EVENTS = MERGE_EVENTS | {"$groupidentify"}

MAX_GROUP_TYPES = 5


# --- the processor -------------------------------------------------------------------


class _Person:
    __slots__ = ("id", "uuid", "properties", "created_at", "is_identified", "new", "dirty")

    def __init__(self, id, uuid, properties, created_at, is_identified, new=False):
        self.id = id
        self.uuid = uuid
        self.properties = properties
        self.created_at = created_at
        self.is_identified = is_identified
        self.new = new
        self.dirty = False

    def identify(self):
        if not self.is_identified:
            self.is_identified = True
            self.dirty = True


class _Group:
    __slots__ = ("properties", "created_at", "deleted", "dirty")

    def __init__(self, properties, created_at):
        self.properties = properties
        self.created_at = created_at
        self.deleted = False
        self.dirty = False


class PersonProcessor:
    """The writer processor: `processor(store, project_id, events, now_ms) -> events`.

    Holds a bounded LRU cache of (project, distinct_id) -> person id and each project's
    group types. Both are only ever filled from committed state or this thread's own
    writes; if the writer's transaction rolls back, the next batch notices (see
    Store.bump_txn_marker) and starts with empty caches.
    """

    def __init__(self, cache_size=50_000):
        self.cache_size = cache_size
        self.cache = collections.OrderedDict()
        self.group_types = {}  # project_id -> {group type name: index}
        self._marker = None
        self._warned = set()

    # --- caches ---

    def forget(self, project_id, distinct_ids=None):
        """Drop cached mappings (all of them when distinct_ids is None)."""
        if distinct_ids is None:
            self.cache.clear()
            self.group_types.clear()
            return
        for d in distinct_ids:
            self.cache.pop((project_id, d), None)

    def _remember(self, project_id, distinct_id, person_id):
        key = (project_id, distinct_id)
        self.cache[key] = person_id
        self.cache.move_to_end(key)
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def _check_rollback(self, store):
        marker = store.bump_txn_marker()
        if self._marker is not None and marker != self._marker + 1:
            self.forget(None)
        self._marker = marker

    def _lookup(self, store, project_id, distinct_ids):
        ids, misses = {}, []
        cache = self.cache
        for d in distinct_ids:
            pid = cache.get((project_id, d))
            if pid is None:
                misses.append(d)
            else:
                cache.move_to_end((project_id, d))
                ids[d] = pid
        if misses:
            found = store.person_ids_for(project_id, misses)
            for d, pid in found.items():
                self._remember(project_id, d, pid)
            ids.update(found)
        return ids

    # --- the batch ---

    def __call__(self, store, project_id, events, now_ms):
        self._check_rollback(store)
        return _Batch(self, store, project_id).run(events)

    def delete_person(self, store, project_id, person_uuid, delete_events=False):
        """Delete a person (and with delete_events its events). Run in the writer thread
        (writer.call) so it is ordered with ingestion. Returns False if not found."""
        with store.transaction():
            person = store.get_person_by_uuid(project_id, person_uuid)
            if person is None:
                return False
            gone = store.delete_person_rows(project_id, person["id"])
            if delete_events:
                store.delete_events_of(project_id, gone)
        self.forget(project_id, gone)
        return True

    def group_type_index(self, store, project_id, group_type):
        types = self.group_types.get(project_id)
        if types is None:
            types = {name: i for i, name in store.group_type_mapping(project_id).items()}
            self.group_types[project_id] = types
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


class _Batch:
    """One processor call: one project's events of one writer transaction."""

    def __init__(self, proc, store, project_id):
        self.proc = proc
        self.store = store
        self.project_id = project_id
        self.ids = {}  # distinct_id -> person id, as of the current event
        self.persons = {}  # person id -> _Person, loaded or created in this batch
        self.new_ids = {}  # distinct_id -> person id, mappings to write
        self.merged_into = {}  # person id merged away -> person id kept
        self._members = None  # person id -> its distinct ids in self.ids; built by the first merge
        self.groups = {}  # (index, key) -> _Group
        self.next_id = None
        self.warnings = collections.Counter()

    def run(self, events):
        kept, lookups, need = [], set(), set()
        for ev in events:
            props = ev.properties
            if props.get("$process_person_profile") is False:
                if ev.event in PERSON_ONLY_EVENTS:
                    self.warnings["invalid_event_when_process_person_profile_is_false"] += 1
                    continue
                for k in ("$set", "$set_once", "$unset"):
                    props.pop(k, None)
                lookups.add(ev.distinct_id)
                kept.append((ev, False, None, False))
                continue
            if ev.event[:1] != "$" and PERSON_CHANGE_KEYS.isdisjoint(props):
                # Most events: no merge (those are $-events), no person change: only the person id.
                lookups.add(ev.distinct_id)
                kept.append((ev, True, None, False))
                continue
            if ev.event == "$groupidentify":
                for k in ("$set", "$set_once", "$unset"):
                    props.pop(k, None)
            other = merge_other_id(ev)
            changes = has_person_changes(ev)
            lookups.add(ev.distinct_id)
            if other is not None:
                lookups.add(other)
                need.add(other)
            if changes or other is not None:
                need.add(ev.distinct_id)
            kept.append((ev, True, other, changes))

        self.ids = self.proc._lookup(self.store, self.project_id, lookups)
        wanted = {self.ids[d] for d in need if d in self.ids}
        self._load(wanted)

        out = []
        ids = self.ids
        for ev, processed, other, changes in kept:
            if not processed:
                ev.person_id = ids.get(ev.distinct_id)
                out.append(ev)
                continue
            if other is None and not changes:  # the common case, short: the person's id, created if new
                pid = ids.get(ev.distinct_id)
                ev.person_id = self._create(ev.distinct_id, ev.timestamp).id if pid is None else pid
                if "$groups" in ev.properties or ev.event == "$groupidentify":
                    self._groups(ev)
                out.append(ev)
                continue
            person = None
            if other is not None:
                person = self._merge(ev, other)
            if person is None:
                pid = self.ids.get(ev.distinct_id)
                if pid is None:
                    person = self._create(ev.distinct_id, ev.timestamp)
                    pid = person.id
                elif changes:
                    person = self._person(pid)
            else:
                pid = person.id
            if changes:
                self._apply(person, ev)
                if ev.properties.get("$mp_delete") is True and ev.properties.get("$mp_engage") is True:
                    self._delete(person)
            ev.person_id = pid
            self._groups(ev)
            out.append(ev)

        self._flush()
        if self.merged_into:
            for ev in out:
                while ev.person_id in self.merged_into:
                    ev.person_id = self.merged_into[ev.person_id]
        if self.warnings:
            log.warning("person processing for project %s: %s", self.project_id,
                        ", ".join(f"{k}={v}" for k, v in sorted(self.warnings.items())))
        return out

    # --- persons ---

    def _load(self, person_ids):
        missing = [p for p in person_ids if p not in self.persons]
        if not missing:
            return
        for pid, (uuid, props, created_at, identified) in self.store.load_persons(missing).items():
            self.persons[pid] = _Person(pid, uuid, props, created_at, identified)

    def _person(self, pid):
        person = self.persons.get(pid)
        if person is None:
            self._load([pid])
            person = self.persons[pid]
        return person

    def _create(self, distinct_id, timestamp, is_identified=False):
        if self.next_id is None:
            self.next_id = self.store.max_person_id() + 1
        person = _Person(self.next_id, uuid7(timestamp), {}, timestamp, is_identified, new=True)
        self.next_id += 1
        self.persons[person.id] = person
        self._assign(distinct_id, person.id)
        return person

    def _assign(self, distinct_id, person_id):
        old = self.ids.get(distinct_id)
        self.ids[distinct_id] = person_id
        self.new_ids[distinct_id] = person_id
        if self._members is not None:
            if old is not None:
                self._members[old].discard(distinct_id)
            self._members[person_id].add(distinct_id)

    def _batch_ids_of(self, person_id):
        """The distinct ids of this batch that currently belong to person_id."""
        if self._members is None:  # merges and deletes are rare: index on first need
            self._members = collections.defaultdict(set)
            for d, p in self.ids.items():
                self._members[p].add(d)
        return self._members[person_id]

    def _apply(self, person, ev):
        set_, set_once, unset = person_updates(ev)
        props = person.properties
        changed = apply_updates(props, set_once, set_, unset)
        if ev.properties.get("$mp_engage") is True:
            changed = apply_mixpanel(props, ev.properties) or changed
        if changed:
            person.dirty = True

    def _delete(self, person):
        """Mixpanel's $delete: the person and its distinct ids go; its events stay."""
        pid = person.id
        dropped = list(self._batch_ids_of(pid))
        self._members.pop(pid, None)
        for d in dropped:
            del self.ids[d]
            self.new_ids.pop(d, None)
        if not person.new:
            dropped += self.store.delete_person_rows(self.project_id, pid)
        self.proc.forget(self.project_id, dropped)
        self.persons.pop(pid, None)

    def _merge(self, ev, other):
        """3.2. Returns the event's person after the merge, or None when no merge applies."""
        target = ev.distinct_id
        if other == target:
            return None
        if is_illegal_id(other) or is_illegal_id(target):
            self.warnings["cannot_merge_with_illegal_distinct_id"] += 1
            return None
        tid, oid = self.ids.get(target), self.ids.get(other)
        if tid is None and oid is None:
            person = self._create(target, ev.timestamp, is_identified=True)
            self._assign(other, person.id)
            return person
        if tid is None:
            person = self._person(oid)
            self._assign(target, oid)
        elif oid is None:
            person = self._person(tid)
            self._assign(other, tid)
        elif tid == oid:
            person = self._person(tid)
        else:
            person = self._person(tid)
            source = self._person(oid)
            if source.is_identified and ev.event != "$merge_dangerously":
                self.warnings["cannot_merge_already_identified"] += 1
            else:
                self._merge_persons(source, person)
        person.identify()
        return person

    def _merge_persons(self, source, target):
        target.properties = {**source.properties, **target.properties}
        target.created_at = min(source.created_at, target.created_at)
        target.dirty = True
        members = self._batch_ids_of(source.id)
        self._members[target.id] |= members
        for d in self._members.pop(source.id):
            self.ids[d] = target.id
            if d in self.new_ids:
                self.new_ids[d] = target.id
        if not source.new:
            moved = self.store.merge_person_rows(self.project_id, source.id, target.id)
            for d in moved:  # those of this batch were re-pointed above
                self.proc._remember(self.project_id, d, target.id)
        self.merged_into[source.id] = target.id  # chains are followed when events get their person
        del self.persons[source.id]

    # --- groups ---

    def _groups(self, ev):
        props = ev.properties
        groups = props.get("$groups")
        if isinstance(groups, dict) and groups:
            for group_type, key in groups.items():
                if key is None:
                    continue
                index = self.proc.group_type_index(self.store, self.project_id, group_type)
                if index is not None:
                    props[f"$group_{index}"] = key
        if ev.event == "$groupidentify":
            self._group_identify(ev)

    def _group_identify(self, ev):
        props = ev.properties
        group_type, key = props.get("$group_type"), props.get("$group_key")
        if not isinstance(group_type, str) or not group_type or key is None or key == "":
            return
        key = key if isinstance(key, str) else str(key)
        index = self.proc.group_type_index(self.store, self.project_id, group_type)
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
        mixpanel = props.get("$mp_groups") is True  # made by phlite.ingest from a /groups body
        if mixpanel and props.get("$mp_delete") is True:
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
        if mixpanel:
            changed = apply_mixpanel(group.properties, props) or changed
        if changed:
            group.dirty = True

    # --- writing ---

    def _flush(self):
        store, project_id = self.store, self.project_id
        new = [p for p in self.persons.values() if p.new]
        if new:
            store.insert_persons([(p.id, project_id, p.uuid, p.properties, p.created_at, p.is_identified)
                                  for p in new])
        changed = [p for p in self.persons.values() if p.dirty and not p.new]
        if changed:
            store.update_persons([(p.id, p.properties, p.created_at, p.is_identified) for p in changed])
        if self.new_ids:
            store.set_distinct_ids(project_id, self.new_ids.items())
            for d, pid in self.new_ids.items():
                self.proc._remember(project_id, d, pid)
        if self.groups:
            gone = [k for k, g in self.groups.items() if g.deleted]
            if gone:
                store.delete_groups(project_id, gone)
            rows = [(k[0], k[1], g.properties, g.created_at) for k, g in self.groups.items()
                    if g.dirty and not g.deleted]
            if rows:
                store.upsert_groups(project_id, rows)
