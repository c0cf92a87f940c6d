"""What /flags reads about its subjects (the person of a distinct id, the named groups), kept in
memory, each entry with a version (docs/flags-protocol.md "Flags endpoint: answer cache").

A /flags request whose person and groups are all here reads no SQLite; the versions let the flags
answer cache key an answer on exactly the rows it read, so a write to another person leaves it valid
(a store-wide counter made every capture that touched any person empty it, under mixed load).

Invalidation: every write of persons, distinct ids and groups records what it touched in its
thread's transaction (PersonsMixin); when the transaction ends, `invalidate()` drops those entries.
A reader that loaded rows from SQLite keeps them only if no invalidation since it started its read
touched them (`start()` / `keep()`): a write committing during the read could otherwise leave the
older rows cached after their invalidation. No SQL here (phlite/store/persons.py runs it).
"""

import collections
import itertools
import threading

# Entries kept of each kind (a person entry is its properties, ~1-2 KB: ~8 MB at most).
MAX_ENTRIES = 4096
# Invalidations remembered for readers in flight; a reader older than these keeps nothing.
RECENT = 256


class Touched:
    """What one transaction wrote: person ids, (project, distinct id)s, (project, index, key)s, or all."""

    __slots__ = ("persons", "distinct_ids", "groups", "all")

    def __init__(self):
        self.persons, self.distinct_ids, self.groups, self.all = set(), set(), set(), False

    def __bool__(self):
        return self.all or bool(self.persons or self.distinct_ids or self.groups)


class Subjects:
    def __init__(self, max_entries=MAX_ENTRIES):
        self._max = max_entries
        self._lock = threading.Lock()
        self._persons = collections.OrderedDict()  # (project, distinct id) -> (version, person or None)
        self._by_person = collections.defaultdict(set)  # person id -> keys in _persons
        self._groups = collections.OrderedDict()  # (project, index, key) -> (version, group or None)
        self._versions = itertools.count(1)
        self._seq = 0  # invalidations so far
        self._recent = collections.deque(maxlen=RECENT)  # (seq, Touched)

    # --- readers -------------------------------------------------------------------------------

    def person(self, project_id, distinct_id):
        """(version, person or None), or None when it is not in memory."""
        with self._lock:
            entry = self._persons.get((project_id, distinct_id))
            if entry is not None:
                self._persons.move_to_end((project_id, distinct_id))
            return entry

    def group(self, project_id, index, key):
        """(version, group or None), or None when it is not in memory."""
        with self._lock:
            entry = self._groups.get((project_id, index, key))
            if entry is not None:
                self._groups.move_to_end((project_id, index, key))
            return entry

    def start(self):
        """Call before reading rows from SQLite; hand the result to keep()."""
        return self._seq

    def keep(self, started, project_id, distinct_id, person, groups):
        """Remember rows read since `started`; returns (person version, {(index, key): version}).

        `distinct_id` None: no person was read. `groups`: {(index, key): group or None}. A row an
        invalidation since `started` may have touched gets a fresh version and is not kept."""
        with self._lock:
            stale = self._touched_since(started)
            versions = {}
            person_version = None
            if distinct_id is not None:
                person_version = next(self._versions)
                key = (project_id, distinct_id)
                if not self._person_stale(stale, key, person):
                    self._put_person(key, person_version, person)
            for (index, gkey), group in groups.items():
                version = versions[(index, gkey)] = next(self._versions)
                key = (project_id, index, gkey)
                if stale is not None and (stale.all or key in stale.groups):
                    continue
                self._groups[key] = (version, group)
                self._groups.move_to_end(key)
                if len(self._groups) > self._max:
                    self._groups.popitem(last=False)
            return person_version, versions

    def _touched_since(self, started):
        """A Touched of everything invalidated after `started` (all=True if not remembered), or None."""
        if self._seq == started:
            return None
        if not self._recent or self._recent[0][0] > started + 1:
            out = Touched()
            out.all = True
            return out
        out = Touched()
        for seq, touched in self._recent:
            if seq > started:
                out.all |= touched.all
                out.persons |= touched.persons
                out.distinct_ids |= touched.distinct_ids
                out.groups |= touched.groups
        return out

    @staticmethod
    def _person_stale(stale, key, person):
        if stale is None:
            return False
        return stale.all or key in stale.distinct_ids or (person is not None and person["id"] in stale.persons)

    def _put_person(self, key, version, person):
        old = self._persons.pop(key, None)
        if old is not None and old[1] is not None:
            self._by_person[old[1]["id"]].discard(key)
        self._persons[key] = (version, person)
        if person is not None:
            self._by_person[person["id"]].add(key)
        while len(self._persons) > self._max:
            gone_key, (_, gone) = self._persons.popitem(last=False)
            if gone is not None:
                self._forget_link(gone["id"], gone_key)

    def _forget_link(self, person_id, key):
        keys = self._by_person.get(person_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_person[person_id]

    # --- writers (after a transaction ends) ----------------------------------------------------------

    def invalidate(self, touched: Touched):
        with self._lock:
            self._seq += 1
            self._recent.append((self._seq, touched))
            if touched.all:
                self._persons.clear()
                self._by_person.clear()
                self._groups.clear()
                return
            for person_id in touched.persons:
                for key in self._by_person.pop(person_id, ()):
                    self._persons.pop(key, None)
            for key in touched.distinct_ids:
                entry = self._persons.pop(key, None)
                if entry is not None and entry[1] is not None:
                    self._forget_link(entry[1]["id"], key)
            for key in touched.groups:
                self._groups.pop(key, None)
