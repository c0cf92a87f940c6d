"""Persons, distinct ids, group types and groups: the reads flag evaluation needs (one query
each), the batch reads and writes of person processing, and the persons/groups API queries.

Person and group writes happen only in the writer thread (phlite/persons.py decides them);
nothing here decides person semantics.
"""

import threading

import orjson

from phlite.store.subjects import Subjects, Touched

# Well under SQLite's 32,766 bound parameters per statement.
_CHUNK = 5000


def _person(row):
    return {
        "id": row[0],
        "uuid": row[1],
        "properties": orjson.loads(row[2]),
        "created_at": row[3],
        "is_identified": bool(row[4]),
    }


def _group(row):
    return {"group_type_index": row[0], "group_key": row[1], "group_properties": orjson.loads(row[2]),
            "created_at": row[3]}


def _dumps(value):
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _chunks(values):
    values = list(values)
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


def _marks(n):
    return ", ".join("?" * n)


def _icontains(haystack, needle):
    # Registered as an SQL function: SQLite's LIKE folds ASCII case only.
    if haystack is None or needle is None:
        return 0
    return int(needle.casefold() in str(haystack).casefold())


class PersonsMixin:
    def _init_cache(self):
        self.db.register_function(_icontains, "phlite_icontains", 2, deterministic=True)
        self._persons_generation = 0
        self._persons_dirty = threading.local()  # per thread (a transaction belongs to one): a Touched
        self.subjects = Subjects()  # what /flags reads, in memory (phlite/store/subjects.py)

    # --- change tracking --------------------------------------------------------------

    def persons_generation(self):
        """A number that moves after every committed write of persons, distinct ids, groups or
        group types (any project): what a cached /flags answer read is then possibly stale."""
        return self._persons_generation

    def _persons_touched(self, persons=None, distinct_ids=None, groups=None):
        """Record what this transaction writes: person ids, (project, distinct id)s, (project,
        index, key)s; called with none of them, everything (any person or group may have changed)."""
        touched = getattr(self._persons_dirty, "value", None)
        if touched is None:
            touched = self._persons_dirty.value = Touched()
        if persons is None and distinct_ids is None and groups is None:
            touched.all = True
        touched.persons.update(persons or ())
        touched.distinct_ids.update(distinct_ids or ())
        touched.groups.update(groups or ())

    def _after_transaction(self):
        # Called when this thread's outermost transaction has ended: only then is the write
        # visible to readers, so only then may a reader's cached answer become stale. (A write
        # outside any transaction would be bumped at the thread's next one; writers use one.)
        touched = getattr(self._persons_dirty, "value", None)
        if touched:
            self._persons_dirty.value = None
            self.subjects.invalidate(touched)
            with self._lock:
                self._persons_generation += 1

    # --- reads flag evaluation uses (keep signatures and shapes) ---------------------

    def get_person_by_distinct_id(self, project_id, distinct_id):
        """{"id", "uuid", "properties", "created_at", "is_identified"} or None."""
        row = self.db.execute_sql(
            "SELECT p.id, p.uuid, p.properties, p.created_at, p.is_identified FROM person_distinct_id d"
            " JOIN person p ON p.id = d.person_id WHERE d.project_id = ? AND d.distinct_id = ?",
            (project_id, distinct_id),
        ).fetchone()
        return _person(row) if row else None

    def flag_subjects(self, project_id, distinct_id, groups):
        """What a /flags request reads, from memory when it is there, else in one SQLite query:
        ((person or None, its version), {(index, key): (group or None, its version)}).

        `distinct_id` None: no person wanted. `groups`: (group type index, key text) pairs. A
        version names the rows read: it changes when they may have (phlite/store/subjects.py)."""
        subjects = self.subjects
        person = subjects.person(project_id, distinct_id) if distinct_id is not None else (None, None)
        found, missing = {}, []
        for index, key in groups:
            entry = subjects.group(project_id, index, key)
            if entry is None:
                missing.append((index, key))
            else:
                found[(index, key)] = (entry[1], entry[0])
        if person is not None and not missing:
            return (person[1], person[0]), found
        started = subjects.start()
        parts, params = [], []
        if person is None:
            parts.append("SELECT 0, p.id, p.uuid, p.properties, p.created_at, p.is_identified FROM person_distinct_id d"
                         " JOIN person p ON p.id = d.person_id WHERE d.project_id = ? AND d.distinct_id = ?")
            params += [project_id, distinct_id]
        for index, key in missing:
            parts.append("SELECT 1, group_type_index, group_key, properties, created_at, NULL FROM group_"
                         " WHERE project_id = ? AND group_type_index = ? AND group_key = ?")
            params += [project_id, index, key]
        rows = self.db.execute_sql(" UNION ALL ".join(parts), params).fetchall()
        loaded_person = None
        loaded_groups = dict.fromkeys(missing)
        for row in rows:
            if row[0] == 0:
                loaded_person = _person(row[1:])
            else:
                loaded_groups[(row[1], row[2])] = _group(row[1:5])
        version, versions = subjects.keep(started, project_id, distinct_id if person is None else None,
                                          loaded_person, loaded_groups)
        if person is None:
            person = (version, loaded_person)
        for k, group in loaded_groups.items():
            found[k] = (group, versions[k])
        return (person[1], person[0]), found

    def group_type_mapping(self, project_id):
        """{group_type_index: group_type name}"""
        rows = self.db.execute_sql(
            "SELECT group_type_index, group_type FROM group_type WHERE project_id = ? ORDER BY group_type_index",
            (project_id,),
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def get_group(self, project_id, group_type_index, group_key):
        """{"group_type_index", "group_key", "group_properties", "created_at"} or None."""
        row = self.db.execute_sql(
            "SELECT group_type_index, group_key, properties, created_at FROM group_"
            " WHERE project_id = ? AND group_type_index = ? AND group_key = ?",
            (project_id, group_type_index, group_key),
        ).fetchone()
        return _group(row) if row else None

    # --- person processing (writer thread, inside its transaction) --------------------

    def bump_txn_marker(self):
        """Increment a counter in a per-connection TEMP table and return it. A rolled-back
        transaction takes its increments with it, which is how the writer's person cache
        learns that what it remembered from that transaction never happened."""
        conn = self.db.connection()
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS phlite_txn_marker (n INTEGER NOT NULL)")
        row = conn.execute("UPDATE temp.phlite_txn_marker SET n = n + 1 RETURNING n").fetchone()
        if row is None:
            conn.execute("INSERT INTO temp.phlite_txn_marker (n) VALUES (1)")
            return 1
        return row[0]

    def person_ids_for(self, project_id, distinct_ids):
        """{distinct_id: person id} for those of `distinct_ids` that have a person."""
        out = {}
        for chunk in _chunks(distinct_ids):
            rows = self.db.execute_sql(
                f"SELECT distinct_id, person_id FROM person_distinct_id"
                f" WHERE project_id = ? AND distinct_id IN ({_marks(len(chunk))})",
                [project_id, *chunk],
            )
            out.update(rows)
        return out

    def load_persons(self, person_ids):
        """{person id: (uuid, properties dict, created_at, is_identified bool)}"""
        out = {}
        for chunk in _chunks(person_ids):
            rows = self.db.execute_sql(
                "SELECT id, uuid, properties, created_at, is_identified FROM person"
                f" WHERE id IN ({_marks(len(chunk))})",
                chunk,
            )
            for r in rows:
                out[r[0]] = (r[1], orjson.loads(r[2]), r[3], bool(r[4]))
        return out

    def max_person_id(self):
        return self.db.execute_sql("SELECT COALESCE(MAX(id), 0) FROM person").fetchone()[0]

    def insert_persons(self, rows):
        """rows: (id, project_id, uuid, properties dict, created_at, is_identified)"""
        self._persons_touched(persons=[r[0] for r in rows])
        self.db.connection().executemany(
            "INSERT INTO person (id, project_id, uuid, properties, created_at, is_identified) VALUES (?, ?, ?, ?, ?, ?)",
            [(r[0], r[1], r[2], _dumps(r[3]), r[4], int(r[5])) for r in rows],
        )

    def update_persons(self, rows):
        """rows: (id, properties dict, created_at, is_identified)"""
        self._persons_touched(persons=[r[0] for r in rows])
        self.db.connection().executemany(
            "UPDATE person SET properties = ?, created_at = ?, is_identified = ?, version = version + 1 WHERE id = ?",
            [(_dumps(r[1]), r[2], int(r[3]), r[0]) for r in rows],
        )

    def set_distinct_ids(self, project_id, pairs):
        """pairs: (distinct_id, person id); an existing mapping is replaced."""
        self._persons_touched(distinct_ids=[(project_id, d) for d, _ in pairs])
        self.db.connection().executemany(
            "INSERT OR REPLACE INTO person_distinct_id (project_id, distinct_id, person_id) VALUES (?, ?, ?)",
            [(project_id, d, p) for d, p in pairs],
        )

    def merge_person_rows(self, project_id, source_id, target_id):
        """Move every distinct id and flag hash-key override of person `source_id` to
        `target_id` (the target's own overrides win), then delete the source person.
        Returns the distinct ids moved."""
        self._persons_touched(persons=(source_id, target_id))
        conn = self.db.connection()
        moved = [r[0] for r in conn.execute(
            "UPDATE person_distinct_id SET person_id = ? WHERE project_id = ? AND person_id = ?"
            " RETURNING distinct_id",
            (target_id, project_id, source_id),
        )]
        conn.execute(
            "UPDATE OR IGNORE flag_hash_key_override SET person_id = ? WHERE project_id = ? AND person_id = ?",
            (target_id, project_id, source_id),
        )
        conn.execute("DELETE FROM flag_hash_key_override WHERE project_id = ? AND person_id = ?",
                     (project_id, source_id))
        conn.execute("DELETE FROM person WHERE id = ?", (source_id,))
        return moved

    def delete_person_rows(self, project_id, person_id):
        """Delete a person with its distinct ids and hash-key overrides; returns the distinct ids."""
        self._persons_touched(persons=(person_id,))
        conn = self.db.connection()
        gone = [r[0] for r in conn.execute(
            "DELETE FROM person_distinct_id WHERE project_id = ? AND person_id = ? RETURNING distinct_id",
            (project_id, person_id),
        )]
        conn.execute("DELETE FROM flag_hash_key_override WHERE project_id = ? AND person_id = ?",
                     (project_id, person_id))
        conn.execute("DELETE FROM person WHERE id = ? AND project_id = ?", (person_id, project_id))
        return gone

    def delete_events_of(self, project_id, distinct_ids):
        """Delete every event of these distinct ids (by the (project, distinct_id) index).

        A person's events are exactly those of its distinct ids: merges move ids to the kept
        person, so no event of a person hides under an id it no longer has."""
        conn = self.db.connection()
        gone = 0
        for chunk in _chunks(distinct_ids):
            # rowcount leaves out the roll-up trigger's writes (m0011)
            gone += conn.execute(f"DELETE FROM event WHERE project_id = ? AND distinct_id IN ({_marks(len(chunk))})",
                                 [project_id, *chunk]).rowcount
        return gone

    def insert_group_type(self, project_id, group_type_index, group_type):
        # Group types reach /flags through the definitions cache (re-read when a request names an unknown one).
        self.db.execute_sql(
            "INSERT OR IGNORE INTO group_type (project_id, group_type_index, group_type) VALUES (?, ?, ?)",
            (project_id, group_type_index, group_type),
        )

    def upsert_groups(self, project_id, rows):
        """rows: (group_type_index, group_key, properties dict, created_at); replaces what is stored."""
        self._persons_touched(groups=[(project_id, r[0], r[1]) for r in rows])
        self.db.connection().executemany(
            "INSERT INTO group_ (project_id, group_type_index, group_key, properties, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, group_type_index, group_key)"
            " DO UPDATE SET properties = excluded.properties, created_at = excluded.created_at",
            [(project_id, r[0], r[1], _dumps(r[2]), r[3]) for r in rows],
        )

    def delete_groups(self, project_id, keys):
        """keys: (group_type_index, group_key)"""
        self._persons_touched(groups=[(project_id, i, k) for i, k in keys])
        self.db.connection().executemany(
            "DELETE FROM group_ WHERE project_id = ? AND group_type_index = ? AND group_key = ?",
            [(project_id, i, k) for i, k in keys],
        )

    # --- the persons and groups API -----------------------------------------------------

    def list_persons(self, project_id, *, distinct_id=None, search=None, cursor=None, limit=100):
        """Newest first; `cursor` is the person id of the previous page's last row.
        Returns (persons with "distinct_ids", next cursor or None)."""
        where, params = ["p.project_id = ?"], [project_id]
        if distinct_id is not None:
            where.append("p.id = (SELECT person_id FROM person_distinct_id WHERE project_id = ? AND distinct_id = ?)")
            params += [project_id, distinct_id]
        if search:
            where.append(
                "(EXISTS (SELECT 1 FROM person_distinct_id d WHERE d.person_id = p.id"
                "         AND phlite_icontains(d.distinct_id, ?))"
                " OR EXISTS (SELECT 1 FROM json_each(p.properties) j WHERE j.type NOT IN ('object', 'array', 'null')"
                "            AND phlite_icontains(j.value, ?)))"
            )
            params += [search, search]
        if cursor is not None:
            where.append("p.id < ?")
            params.append(cursor)
        rows = self.db.execute_sql(
            "SELECT p.id, p.uuid, p.properties, p.created_at, p.is_identified FROM person p"
            f" WHERE {' AND '.join(where)} ORDER BY p.id DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        more = len(rows) > limit
        persons = [_person(r) for r in rows[:limit]]
        self._attach_distinct_ids(persons)
        return persons, (persons[-1]["id"] if more else None)

    def get_person_by_uuid(self, project_id, person_uuid):
        """The person (with "distinct_ids") or None."""
        row = self.db.execute_sql(
            "SELECT id, uuid, properties, created_at, is_identified FROM person WHERE uuid = ? AND project_id = ?",
            (person_uuid, project_id),
        ).fetchone()
        if row is None:
            return None
        person = _person(row)
        self._attach_distinct_ids([person])
        return person

    def _attach_distinct_ids(self, persons):
        by_id = {p["id"]: p for p in persons}
        for p in persons:
            p["distinct_ids"] = []
        for chunk in _chunks(by_id):
            rows = self.db.execute_sql(
                f"SELECT person_id, distinct_id FROM person_distinct_id WHERE person_id IN ({_marks(len(chunk))})"
                " ORDER BY distinct_id",
                chunk,
            )
            for pid, did in rows:
                by_id[pid]["distinct_ids"].append(did)

    def list_groups(self, project_id, group_type_index, *, search=None, cursor=None, limit=100):
        """Newest first; `cursor` is the rowid of the previous page's last row.
        Returns (groups, next cursor or None)."""
        where, params = ["project_id = ?", "group_type_index = ?"], [project_id, group_type_index]
        if search:
            where.append(
                "(phlite_icontains(group_key, ?) OR EXISTS (SELECT 1 FROM json_each(group_.properties) j"
                " WHERE j.type NOT IN ('object', 'array', 'null') AND phlite_icontains(j.value, ?)))"
            )
            params += [search, search]
        if cursor is not None:
            where.append("rowid < ?")
            params.append(cursor)
        rows = self.db.execute_sql(
            "SELECT group_type_index, group_key, properties, created_at, rowid FROM group_"
            f" WHERE {' AND '.join(where)} ORDER BY rowid DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [_group(r) for r in rows], (rows[-1][4] if more else None)
