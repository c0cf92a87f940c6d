"""Browser and SDK reports that are not PostHog events on the wire, turned into events: CSP violation
reports (docs/protocol.md "CSP violation reports") and OTLP JSON logs from posthog-node's `captureLog`
(docs/protocol.md "Logs"). Pure: no framework, no clock, no I/O.
"""

import uuid
from collections.abc import Mapping

CSP_MIMES = frozenset({"application/csp-report", "application/reports+json"})
LOG_EVENT = "$log"


# --- CSP ---------------------------------------------------------------------------------------------------


def _report_uri(data: dict) -> dict:
    r = data.get("csp-report")
    r = r if isinstance(r, dict) else {}
    return {
        "report_type": "csp-violation", "document_url": r.get("document-uri"), "referrer": r.get("referrer"),
        "violated_directive": r.get("violated-directive"), "effective_directive": r.get("effective-directive"),
        "original_policy": r.get("original-policy"), "disposition": r.get("disposition"),
        "blocked_url": r.get("blocked-uri"), "line_number": r.get("line-number"),
        "column_number": r.get("column-number"), "source_file": r.get("source-file"),
        "status_code": r.get("status-code"), "script_sample": r.get("script-sample"), "raw_report": data,
    }


def _report_to(data: dict) -> dict:
    b = data.get("body")
    b = b if isinstance(b, dict) else {}
    return {
        "report_type": data.get("type"), "document_url": b.get("documentURL") or b.get("document-uri") or data.get("url"),
        "referrer": b.get("referrer"), "violated_directive": b.get("effectiveDirective") or b.get("violated-directive"),
        "effective_directive": b.get("effectiveDirective"), "original_policy": b.get("originalPolicy"),
        "disposition": b.get("disposition"), "blocked_url": b.get("blockedURL") or b.get("blocked-uri"),
        "line_number": b.get("lineNumber"), "column_number": b.get("columnNumber"),
        "source_file": b.get("sourceFile"), "status_code": b.get("statusCode"), "script_sample": b.get("sample"),
        "user_agent": data.get("user_agent") or b.get("user-agent"), "raw_report": data,
    }


def _is_violation(data) -> bool:
    return isinstance(data, dict) and data.get("type") == "csp-violation"


def csp_events(obj, query: Mapping[str, str]) -> list[dict]:
    """The `$csp_violation` events of one report body (either format), as PostHog's capture builds them.

    `distinct_id`, `session_id` and `v` come from the report URL's query (the policy's `report-uri`);
    without a distinct id each report gets a random one, and the events never touch persons.
    """
    if isinstance(obj, dict) and "csp-report" in obj:
        reports = [_report_uri(obj)]
    elif isinstance(obj, list):
        reports = [_report_to(item) for item in obj if _is_violation(item)]
    elif _is_violation(obj):
        reports = [_report_to(obj)]
    else:
        reports = []
    distinct_id = query.get("distinct_id") or str(uuid.uuid4())
    session_id = query.get("session_id") or str(uuid.uuid4())
    events = []
    for report in reports:
        props = {f"$csp_{k}": v for k, v in report.items()}
        events.append({"event": "$csp_violation", "distinct_id": distinct_id, "properties": {
            "$session_id": session_id, "$csp_version": query.get("v") or "unknown",
            "$current_url": props["$csp_document_url"], "$process_person_profile": False, **props}})
    return events


# --- OTLP logs ---------------------------------------------------------------------------------------------


def _any_value(v):
    """An OTLP AnyValue (`{"stringValue": ...}`, `{"arrayValue": {"values": [...]}}`...) -> plain JSON."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    if "doubleValue" in v:
        return v["doubleValue"]
    if "arrayValue" in v:
        values = (v["arrayValue"] or {}).get("values") if isinstance(v["arrayValue"], dict) else None
        return [_any_value(x) for x in values or []]
    if "kvlistValue" in v:
        values = (v["kvlistValue"] or {}).get("values") if isinstance(v["kvlistValue"], dict) else None
        return _key_values(values)
    return None


def _key_values(items) -> dict:
    out = {}
    for kv in items if isinstance(items, list) else []:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _any_value(kv.get("value"))
    return out


def _nanos_to_ms(value) -> int | None:
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        return None
    return nanos // 1_000_000 if nanos > 0 else None


def log_events(obj) -> list[dict]:
    """OTLP JSON `{"resourceLogs": [{"resource", "scopeLogs": [{"scope", "logRecords": [...]}]}]}` ->
    one `$log` event per record. The distinct id is the record's `posthogDistinctId` attribute, else the
    resource's `service.name`; the events never touch persons."""
    events = []
    resource_logs = obj.get("resourceLogs") if isinstance(obj, dict) else None
    for rl in resource_logs if isinstance(resource_logs, list) else []:
        if not isinstance(rl, dict):
            continue
        resource = _key_values((rl.get("resource") or {}).get("attributes") if isinstance(rl.get("resource"), dict) else None)
        for sl in rl.get("scopeLogs") or []:
            if not isinstance(sl, dict):
                continue
            scope = sl.get("scope") if isinstance(sl.get("scope"), dict) else {}
            for rec in sl.get("logRecords") or []:
                if not isinstance(rec, dict):
                    continue
                attrs = _key_values(rec.get("attributes"))
                distinct_id = attrs.get("posthogDistinctId") or resource.get("service.name") or "$logs"
                props = {
                    "$log_body": _any_value(rec.get("body")), "$log_severity_text": rec.get("severityText"),
                    "$log_severity_number": rec.get("severityNumber"), "$log_attributes": attrs,
                    "$log_resource": resource, "$log_scope": scope.get("name"),
                    "$process_person_profile": False,
                }
                for key, prop in (("traceId", "$log_trace_id"), ("spanId", "$log_span_id")):
                    if rec.get(key):
                        props[prop] = rec[key]
                if isinstance(attrs.get("sessionId"), str):
                    props["$session_id"] = attrs["sessionId"]
                event = {"event": LOG_EVENT, "distinct_id": str(distinct_id), "properties": props}
                ms = _nanos_to_ms(rec.get("timeUnixNano")) or _nanos_to_ms(rec.get("observedTimeUnixNano"))
                if ms is not None:
                    event["timestamp"] = ms  # normalize reads numbers above 1e11 as epoch ms
                events.append(event)
    return events
