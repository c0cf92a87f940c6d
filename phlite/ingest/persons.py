"""Person processing: turns events into person changes, as PostHog's ingestion does (docs/protocol.md
"Persons: property updates", "Persons: merges", "Events: accepted, then dropped"), and hands `$groups`
and `$groupidentify` to phlite/ingest/groups.py.

Runs in the writer thread inside its group-commit transaction (phlite/ingest/batch.py), in
event order, so there are no races between requests. Per batch it looks every distinct id up
in one query (after a bounded in-memory cache), loads only the persons whose properties an event
changes, and writes each changed person once. Orchestrates lookups, merges and writes; the pure
property rules are in rules.py and mixpanel.py, all SQL in phlite.store.persons.
"""

import collections
import logging
import uuid

from phlite.ingest.groups import GroupBatch, GroupTypes
from phlite.ingest.mixpanel import apply_operations
from phlite.ingest.rules import (PERSON_CHANGE_KEYS, PERSON_EVENTS, apply_updates, has_person_changes,
                                 is_illegal_id, merge_other_id, person_updates)

log = logging.getLogger(__name__)

MERGE_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously"})
# PostHog's namespace for person uuids: uuid5(namespace, "<project id>:<first distinct id>"), so a person
# keeps its id through an export into PostHog (docs/protocol.md "Persons: property updates").
PERSON_UUID_NAMESPACE = uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")


def person_uuid(project_id, distinct_id):
    return str(uuid.uuid5(PERSON_UUID_NAMESPACE, f"{project_id}:{distinct_id}"))
# Dropped (not stored) when they carry `$process_person_profile: false`.
PERSON_ONLY_EVENTS = MERGE_EVENTS | {"$groupidentify"}


class _Person:
    __slots__ = ("id", "uuid", "properties", "created_at", "is_identified", "new", "dirty", "creator", "stored")

    def __init__(self, id, uuid, properties, created_at, is_identified, new=False, creator=None):
        self.id = id
        # The uuid of the event that created this person in this batch: only that event writes
        # automatic properties unconditionally; later ones in the same batch see an existing person.
        self.creator = creator
        self.uuid = uuid
        self.properties = properties
        self.created_at = created_at
        self.is_identified = is_identified
        self.new = new
        # Whether store rows (distinct ids, hash-key overrides) point at this id: always for a loaded
        # person, and for a new one once a stored person was merged into it in this batch. Those rows
        # must move with it when it is merged or deleted in turn.
        self.stored = not new
        self.dirty = False

    def identify(self):
        if not self.is_identified:
            self.is_identified = True
            self.dirty = True


class IdCache:
    """A bounded LRU of (project, distinct_id) -> person id, in front of the store."""

    def __init__(self, size):
        self.size = size
        self.ids = collections.OrderedDict()

    def __len__(self):
        return len(self.ids)

    def clear(self):
        self.ids.clear()

    def forget(self, project_id, distinct_ids):
        for d in distinct_ids:
            self.ids.pop((project_id, d), None)

    def remember(self, project_id, distinct_id, person_id):
        key = (project_id, distinct_id)
        self.ids[key] = person_id
        self.ids.move_to_end(key)
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)

    def lookup(self, store, project_id, distinct_ids):
        """{distinct_id: person id} of those that have a person; one query for the cache misses."""
        found, misses = {}, []
        ids = self.ids
        for d in distinct_ids:
            pid = ids.get((project_id, d))
            if pid is None:
                misses.append(d)
            else:
                ids.move_to_end((project_id, d))
                found[d] = pid
        if misses:
            stored = store.person_ids_for(project_id, misses)
            for d, pid in stored.items():
                self.remember(project_id, d, pid)
            found.update(stored)
        return found


class PersonProcessor:
    """`process(store, project_id, events, now_ms) -> events`, in the writer's transaction.

    There is one per running phlite, owned by Ingestion: its caches (distinct ids, group types)
    are only ever filled from committed state or this thread's own writes; if the writer's
    transaction rolls back, the next batch notices (see Store.bump_txn_marker) and starts with
    empty caches. Deleting a person goes through here too, so the cache forgets it.
    """

    def __init__(self, cache_size=50_000):
        self.cache = IdCache(cache_size)
        self.group_types = GroupTypes()
        self._marker = None

    def forget(self, project_id, distinct_ids=None):
        """Drop cached mappings (all of them when distinct_ids is None)."""
        if distinct_ids is None:
            self.cache.clear()
            self.group_types.clear()
        else:
            self.cache.forget(project_id, distinct_ids)

    def _check_rollback(self, store):
        marker = store.bump_txn_marker()
        if self._marker is not None and marker != self._marker + 1:
            self.forget(None)
        self._marker = marker

    def process(self, store, project_id, events, now_ms):
        self._check_rollback(store)
        return _Batch(self, store, project_id).run(events)

    def delete_person(self, store, project_id, person_uuid, delete_events=False):
        """Delete a person (and with delete_events its events). Run in the writer thread
        (Writer.call) so it is ordered with ingestion. Returns False if not found."""
        with store.transaction():
            person = store.get_person_by_uuid(project_id, person_uuid)
            if person is None:
                return False
            gone = store.delete_person_rows(project_id, person["id"])
            if delete_events:
                store.delete_events_of(project_id, gone)
        self.forget(project_id, gone)
        return True


