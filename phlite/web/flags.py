"""The SDK-facing flag endpoints: /flags and /decide (evaluation), /flags/definitions and
/api/feature_flag/local_evaluation (definitions for local evaluation, with ETag and 304), and
remote config payloads. Decoding and response shapes are phlite.flags' wire names, evaluation
and definitions its FlagService.
"""

import base64
import binascii
import logging
import random
import uuid

import bottle

from phlite import errors
from phlite import flags
from phlite.store import DatabaseError
from phlite.web.auth import key_checker, key_project_ids, personal_key, project_for_key
from phlite.web.common import HEADERS, JSON, dumps, header, is_preflight, preflight, query, read_body, route

log = logging.getLogger(__name__)

# A random (version 4) UUID from random.getrandbits: a third of uuid4()'s cost, and a request id
# needs no cryptographic randomness. _UUID4_CLEAR/_UUID4_SET write the version and variant bits.
_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


def _new_request_id():
    h = "%032x" % (random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _request_id():
    """X-Request-Id when it is a UUID (so logs line up with a proxy's), else a new one."""
    raw = header("X-Request-Id")
    if raw:
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            pass
    return _new_request_id()


def _basic_user():
    auth = bottle.request.headers.get("Authorization", "")
    if auth[:6].lower() != "basic ":
        return None
    try:
        return base64.b64decode(auth[6:].strip()).decode("utf-8").split(":", 1)[0] or None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _etag_matches(header, etag):
    if not header:
        return False
    bare = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False


def register(web, app):
    store, config, service = app.store, app.config, app.flags
    known_key = key_checker(store)

    def evaluate(project_id, req, runtime, q):
        survey_only = flags.bool_param(q.get("only_evaluate_survey_feature_flags")) is True
        overrides_only = flags.bool_param(q.get("only_use_override_person_properties")) is True
        return service.evaluate(project_id, req, runtime=runtime, survey_only=survey_only,
                               stored_person=not overrides_only)

    def project_of(token):
        if not token:
            raise flags.missing_token()
        project_id = store.project_for_token(token)
        if project_id is None:
            raise flags.invalid_token()
        return project_id

    def flags_request(endpoint):
        method = bottle.request.method
        if method == "OPTIONS":
            return preflight() if is_preflight() else {"status": 1}
        if method == "HEAD":
            return bottle.HTTPResponse(b"", 200, {"Content-Type": JSON})
        q = query()
        request_id = _request_id()
        now_ms = int(app.clock() * 1000)
        if method == "GET":
            if endpoint == "flags" and "context" in q:
                return mixpanel_flags(q)
            return flags.minimal_response(q, request_id, now_ms)
        body = read_body(config.max_body_bytes)
        obj = flags.decode_flags_body(
            body,
            content_type=header("Content-Type", ""),
            content_encoding=header("Content-Encoding", ""),
            compression=q.get("compression"),
            cap=config.max_decompressed_bytes,
            max_values=config.max_json_values,
            known_key=known_key,
            outside_key=q.get("token") or q.get("api_key"),
        )
        fr = flags.parse_flags_request(obj)
        shape, with_config = flags.response_format(endpoint, q)
        token = fr.token or q.get("token") or q.get("api_key")
        try:
            project_id = project_of(token)
        except DatabaseError:
            log.warning("token lookup failed", exc_info=True)
            fallback = flags.CONFIG if with_config else None
            return flags.shape_response(shape, {}, True, request_id, now_ms, fallback)
        if fr.distinct_id is None and not fr.disable_flags:
            raise flags.missing_distinct_id()
        runtime = flags.request_runtime(fr.evaluation_runtime, HEADERS)
        outcome = evaluate(project_id, fr, runtime, q)
        config_body = config_for(project_id, token) if with_config else None
        return flags.shape_response(shape, outcome.results, outcome.errors, request_id, now_ms, config_body,
                                    memo=outcome.memo)

    def config_for(project_id, token):
        """The project's remote config (what /array/<token>/config answers), for decide and config=true."""
        return service.project_config(project_id, token)

    def mixpanel_flags(q):
        fr = flags.parse_mixpanel_request(q, _basic_user())
        project_id = project_of(fr.token)
        if fr.distinct_id is None:
            raise flags.missing_distinct_id()
        runtime = flags.request_runtime(None, HEADERS)
        return flags.mixpanel_response(evaluate(project_id, fr, runtime, q).results)

    def definitions_for(project_id):
        try:
            body, etag = service.definitions(project_id)
        except DatabaseError:
            log.warning("flag definitions of project %s could not be read", project_id, exc_info=True)
            raise errors.Unavailable("Flag definitions cannot be read right now.")
        headers = {"ETag": etag, "Cache-Control": "private, must-revalidate"}
        if _etag_matches(bottle.request.headers.get("If-None-Match"), etag):
            return bottle.HTTPResponse(b"", 304, headers)
        return bottle.HTTPResponse(body, 200, {"Content-Type": JSON, **headers})

    def token_project(record, token):
        """The project a definitions request's `token` names, if the personal key may read it."""
        if not token:
            ids = key_project_ids(store, record)
            if not ids:
                raise errors.invalid_project()
            return ids[0]
        project_id = store.project_for_token(token)
        if project_id is None:
            raise errors.invalid_project_key()
        if project_id not in key_project_ids(store, record):
            raise errors.Forbidden("This personal API key cannot access this project.", code="permission_denied")
        return project_id

    def definitions():
        record = personal_key(store)
        return definitions_for(token_project(record, query().get("token")))

    def project_definitions(project):
        record = personal_key(store)
        token = query().get("token")
        project_id = token_project(record, token) if token else project_for_key(store, record, project)
        return definitions_for(project_id)

    def remote_config(project, flag):
        record = personal_key(store)
        token = query().get("token")
        project_id = token_project(record, token) if token else project_for_key(store, record, project)
        payload = service.remote_config_payload(project_id, flag)
        if payload is None:
            return bottle.HTTPResponse(b"", 200, {"Content-Type": JSON})
        # PostHog answers the stored JSON text as a JSON string; SDKs parse it once more.
        return bottle.HTTPResponse(dumps(payload), 200, {"Content-Type": JSON})

    methods = ["GET", "POST", "HEAD", "OPTIONS"]
    route(web, "/flags", methods, lambda: flags_request("flags"), public=True)
    route(web, "/decide", methods, lambda: flags_request("decide"), public=True)
    route(web, "/flags/definitions", ["GET"], definitions)
    route(web, "/api/feature_flag/local_evaluation", ["GET"], definitions)
    route(web, "/api/projects/<project>/feature_flags/local_evaluation", ["GET"], project_definitions)
    route(web, "/api/projects/<project>/feature_flags/<flag>/remote_config", ["GET"], remote_config)
