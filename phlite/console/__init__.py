"""The console (the web UI at /): accounts, sessions, and what each page shows, as data.

`Console` is the face phlite/web/console/ uses; it is built in phlite/app.py over the same Store,
so its pages read what the JSON API reads. Inside: `auth` (scrypt passwords, tokens, the sign-in
throttle), `home` (counts, chart geometry, snippets), `forms` (flag and cohort form fields <-> API
filters), `insight_forms` / `insight_views` (the insight pages: fields -> query nodes, answers ->
charts and tables, geometry in `charts`), `render` (Jinja2, autoescaped). HTTP (cookies,
CSRF checks, headers) stays in phlite/web/console/. docs/console.md "Security" says why each rule.
"""

import dataclasses
import time

import orjson

from phlite.console import auth, home
from phlite.console import insights as insight_forms  # the insight pages' fields <-> query nodes
from phlite.console import views as insight_views  # the runner's answers -> what the pages draw
from phlite.console.history import leaf_changes
from phlite.console.forms import (
    OPERATORS, api_error_field, apply_action, cohort_body, cohort_form, cohort_form_from_fields, flag_body, flag_form,
    flag_form_from_fields, hogql_string, value_from_text,
)
from phlite.console.render import STATIC, environment

SESSION_SECONDS = 14 * 24 * 3600  # a signed-in browser stays signed in two weeks, then signs in again
LINK_SECONDS = 24 * 3600
ROLES = ("admin", "member")


class SignInError(Exception):
    """Why a sign-in or account form was refused, with the field it concerns."""

    def __init__(self, message, field=None, retry_after=None):
        super().__init__(message)
        self.message, self.field, self.retry_after = message, field, retry_after


@dataclasses.dataclass(frozen=True)
class Session:
    token: str
    csrf: str
    user: dict

    @property
    def is_admin(self):
        return self.user["role"] == "admin"


