"""Feature flags, cohorts and their activity log; the reads a /flags request needs beyond the
person (static cohort membership, experience-continuity hash keys).

Every flag or cohort write bumps an in-memory generation per project after it commits, so the
flag definitions cache (phlite/flags/cache.py) notices any change with one dict lookup.
"""

import threading
import time

import orjson
import peewee

from phlite import errors

FLAG_COLUMNS = (
    "id", "project_id", "key", "name", "active", "deleted", "filters", "ensure_experience_continuity",
    "version", "evaluation_runtime", "evaluation_tags", "bucketing_identifier", "is_remote_configuration",
    "created_at", "updated_at", "created_by", "last_modified_by",
)  # fmt: skip
# The columns an API change may set; the rest are kept by the store.
FLAG_EDITABLE = (
    "key", "name", "active", "deleted", "filters", "ensure_experience_continuity", "evaluation_runtime",
    "evaluation_tags", "bucketing_identifier", "is_remote_configuration",
)  # fmt: skip
_FLAG_JSON = ("filters", "evaluation_tags")
_FLAG_BOOL = ("active", "deleted", "ensure_experience_continuity", "is_remote_configuration")

COHORT_COLUMNS = (
    "id", "project_id", "name", "description", "filters", "is_static", "deleted", "version",
    "created_at", "updated_at", "created_by", "last_modified_by",
)  # fmt: skip
COHORT_EDITABLE = ("name", "description", "filters", "is_static", "deleted")

_SELECT_FLAG = f"SELECT {', '.join(FLAG_COLUMNS)} FROM feature_flag"
_SELECT_COHORT = f"SELECT {', '.join(COHORT_COLUMNS)} FROM cohort"

# Inserting static members in chunks keeps each statement under SQLite's variable limit.
_CHUNK = 500


def _now_ms():
    return int(time.time() * 1000)


def _dumps(value):
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _flag(row):
    flag = dict(zip(FLAG_COLUMNS, row))
    for name in _FLAG_JSON:
        flag[name] = orjson.loads(flag[name])
    for name in _FLAG_BOOL:
        flag[name] = bool(flag[name])
    return flag


def _cohort(row):
    cohort = dict(zip(COHORT_COLUMNS, row))
    cohort["filters"] = orjson.loads(cohort["filters"])
    cohort["is_static"] = bool(cohort["is_static"])
    cohort["deleted"] = bool(cohort["deleted"])
    return cohort


def _column_value(name, value):
    if name in _FLAG_JSON or name == "filters":
        return _dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _duplicate_key():
    return errors.BadRequest("There is already a feature flag with this key.", code="unique", attr="key")