class _Batch:
    """One processor call: one project's events of one writer transaction."""

    def __init__(self, proc, store, project_id):
        self.cache = proc.cache
        self.store = store
        self.project_id = project_id
        self.ids = {}  # distinct_id -> person id, as of the current event
        self.persons = {}  # person id -> _Person, loaded or created in this batch
        self.new_ids = {}  # distinct_id -> person id, mappings to write
        self.merged_into = {}  # person id merged away -> person id kept
        self._members = None  # person id -> its distinct ids in self.ids; built by the first merge
        self.next_id = None
        self.warnings = collections.Counter()
        self.groups = GroupBatch(proc.group_types, store, project_id, self.warnings)

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
            if ev.event[:1] != "$" and ev.mixpanel is None and PERSON_CHANGE_KEYS.isdisjoint(props):
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

        self.ids = self.cache.lookup(self.store, self.project_id, lookups)
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
                ev.person_id = self._create(ev.distinct_id, ev).id if pid is None else pid
                if "$groups" in ev.properties or ev.event == "$groupidentify":
                    self.groups.attach(ev)
                out.append(ev)
                continue
            person = None
            if other is not None:
                person = self._merge(ev, other)
            if person is None:
                pid = self.ids.get(ev.distinct_id)
                if pid is None:
                    person = self._create(ev.distinct_id, ev)
                    pid = person.id
                elif changes:
                    person = self._person(pid)
            else:
                pid = person.id
            if changes:
                self._apply(person, ev)
                if ev.mixpanel and ev.mixpanel.get("$delete") is True:
                    self._delete(person)
            ev.person_id = pid
            self.groups.attach(ev)
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
        for pid, (person_uuid, props, created_at, identified) in self.store.load_persons(missing).items():
            self.persons[pid] = _Person(pid, person_uuid, props, created_at, identified)

    def _person(self, pid):
        person = self.persons.get(pid)
        if person is None:
            self._load([pid])
            person = self.persons[pid]
        return person

    def _create(self, distinct_id, ev, is_identified=False):
        """A new person for distinct_id, created by event ev (recorded as `$creator_event_uuid`, as PostHog does)."""
        if self.next_id is None:
            self.next_id = self.store.max_person_id() + 1
        person = _Person(self.next_id, person_uuid(self.project_id, distinct_id), {"$creator_event_uuid": ev.uuid},
                         ev.timestamp, is_identified, new=True, creator=ev.uuid)
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
        changed = apply_updates(props, set_once, set_, unset,
                                skip_auto_only=person.creator != ev.uuid and ev.event not in PERSON_EVENTS)
        if ev.mixpanel:
            changed = apply_operations(props, ev.mixpanel) or changed
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
        if person.stored:
            dropped += self.store.delete_person_rows(self.project_id, pid)
        self.cache.forget(self.project_id, dropped)
        self.persons.pop(pid, None)

    def _merge(self, ev, other):
        """Returns the event's person after the merge, or None when no merge applies."""
        target = ev.distinct_id
        if other == target:
            return None
        if is_illegal_id(other) or is_illegal_id(target):
            self.warnings["cannot_merge_with_illegal_distinct_id"] += 1
            return None
        tid, oid = self.ids.get(target), self.ids.get(other)
        if tid is None and oid is None:
            person = self._create(target, ev, is_identified=True)
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
        if source.stored:
            moved = self.store.merge_person_rows(self.project_id, source.id, target.id)
            for d in moved:  # those of this batch were re-pointed above
                self.cache.remember(self.project_id, d, target.id)
            target.stored = True
        self.merged_into[source.id] = target.id  # chains are followed when events get their person
        del self.persons[source.id]

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
                self.cache.remember(project_id, d, pid)
        self.groups.flush()
