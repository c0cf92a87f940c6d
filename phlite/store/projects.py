"""Projects, their public `phc_` tokens, and personal API keys (`phx_`, stored salted and hashed)."""

import hashlib
import hmac
import json
import secrets
import string
import threading
import time

_ALPHABET = string.ascii_letters + string.digits


def _random_token(prefix, n=40):
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _hash_key(salt, key):
    return hashlib.sha256((salt + key).encode()).hexdigest()


_UNSET = object()


def _now_ms():
    return int(time.time() * 1000)


class ProjectsMixin:
    def _init_cache(self):
        # token -> project id; capture resolves a token per request, so keep it in memory.
        # Invalidated by project creation (the only write that changes it).
        self._token_cache = {}
        self._token_lock = threading.Lock()

    # --- projects -------------------------------------------------------------

    def create_project(self, name):
        token = _random_token("phc_")
        with self.transaction():
            # A deleted project's id is never given again (id_counter, docs/lifecycle.md "Deleting a project").
            pid = self.db.execute_sql(
                "UPDATE id_counter SET value = max(value, (SELECT coalesce(max(id), 0) FROM project)) + 1"
                " WHERE name = 'project' RETURNING value").fetchone()[0]
            self.db.execute_sql(
                "INSERT INTO project (id, name, api_token, created_at) VALUES (?, ?, ?, ?)",
                (pid, name, token, _now_ms()))
        self._token_cache.clear()
        return {"id": pid, "name": name, "api_token": token}

    _PROJECT_COLUMNS = "id, name, api_token, created_at, timezone, week_start_day, retention_days"

    @staticmethod
    def _project_row(r):
        return {"id": r[0], "name": r[1], "api_token": r[2], "created_at": r[3],
                "timezone": r[4], "week_start_day": r[5], "retention_days": r[6]}

    def list_projects(self, ids=None):
        # A project being deleted (deleted_at set) is gone for every reader at once.
        rows = self.db.execute_sql(
            f"SELECT {self._PROJECT_COLUMNS} FROM project WHERE deleted_at IS NULL ORDER BY id").fetchall()
        out = [self._project_row(r) for r in rows]
        if ids is not None:
            out = [p for p in out if p["id"] in ids]
        return out

    def get_project(self, project_id):
        row = self.db.execute_sql(
            f"SELECT {self._PROJECT_COLUMNS} FROM project WHERE id = ? AND deleted_at IS NULL", (project_id,)
        ).fetchone()
        return row and self._project_row(row)

    def update_project(self, project_id, *, name=None, timezone=None, week_start_day=None, retention_days=_UNSET):
        """Change the given settings (callers validate them); the updated project, or None if absent.
        retention_days None keeps events forever."""
        sets = [(c, v) for c, v in (("name", name), ("timezone", timezone), ("week_start_day", week_start_day))
                if v is not None]
        if retention_days is not _UNSET:
            sets.append(("retention_days", retention_days))
        if sets:
            with self.transaction():
                self.db.execute_sql(
                    "UPDATE project SET " + ", ".join(f"{c} = ?" for c, _ in sets) + " WHERE id = ? AND deleted_at IS NULL",
                    [v for _, v in sets] + [project_id],
                )
            if timezone is not None:
                self._flags_changed(project_id)  # flag date operators read naive dates in this zone
        return self.get_project(project_id)

    def project_for_token(self, token):
        """The project id of a `phc_` token, or None."""
        pid = self._token_cache.get(token)
        if pid is not None:
            return pid
        row = self.db.execute_sql("SELECT id FROM project WHERE api_token = ? AND deleted_at IS NULL", (token,)).fetchone()
        if row is None:
            return None
        with self._token_lock:
            if len(self._token_cache) > 10_000:
                self._token_cache.clear()
            self._token_cache[token] = row[0]
        return row[0]

    # --- personal API keys ----------------------------------------------------

    def create_personal_key(self, label="", project_ids=None):
        """Create a key; the plain key is returned once and stored only as a salted hash."""
        key = _random_token("phx_", 43)
        salt = secrets.token_hex(16)
        with self.transaction():
            cur = self.db.execute_sql(
                "INSERT INTO personal_key (label, lookup, salt, hash, project_ids, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (label, key[:12], salt, _hash_key(salt, key),
                 json.dumps(sorted(project_ids)) if project_ids else None, _now_ms()),
            )
        return {"id": cur.lastrowid, "personal_api_key": key}

    def verify_personal_key(self, key):
        """The key's record {"id", "project_ids" (None = all)} if the key is valid and not revoked, else None."""
        if not key or not key.startswith("phx_"):
            return None
        rows = self.db.execute_sql(
            "SELECT id, salt, hash, project_ids, revoked_at FROM personal_key WHERE lookup = ?", (key[:12],)
        ).fetchall()
        found = None
        for kid, salt, digest, project_ids, revoked in rows:
            # compare_digest: the time taken does not reveal how much of a guess was right.
            if hmac.compare_digest(_hash_key(salt, key), digest) and revoked is None:
                found = {"id": kid, "project_ids": json.loads(project_ids) if project_ids else None}
        return found

    def list_personal_keys(self):
        rows = self.db.execute_sql(
            "SELECT id, label, lookup, project_ids, created_at, revoked_at FROM personal_key ORDER BY id"
        ).fetchall()
        return [
            {"id": r[0], "label": r[1], "prefix": r[2], "project_ids": json.loads(r[3]) if r[3] else None,
             "created_at": r[4], "revoked": r[5] is not None}
            for r in rows
        ]

    def revoke_personal_key(self, key_id):
        with self.transaction():
            cur = self.db.execute_sql(
                "UPDATE personal_key SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now_ms(), key_id)
            )
        return cur.rowcount > 0