class FlagsMixin:
    def _init_cache(self):
        self._flag_generations: dict[int, int] = {}
        self._flag_generation_lock = threading.Lock()

    # --- change tracking --------------------------------------------------------------

    def flag_generation(self, project_id):
        """A number that changes after every committed flag or cohort write of the project."""
        return self._flag_generations.get(project_id, 0)

    def _flags_changed(self, project_id):
        with self._flag_generation_lock:
            self._flag_generations[project_id] = self._flag_generations.get(project_id, 0) + 1

    def _log_activity(self, project_id, scope, item_id, activity, key_id, before, after, now, user_id=None):
        # key_id: the personal API key of an API change; user_id: the console user of a console change.
        self.db.execute_sql(
            "INSERT INTO activity_log (project_id, scope, item_id, activity, key_id, created_at, before, after,"
            " user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, scope, item_id, activity, key_id, now,
             None if before is None else _dumps(before), None if after is None else _dumps(after), user_id),
        )

    def list_activity(self, project_id, scope, item_id=None, limit=100, offset=0):
        """Newest first: ([{"id", "scope", "item_id", "activity", "key_id", "created_at", "before",
        "after", "user_id"}], total count)."""
        where, params = "project_id = ? AND scope = ?", [project_id, scope]
        if item_id is not None:
            where += " AND item_id = ?"
            params.append(item_id)
        count = self.db.execute_sql(f"SELECT count(*) FROM activity_log WHERE {where}", params).fetchone()[0]
        rows = self.db.execute_sql(
            "SELECT id, scope, item_id, activity, key_id, created_at, before, after, user_id FROM activity_log"
            f" WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        out = [
            {"id": r[0], "scope": r[1], "item_id": r[2], "activity": r[3], "key_id": r[4], "created_at": r[5],
             "before": None if r[6] is None else orjson.loads(r[6]),
             "after": None if r[7] is None else orjson.loads(r[7]), "user_id": r[8]}
            for r in rows
        ]
        return out, count

    # --- flags ------------------------------------------------------------------------

    def get_flag(self, project_id, flag_id):
        """The flag row (deleted ones too), or None."""
        row = self.db.execute_sql(f"{_SELECT_FLAG} WHERE project_id = ? AND id = ?", (project_id, flag_id)).fetchone()
        return _flag(row) if row else None

    def get_flag_by_key(self, project_id, key):
        """The non-deleted flag with this key, or None."""
        row = self.db.execute_sql(
            f"{_SELECT_FLAG} WHERE project_id = ? AND key = ? AND deleted = 0", (project_id, key)
        ).fetchone()
        return _flag(row) if row else None

    def list_flags(self, project_id, limit=100, offset=0, search=None, active=None):
        """Non-deleted flags, oldest first: (rows, total count)."""
        where, params = "project_id = ? AND deleted = 0", [project_id]
        if search:
            where += " AND (instr(lower(key), lower(?)) > 0 OR instr(lower(name), lower(?)) > 0)"
            params += [search, search]
        if active is not None:
            where += " AND active = ?"
            params.append(int(active))
        count = self.db.execute_sql(f"SELECT count(*) FROM feature_flag WHERE {where}", params).fetchone()[0]
        rows = self.db.execute_sql(
            f"{_SELECT_FLAG} WHERE {where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset]
        ).fetchall()
        return [_flag(r) for r in rows], count

    def create_flag(self, project_id, fields, key_id, check=None, user_id=None):
        """Insert a flag (fields: the FLAG_EDITABLE columns) and its "created" activity; returns the row.

        `check()`, if given, runs inside the write transaction first (validation that reads other
        rows, so that it sees what the insert will be committed against)."""
        now = _now_ms()
        columns = [c for c in FLAG_EDITABLE if c in fields]
        try:
            with self.transaction():
                if check is not None:
                    check()
                if fields.get("deleted") is not True and self.get_flag_by_key(project_id, fields["key"]):
                    raise _duplicate_key()
                cur = self.db.execute_sql(
                    f"INSERT INTO feature_flag (project_id, {', '.join(columns)}, version, created_at, updated_at,"
                    f" created_by, last_modified_by) VALUES ({', '.join('?' * (len(columns) + 6))})",
                    [project_id, *(_column_value(c, fields[c]) for c in columns), 1, now, now, key_id, key_id],
                )
                flag = self.get_flag(project_id, cur.lastrowid)
                self._log_activity(project_id, "FeatureFlag", flag["id"], "created", key_id, None, flag, now, user_id)
        except peewee.IntegrityError:
            raise _duplicate_key()
        self._flags_changed(project_id)
        return flag

    def update_flag(self, project_id, flag_id, change, key_id, user_id=None):
        """Apply `change(current row) -> {column: new value}` atomically; returns the new row.

        Nothing is written (and the version stays) when no value actually changes. Otherwise the
        version is bumped and the before/after pair is logged as "updated", "deleted" or "restored".
        Returns None if there is no such flag. `change` may raise to refuse the update."""
        now = _now_ms()
        try:
            with self.transaction():
                before = self.get_flag(project_id, flag_id)
                if before is None:
                    return None
                updates = {c: v for c, v in change(before).items() if c in FLAG_EDITABLE and before[c] != v}
                if not updates:
                    return before
                restoring = updates.get("deleted") is False
                if not updates.get("deleted", before["deleted"]):
                    other = self.get_flag_by_key(project_id, updates.get("key", before["key"]))
                    if other is not None and other["id"] != flag_id:
                        raise _duplicate_key()
                sets = ", ".join(f"{c} = ?" for c in updates)
                self.db.execute_sql(
                    f"UPDATE feature_flag SET {sets}, version = version + 1, updated_at = ?, last_modified_by = ?"
                    " WHERE project_id = ? AND id = ?",
                    [*(_column_value(c, v) for c, v in updates.items()), now, key_id, project_id, flag_id],
                )
                after = self.get_flag(project_id, flag_id)
                activity = "deleted" if updates.get("deleted") else "restored" if restoring else "updated"
                self._log_activity(project_id, "FeatureFlag", flag_id, activity, key_id, before, after, now, user_id)
        except peewee.IntegrityError:
            raise _duplicate_key()
        self._flags_changed(project_id)
        return after

    # --- cohorts ----------------------------------------------------------------------

    def get_cohort(self, project_id, cohort_id):
        row = self.db.execute_sql(
            f"{_SELECT_COHORT} WHERE project_id = ? AND id = ?", (project_id, cohort_id)
        ).fetchone()
        return _cohort(row) if row else None

    def list_cohorts(self, project_id, limit=100, offset=0):
        """Non-deleted cohorts, oldest first: (rows, total count)."""
        count = self.db.execute_sql(
            "SELECT count(*) FROM cohort WHERE project_id = ? AND deleted = 0", (project_id,)
        ).fetchone()[0]
        rows = self.db.execute_sql(
            f"{_SELECT_COHORT} WHERE project_id = ? AND deleted = 0 ORDER BY id LIMIT ? OFFSET ?",
            (project_id, limit, offset),
        ).fetchall()
        return [_cohort(r) for r in rows], count

    def cohort_ids(self, project_id):
        """Ids of the project's non-deleted cohorts."""
        rows = self.db.execute_sql("SELECT id FROM cohort WHERE project_id = ? AND deleted = 0", (project_id,))
        return {r[0] for r in rows.fetchall()}

    def static_member_count(self, cohort_id):
        return self.db.execute_sql(
            "SELECT count(*) FROM cohort_static_member WHERE cohort_id = ?", (cohort_id,)
        ).fetchone()[0]

    def static_members(self, cohort_id):
        rows = self.db.execute_sql(
            "SELECT distinct_id FROM cohort_static_member WHERE cohort_id = ? ORDER BY distinct_id", (cohort_id,)
        )
        return [r[0] for r in rows.fetchall()]

    def _set_static_members(self, project_id, cohort_id, distinct_ids):
        self.db.execute_sql("DELETE FROM cohort_static_member WHERE cohort_id = ?", (cohort_id,))
        ids = list(dict.fromkeys(distinct_ids))
        conn = self.db.connection()
        for i in range(0, len(ids), _CHUNK):
            conn.executemany(
                "INSERT INTO cohort_static_member (project_id, cohort_id, distinct_id) VALUES (?, ?, ?)",
                [(project_id, cohort_id, d) for d in ids[i:i + _CHUNK]],
            )

    def _cohort_snapshot(self, cohort):
        # The activity log keeps static members too: they are part of what a change changed.
        if cohort["is_static"]:
            return {**cohort, "distinct_ids": self.static_members(cohort["id"])}
        return cohort

    def create_cohort(self, project_id, prepare, key_id, user_id=None):
        """Insert a cohort, its static members and its activity; returns the row.

        `prepare() -> ({COHORT_EDITABLE column: value}, static distinct ids or None)` runs inside the
        write transaction, so validation that reads other cohorts sees what the insert commits against."""
        now = _now_ms()
        with self.transaction():
            fields, distinct_ids = prepare()
            columns = [c for c in COHORT_EDITABLE if c in fields]
            cur = self.db.execute_sql(
                f"INSERT INTO cohort (project_id, {', '.join(columns)}, version, created_at, updated_at,"
                f" created_by, last_modified_by) VALUES ({', '.join('?' * (len(columns) + 6))})",
                [project_id, *(_column_value(c, fields[c]) for c in columns), 1, now, now, key_id, key_id],
            )
            cohort_id = cur.lastrowid
            if distinct_ids is not None:
                self._set_static_members(project_id, cohort_id, distinct_ids)
            cohort = self.get_cohort(project_id, cohort_id)
            self._log_activity(project_id, "Cohort", cohort_id, "created", key_id, None,
                               self._cohort_snapshot(cohort), now, user_id)
        self._flags_changed(project_id)
        return cohort

    def update_cohort(self, project_id, cohort_id, change, key_id, user_id=None):
        """Apply `change(current) -> ({column: value}, distinct_ids or None)` atomically; returns the row."""
        now = _now_ms()
        with self.transaction():
            before = self.get_cohort(project_id, cohort_id)
            if before is None:
                return None
            fields, distinct_ids = change(before)
            updates = {c: v for c, v in fields.items() if c in COHORT_EDITABLE and before[c] != v}
            snapshot_before = self._cohort_snapshot(before)
            members_changed = False
            if distinct_ids is not None:
                members_changed = list(dict.fromkeys(distinct_ids)) != snapshot_before.get("distinct_ids")
            if not updates and not members_changed:
                return before
            if updates:
                sets = ", ".join(f"{c} = ?" for c in updates)
                self.db.execute_sql(
                    f"UPDATE cohort SET {sets} WHERE project_id = ? AND id = ?",
                    [*(_column_value(c, v) for c, v in updates.items()), project_id, cohort_id],
                )
            if members_changed:
                self._set_static_members(project_id, cohort_id, distinct_ids)
            self.db.execute_sql(
                "UPDATE cohort SET version = version + 1, updated_at = ?, last_modified_by = ? WHERE id = ?",
                (now, key_id, cohort_id),
            )
            after = self.get_cohort(project_id, cohort_id)
            activity = "deleted" if updates.get("deleted") else "restored" if updates.get("deleted") is False \
                else "updated"
            self._log_activity(project_id, "Cohort", cohort_id, activity, key_id, snapshot_before,
                               self._cohort_snapshot(after), now, user_id)
        self._flags_changed(project_id)
        return after

    # --- what flag evaluation reads ----------------------------------------------------

    def load_flag_definitions(self, project_id):
        """(non-deleted flag rows, {cohort id: cohort row} of non-deleted cohorts), one consistent read."""
        with self.db.atomic():
            flags = [
                _flag(r) for r in self.db.execute_sql(
                    f"{_SELECT_FLAG} WHERE project_id = ? AND deleted = 0 ORDER BY id", (project_id,)
                ).fetchall()
            ]
            cohorts = {
                c["id"]: c for c in (
                    _cohort(r) for r in self.db.execute_sql(
                        f"{_SELECT_COHORT} WHERE project_id = ? AND deleted = 0 ORDER BY id", (project_id,)
                    ).fetchall()
                )
            }
        return flags, cohorts

    def static_cohorts_of(self, project_id, cohort_ids, distinct_id, person_id=None):
        """Which of `cohort_ids` (static cohorts) list the person: through any of its distinct ids
        when `person_id` is known, else through `distinct_id` alone. One query."""
        if not cohort_ids:
            return frozenset()
        marks = ", ".join("?" * len(cohort_ids))
        if person_id is None:
            sql = (f"SELECT DISTINCT cohort_id FROM cohort_static_member WHERE project_id = ? AND distinct_id = ?"
                   f" AND cohort_id IN ({marks})")
            params = [project_id, distinct_id, *cohort_ids]
        else:
            sql = (
                "SELECT DISTINCT m.cohort_id FROM cohort_static_member m WHERE m.project_id = ?"
                f" AND m.cohort_id IN ({marks}) AND m.distinct_id IN ("
                " SELECT distinct_id FROM person_distinct_id WHERE project_id = ? AND person_id = ?"
                " UNION SELECT ?)"
            )
            params = [project_id, *cohort_ids, project_id, person_id, distinct_id]
        return frozenset(r[0] for r in self.db.execute_sql(sql, params).fetchall())

    def hash_key_overrides(self, project_id, person_ids):
        """{person id: {flag key: hash key}} stored for experience continuity."""
        ids = [p for p in dict.fromkeys(person_ids) if p is not None]
        if not ids:
            return {}
        rows = self.db.execute_sql(
            "SELECT person_id, flag_key, hash_key FROM flag_hash_key_override WHERE project_id = ?"
            f" AND person_id IN ({', '.join('?' * len(ids))})",
            [project_id, *ids],
        ).fetchall()
        out: dict = {}
        for person_id, flag_key, hash_key in rows:
            out.setdefault(person_id, {})[flag_key] = hash_key
        return out

    def add_hash_key_overrides(self, project_id, person_ids, flag_keys, hash_key):
        """Give each person `hash_key` for every flag it has no override for yet (one small transaction)."""
        ids = [p for p in dict.fromkeys(person_ids) if p is not None]
        rows = [(project_id, p, k, hash_key) for p in ids for k in flag_keys]
        if not rows:
            return
        with self.transaction():
            self.db.connection().executemany(
                "INSERT OR IGNORE INTO flag_hash_key_override (project_id, person_id, flag_key, hash_key)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
