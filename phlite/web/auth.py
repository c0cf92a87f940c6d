"""Who a request is: personal API keys (Bearer, query string or JSON body), the projects a key may use,
and the cheap key check the decoders run before parsing (docs/protocol.md "Private API authentication")."""

import io
import logging
import re

import bottle

from phlite import errors
from phlite.codec import parse_int64
from phlite.store import DatabaseError
from phlite.web.common import query, read_body

log = logging.getLogger(__name__)


def bearer_key():
    """The key of an `Authorization: Bearer` header; None without the header; 401 for another scheme."""
    auth = bottle.request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if auth.strip():
        raise errors.Unauthorized(
            "Authorization header must be 'Bearer <personal API key>' (for example 'Bearer phx_...').",
            code="authentication_failed")
    return None


_KEY_BODY_LIMIT = 2 * 1024 * 1024
# The key as a JSON body carries it. Found by a byte scan: before authentication a body is not parsed (a 2 MiB
# body of `{},` parsed into +63 MB; docs/reliability.md "Memory bombs").
_BODY_KEY = re.compile(rb'"personal_api_key"[ \t\r\n]*:[ \t\r\n]*"([^"\\]{1,256})"')
_MOST_BODY_KEYS = 4


def _keys_from_body():
    # PostHog also reads `personal_api_key` from a JSON body. The body is put back for the handler.
    env = bottle.request.environ
    if bottle.request.method not in ("POST", "PATCH", "PUT") or "json" not in env.get("CONTENT_TYPE", ""):
        return []
    raw = read_body(_KEY_BODY_LIMIT)
    env["wsgi.input"] = io.BytesIO(raw)
    env["CONTENT_LENGTH"] = str(len(raw))
    keys = []
    for m in _BODY_KEY.finditer(raw):
        key = m.group(1).decode("utf-8", "replace").strip()
        if key and key not in keys:
            keys.append(key)
            if len(keys) == _MOST_BODY_KEYS:
                break
    return keys


def personal_key(store):
    """The verified personal key record of this request, or 401 JSON.

    The key comes, as in PostHog, from `Authorization: Bearer`, else `?personal_api_key=`, else the JSON body's
    `personal_api_key` (docs/protocol.md "Private API authentication").
    """
    key = bearer_key() or (query().get("personal_api_key") or "").strip()
    if key:
        record = store.verify_personal_key(key)
    else:
        # A body may hold the field more than once (nested in a payload, say): the first that verifies.
        record = None
        for key in _keys_from_body():
            record = store.verify_personal_key(key)
            if record is not None:
                break
    if not key:
        raise errors.Unauthorized("Authentication credentials were not provided.", code="not_authenticated")
    if record is None:
        raise errors.invalid_personal_key()
    return record


def key_checker(store):
    """`known(key) -> bool` for the decoders' key check before parsing (docs/reliability.md "Memory bombs"):
    a project token or a valid personal key. A store that cannot answer says yes: the request then takes
    the ordinary path, whose answer the store's state decides."""

    def known(key):
        try:
            if key.startswith("phx_"):
                return store.verify_personal_key(key) is not None
            return store.project_for_token(key) is not None
        except DatabaseError:
            log.warning("key lookup failed", exc_info=True)
            return True

    return known


def key_project_ids(store, record):
    ids = [p["id"] for p in store.list_projects()]
    allowed = record["project_ids"]
    return ids if allowed is None else [i for i in ids if i in allowed]


def project_for_key(store, record, project_ref):
    """Resolve `<id>` or `@current` in a private API path to a project id the key may use."""
    allowed = key_project_ids(store, record)
    if project_ref == "@current":
        if not allowed:
            raise errors.Forbidden("This personal API key has no project.", code="permission_denied")
        return allowed[0]
    try:
        pid = parse_int64(project_ref)
    except ValueError:
        raise errors.NotFound("Project not found.")
    if pid not in allowed:
        if store.get_project(pid) is None:
            raise errors.NotFound("Project not found.")
        raise errors.Forbidden("This personal API key cannot access this project.", code="permission_denied")
    return pid
