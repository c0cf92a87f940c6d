"""The console's SQL: users, sessions, one-time sign-in links, and the counts its pages show.

Tokens arrive here already hashed (phlite/console decides how); this module only stores rows.
"""

import time
import uuid as uuidlib

import orjson


def _now_ms():
    return int(time.time() * 1000)


def _user(row):
    return row and {"id": row[0], "email": row[1], "password_hash": row[2], "role": row[3], "created_at": row[4]}


_USER = "SELECT id, email, password_hash, role, created_at FROM console_user"


class ConsoleMixin:
    # --- users ----------------------------------------------------------------------

    def count_users(self):
        return self.db.execute_sql("SELECT count(*) FROM console_user").fetchone()[0]

    def create_user(self, email, role, password_hash=None, now=None):
        """The new user, or None if the email is taken."""
        with self.transaction():
            if self.db.execute_sql("SELECT 1 FROM console_user WHERE email = ?", (email,)).fetchone():
                return None
            cur = self.db.execute_sql(
                "INSERT INTO console_user (email, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
                (email, password_hash, role, now or _now_ms()))
        return self.get_user(cur.lastrowid)

    def get_user(self, user_id):
        return _user(self.db.execute_sql(_USER + " WHERE id = ?", (user_id,)).fetchone())

    def get_user_by_email(self, email):
        return _user(self.db.execute_sql(_USER + " WHERE email = ?", (email,)).fetchone())

    def list_users(self):
        return [_user(r) for r in self.db.execute_sql(_USER + " ORDER BY id").fetchall()]

    def update_user(self, user_id, *, password_hash=None, role=None):
        sets = [(c, v) for c, v in (("password_hash", password_hash), ("role", role)) if v is not None]
        with self.transaction():
            self.db.execute_sql("UPDATE console_user SET " + ", ".join(f"{c} = ?" for c, _ in sets)
                                + " WHERE id = ?", [v for _, v in sets] + [user_id])

    def delete_user(self, user_id):
        """Deletes the user with its sessions and links; False if there was none."""
        with self.transaction():
            cur = self.db.execute_sql("DELETE FROM console_user WHERE id = ?", (user_id,))
            self.db.execute_sql("DELETE FROM console_session WHERE user_id = ?", (user_id,))
            self.db.execute_sql("DELETE FROM console_link WHERE user_id = ?", (user_id,))
        return cur.rowcount > 0

    # --- sessions ---------------------------------------------------------------------

    def create_session(self, token_hash, user_id, csrf, now, expires_at):
        with self.transaction():
            self.db.execute_sql(
                "INSERT INTO console_session (token_hash, user_id, csrf, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)", (token_hash, user_id, csrf, now, expires_at))
            # Expired sessions go on every sign-in, so the table stays as small as the live ones.
            self.db.execute_sql("DELETE FROM console_session WHERE expires_at <= ?", (now,))

    def get_session(self, token_hash, now):
        """{"user": user, "csrf"} of a live session, or None."""
        row = self.db.execute_sql(
            "SELECT s.csrf, u.id, u.email, u.password_hash, u.role, u.created_at FROM console_session s"
            " JOIN console_user u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
            (token_hash, now)).fetchone()
        return row and {"csrf": row[0], "user": _user(row[1:])}

    def delete_session(self, token_hash):
        with self.transaction():
            self.db.execute_sql("DELETE FROM console_session WHERE token_hash = ?", (token_hash,))

    def delete_sessions_of(self, user_id):
        with self.transaction():
            self.db.execute_sql("DELETE FROM console_session WHERE user_id = ?", (user_id,))

    # --- one-time links -----------------------------------------------------------------

    def create_link(self, token_hash, user_id, now, expires_at):
        with self.transaction():
            self.db.execute_sql(
                "INSERT INTO console_link (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (token_hash, user_id, now, expires_at))

    def get_link(self, token_hash, now):
        """{"user_id"} of an unused, unexpired link, or None."""
        row = self.db.execute_sql(
            "SELECT user_id FROM console_link WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
            (token_hash, now)).fetchone()
        return row and {"user_id": row[0]}

    def use_link(self, token_hash, now):
        """Marks the link used; False if it was already used or expired (two tabs racing)."""
        with self.transaction():
            cur = self.db.execute_sql(
                "UPDATE console_link SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
                (now, token_hash, now))
        return cur.rowcount > 0

    # --- what the home page counts (events per range: LifecycleMixin.count_events_between) ---------

    def count_active_persons(self, project_id, start, end):
        """Distinct persons (or distinct ids for events without a person) with an event in [start, end)."""
        return self.db.execute_sql(
            "SELECT count(DISTINCT coalesce(person_id, 'd' || distinct_id)) FROM event"
            " WHERE project_id = ? AND timestamp >= ? AND timestamp < ?",
            (project_id, start, end)).fetchone()[0]

    def get_event(self, project_id, uuid):
        """One event by uuid within the project, properties parsed; None if absent or not a uuid."""
        try:
            raw = uuidlib.UUID(uuid).bytes
        except (ValueError, TypeError, AttributeError):
            return None
        row = self.db.execute_sql(
            "SELECT id, event, distinct_id, properties, timestamp, created_at, person_id FROM event"
            " WHERE project_id = ? AND uuid = ?", (project_id, raw)).fetchone()
        return row and {"_id": row[0], "uuid": str(uuidlib.UUID(bytes=raw)), "event": row[1], "distinct_id": row[2],
                        "properties": orjson.loads(row[3]), "timestamp": row[4], "created_at": row[5],
                        "person_id": row[6]}

    def recent_group_events(self, project_id, group_type, group_key, limit=50, scan=20_000):
        """Events of one group among the project's newest `scan` events (events carry groups only in
        their properties' `$groups`, which no index covers: the scan bound keeps the page fast)."""
        rows = self.db.execute_sql(
            "SELECT id, uuid, event, distinct_id, properties, timestamp, created_at, person_id FROM"
            " (SELECT * FROM event WHERE project_id = ? ORDER BY timestamp DESC LIMIT ?)"
            " WHERE json_type(properties, '$.\"$groups\"') = 'object' AND EXISTS (SELECT 1 FROM"
            " json_each(properties, '$.\"$groups\"') j WHERE j.key = ? AND j.value = ?) LIMIT ?",
            (project_id, scan, group_type, group_key, limit)).fetchall()
        return [{"_id": r[0], "uuid": str(uuidlib.UUID(bytes=r[1])), "event": r[2], "distinct_id": r[3],
                 "properties": orjson.loads(r[4]), "timestamp": r[5], "created_at": r[6], "person_id": r[7]}
                for r in rows]
