"""A capture request's metadata, read beside its events: the project key (docs/protocol.md "Capture: project
key"), the send time and the project id. Split from wire.py, which decodes the bytes. Pure: no framework,
no clock, no I/O.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from phlite import errors

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_MIN_QUERY_SENT_AT_MS = 1_609_459_200_000  # 2021-01-01: older send times are not believed (docs/protocol.md "Capture: query parameters")
_MAX_QUERY_SECONDS = 99_999_999_999  # 10-11 digits: `_` in seconds; longer values are milliseconds


def clean_token(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def batch_token(batch: dict) -> str | None:
    if not batch:  # an array or a single event: no batch object
        return None
    return clean_token(batch.get("api_key")) or clean_token(batch.get("token"))


def event_token(event: dict) -> str | None:
    for key in ("token", "$token", "api_key"):
        token = clean_token(event.get(key))
        if token:
            return token
    props = event.get("properties")
    return clean_token(props.get("token")) if isinstance(props, dict) else None


def events_token(events: list[dict]) -> str | None:
    if len(events) == 1:  # the browser SDKs' usual request: one key cannot conflict
        return event_token(events[0])
    tokens = {t for t in map(event_token, events) if t}
    if len(tokens) > 1:
        raise errors.invalid_project_key()
    return tokens.pop() if tokens else None


def first_text(form: Mapping, query: Mapping) -> str | None:
    # Mixpanel's /import sends api_key in the form body (python) or the query (node).
    for source, key in ((form, "api_key"), (form, "token"), (query, "api_key"), (query, "token")):
        token = clean_token(source.get(key))
        if token:
            return token
    return None


def batch_sent_at(batch: dict) -> datetime | None:
    return parse_sent_at(batch.get("sent_at"))


def parse_sent_at(value) -> datetime | None:
    """An ISO 8601 send time (a batch's `sent_at`, capture v1's `created_at`) as aware UTC, or None."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
        if when.tzinfo is None:
            when = when.replace(tzinfo=_UTC)
        return when.astimezone(_UTC)
    except (ValueError, OverflowError):
        return None


def query_sent_at(query: Mapping) -> datetime | None:
    """`_` or `sent_at` of the query or the form: epoch milliseconds, or seconds (10-11 digits)."""
    value = query.get("_") or query.get("sent_at")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    try:
        ms = int(value)  # PostHog 400s a non-integer; phlite just ignores it
    except (TypeError, ValueError):
        return None
    if 0 < ms <= _MAX_QUERY_SECONDS:
        ms *= 1000
    if ms < _MIN_QUERY_SENT_AT_MS:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return None


def project_id(batch: dict, query: Mapping[str, str]) -> str | None:
    value = batch.get("project_id")
    if value is None or isinstance(value, bool):
        value = query.get("project_id")
    if isinstance(value, (int, str)) and str(value).strip():
        return str(value).strip()
    return None
