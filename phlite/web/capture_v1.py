"""Capture v1: `POST /i/v1/analytics/events`, and posthog-node's OTLP logs on `POST /i/v1/logs` (posthog-python, posthog-node and posthog-go behind their v1
switch). Decode, authenticate with the Bearer project key, spool, answer per event
(docs/protocol.md "Capture v1")."""

import bottle

from phlite import ingest
from phlite.web.capture import resolve_project
from phlite.web.auth import key_checker
from phlite.web.common import client_ip, header, is_preflight, preflight, query, read_body, route

V1_PATH = "/i/v1/analytics/events"
LOGS_PATH = "/i/v1/logs"


def register(web, app):
    config, store, ingestion = app.config, app.store, app.ingestion
    known_key = key_checker(store)

    def capture_v1():
        if bottle.request.method == "OPTIONS":
            return preflight() if is_preflight() else {}
        # As on the other capture routes: the size first (413), then the queue (503), then decoding.
        body = read_body(config.max_batch_body_bytes)
        ingestion.refuse_if_full(len(body))
        payload, results = ingest.decode_v1(
            body,
            authorization=header("Authorization", ""),
            content_encoding=header("Content-Encoding", ""),
            sdk_info=header("PostHog-Sdk-Info", ""),
            max_decompressed=config.max_decompressed_bytes,
            max_values=config.max_json_values,
            known_key=known_key,
        )
        project_id = resolve_project(store, payload.token, query().get("project_id"))
        if app.limiter is not None and payload.events:
            app.limiter.check(project_id, len(payload.events))
        if payload.events:
            ingestion.submit(project_id, payload, ip=client_ip(config))
        return {"results": results}

    def capture_logs():
        if bottle.request.method == "OPTIONS":
            return preflight() if is_preflight() else {}
        body = read_body(config.max_batch_body_bytes)
        ingestion.refuse_if_full(len(body))
        q = query()
        auth = header("Authorization", "")
        token = q.get("token") or q.get("api_key") or (auth[7:] if auth[:7].lower() == "bearer " else "")
        payload = ingest.decode_logs(body, token=token, content_encoding=header("Content-Encoding", ""),
                                     max_decompressed=config.max_decompressed_bytes,
                                     max_values=config.max_json_values, known_key=known_key)
        project_id = resolve_project(store, payload.token, q.get("project_id"))
        if app.limiter is not None and payload.events:
            app.limiter.check(project_id, len(payload.events))
        if payload.events:
            ingestion.submit(project_id, payload, ip=client_ip(config))
        return {"partialSuccess": {}}  # OTLP/HTTP's success answer

    route(web, [V1_PATH], ["POST", "OPTIONS"], capture_v1, public=True)
    route(web, [LOGS_PATH], ["POST", "OPTIONS"], capture_logs, public=True)