class Console:
    def __init__(self, store, clock=time.time):
        self._store = store
        self._clock = clock
        self._throttle = auth.Throttle()
        self.templates = environment()
        self.static_dir = STATIC

    def _now_ms(self):
        return int(self._clock() * 1000)

    def render(self, name, **context):
        return self.templates.get_template(name).render(**context)

    # --- accounts ------------------------------------------------------------------------

    def needs_first_user(self):
        return self._store.count_users() == 0

    def first_start_link(self):
        """A one-time token that creates the first admin, while no user exists; else None."""
        if not self.needs_first_user():
            return None
        return self._new_link(None)

    def _new_link(self, user_id):
        token = auth.new_token()
        now = self._now_ms()
        self._store.create_link(auth.token_hash(token), user_id, now, now + LINK_SECONDS * 1000)
        return token

    def link(self, token):
        """{"user": user or None (first admin)} of a usable one-time link, else None."""
        found = self._store.get_link(auth.token_hash(token or ""), self._now_ms())
        if found is None:
            return None
        user = found["user_id"] and self._store.get_user(found["user_id"])
        if found["user_id"] and not user:
            return None
        if not found["user_id"] and not self.needs_first_user():
            return None  # the first-start link stops working once an account exists
        return {"user": user}

    def redeem_link(self, token, email, password):
        """Sets the password of the link's user (creating the first admin for a first-start link),
        uses the link up and signs in: returns a Session."""
        found = self.link(token)
        if found is None:
            raise SignInError("This link has expired or was already used.")
        problem = auth.password_problem(password)
        if problem:
            raise SignInError(problem, "password")
        user = found["user"]
        if user is None:
            email = (email or "").strip()
            problem = auth.email_problem(email)
            if problem:
                raise SignInError(problem, "email")
        if not self._store.use_link(auth.token_hash(token), self._now_ms()):
            raise SignInError("This link has expired or was already used.")
        if user is None:
            user = self._store.create_user(email, "admin", auth.hash_password(password), self._now_ms())
            if user is None:
                raise SignInError("An account with this email exists.", "email")
        else:
            self._store.update_user(user["id"], password_hash=auth.hash_password(password))
            self._store.delete_sessions_of(user["id"])
        return self._open_session(user)

    def create_user(self, email, role="member", password=None):
        """A new account; with no password it gets a one-time link to set one: (user, link token or None)."""
        email = (email or "").strip()
        problem = auth.email_problem(email)
        if problem:
            raise SignInError(problem, "email")
        if role not in ROLES:
            raise SignInError("Role must be admin or member.", "role")
        if password is not None:
            problem = auth.password_problem(password)
            if problem:
                raise SignInError(problem, "password")
        user = self._store.create_user(email, role, password and auth.hash_password(password), self._now_ms())
        if user is None:
            raise SignInError("An account with this email exists.", "email")
        return user, (None if password else self._new_link(user["id"]))

    def reset_link(self, email):
        """A one-time link that sets a new password for `email` (signing its sessions out), or None."""
        user = self._store.get_user_by_email((email or "").strip())
        return user and self._new_link(user["id"])

    def list_users(self):
        return [{k: v for k, v in u.items() if k != "password_hash"} for u in self._store.list_users()]

    def delete_user(self, email_or_id):
        user = (self._store.get_user(email_or_id) if isinstance(email_or_id, int)
                else self._store.get_user_by_email(email_or_id))
        return bool(user) and self._store.delete_user(user["id"])

    def set_role(self, user_id, role):
        if role not in ROLES:
            raise SignInError("Role must be admin or member.", "role")
        self._store.update_user(user_id, role=role)

    # --- sessions --------------------------------------------------------------------------

    def sign_in(self, email, password, ip):
        """A Session, or SignInError (with retry_after when throttled). Throttled by IP and by email."""
        now = self._clock()
        email = (email or "").strip().casefold()
        keys = [f"ip:{ip}", f"email:{email}"]
        wait = max(self._throttle.blocked_for(k, now) for k in keys)
        if wait:
            raise SignInError("Too many failed sign-ins. Try again later.", retry_after=int(wait) + 1)
        user = self._store.get_user_by_email(email)
        # An unknown email costs a scrypt too, so timing does not tell which emails exist.
        ok = auth.check_password(password or "", user["password_hash"] if user else auth.DUMMY_HASH)
        if not (user and ok):
            for k in keys:
                self._throttle.failed(k, now)
            raise SignInError("Wrong email or password.")
        for k in keys:
            self._throttle.succeeded(k)
        return self._open_session(user)

    def _open_session(self, user):
        token, csrf = auth.new_token(), auth.new_token()
        now = self._now_ms()
        self._store.create_session(auth.token_hash(token), user["id"], csrf, now, now + SESSION_SECONDS * 1000)
        return Session(token, csrf, user)

    def session(self, token):
        """The live Session of a cookie value, or None."""
        if not token or len(token) > 100:
            return None
        found = self._store.get_session(auth.token_hash(token), self._now_ms())
        return found and Session(token, found["csrf"], found["user"])

    def sign_out(self, token):
        self._store.delete_session(auth.token_hash(token))

    @staticmethod
    def csrf_ok(session, sent):
        return bool(sent) and auth.same(session.csrf, sent)

    # --- pages -------------------------------------------------------------------------------

    def home(self, project, api_host):
        """What a project's home shows: counts for today and this week, the 30-day chart, snippets."""
        store, now = self._store, self._clock()
        tz = project["timezone"]
        bounds = home.day_starts(now, tz)
        counts = [store.count_events_between(project["id"], a, b) for a, b in zip(bounds, bounds[1:])]
        week = home.week_start(now, tz, project["week_start_day"])
        end = bounds[-1]
        return {
            "today": counts[-1],
            "week": store.count_events_between(project["id"], week, end),
            "active_today": store.count_active_persons(project["id"], bounds[-2], end),
            "active_week": store.count_active_persons(project["id"], week, end),
            "chart": home.chart(bounds, counts, tz),
            "snippets": home.snippets(api_host, project["api_token"]),
            "api_host": api_host,
        }

    def events(self, project_id, *, event=None, distinct_id=None, distinct_ids=None, limit=100):
        """The newest events (properties parsed, for display), with the list API's query."""
        if distinct_id:
            distinct_ids = [distinct_id]
        rows, _ = self._store.list_events(project_id, event=event or None, distinct_ids=distinct_ids, limit=limit)
        for r in rows:
            r["properties"] = orjson.loads(orjson.dumps(r["properties"]))  # the store passes stored JSON through
        return rows

    def event(self, project_id, uuid):
        """One event of the project by uuid, properties parsed; None if there is none."""
        return self._store.get_event(project_id, uuid)


__all__ = [
    "Console", "OPERATORS", "leaf_changes", "ROLES", "SESSION_SECONDS", "Session", "SignInError", "api_error_field", "apply_action",
    "cohort_body", "cohort_form", "cohort_form_from_fields", "flag_body", "flag_form", "flag_form_from_fields",
    "hogql_string", "insight_forms", "insight_views", "value_from_text",
]
