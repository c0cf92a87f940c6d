"""Capture endpoints: PostHog's /capture, /batch, /e, /i/v0/e and the Mixpanel-style
/track, /engage, /groups, /import. Decode, authenticate, spool, answer 200 at once.

Per-event validation happens later in the writer (phlite's contract), so a request is
refused only when it cannot be decoded or has no valid project key.
"""

import bottle

from phlite import errors, ingest
from phlite.codec import parse_int64
from phlite.web.auth import key_checker
from phlite.web.common import body_limit, client_ip, header, is_preflight, preflight, query, read_body, route

POSTHOG_PATHS = ["/capture", "/batch", "/e", "/i/v0/e", "/s", "/i/v0/ai/batch", "/report"]
MIXPANEL_PATHS = ["/track", "/engage", "/groups", "/import"]
OK = {"status": 1}


def resolve_project(store, token, project_id):
    """The project id a capture request writes to, or the contract's exact error."""
    if not token:
        raise errors.invalid_project_key()
    if token.startswith("phx_"):
        record = store.verify_personal_key(token)
        if record is None:
            raise errors.invalid_personal_key()
        try:
            pid = parse_int64(project_id)
        except (TypeError, ValueError):
            raise errors.invalid_project()
        allowed = record["project_ids"]
        if store.get_project(pid) is None or (allowed is not None and pid not in allowed):
            raise errors.invalid_project()
        return pid
    pid = store.project_for_token(token)
    if pid is None:
        raise errors.invalid_project_key()
    return pid


def register(web, app):
    config, store, ingestion = app.config, app.store, app.ingestion
    known_key = key_checker(store)

    def ingest_request(method):
        req = bottle.request
        path = req.path
        post = method == "POST"
        # The size check comes first: an oversized body must get its 413 even when the queue is full,
        # or a client would retry it forever on the 503.
        body = read_body(body_limit(path, config)) if post else b""
        ingestion.refuse_if_full(len(body))
        q = query()
        payload = ingest.decode_request(
            path, body,
            content_type=header("Content-Type", ""),
            content_encoding=header("Content-Encoding", ""),
            query=q,
            max_decompressed=config.max_decompressed_bytes,
            max_values=config.max_json_values,
            max_events=config.max_request_events,
            known_key=known_key,
        )
        project_id = resolve_project(store, payload.token, payload.project_id)
        if app.limiter is not None and payload.events:
            app.limiter.check(project_id, len(payload.events))
        if payload.events:
            ingestion.submit(project_id, payload, ip=client_ip(config))
        return payload

    def posthog_capture():
        method = bottle.request.method
        if method == "OPTIONS":
            return preflight() if is_preflight() else OK
        ingest_request(method)
        return OK

    def mixpanel_capture():
        method = bottle.request.method
        if method == "OPTIONS":
            return preflight() if is_preflight() else OK
        # Errors stay JSON even without verbose: any body but `1` is a failure to
        # mixpanel-node, and the status code tells the rest.
        payload = ingest_request(method)
        if payload.verbose or query().get("verbose") == "1":
            return {"status": 1, "error": None}
        bottle.response.content_type = "text/plain"
        return "1"

    route(web, POSTHOG_PATHS, ["GET", "POST", "OPTIONS"], posthog_capture, public=True)
    route(web, MIXPANEL_PATHS, ["GET", "POST", "OPTIONS"], mixpanel_capture, public=True)
