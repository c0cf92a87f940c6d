"""A PostHog-compatible destination over HTTP: its private API and `/batch/`, with retries.

Used by `python app.py migrate posthog` and by forwarding (with max_attempts=1: the forwarder
keeps its own backoff, docs/lifecycle.md "Forwarding"). Retries network errors, 408, 429 and 5xx,
waiting max(backoff, Retry-After) capped at 30 s, as PostHog's own importer and posthog-python do
(docs/lifecycle.md "Migrate: retries"); any other 4xx is an error at once. `sleep` is injected.
"""

import gzip
import time
import urllib.error
import urllib.parse
import urllib.request

import orjson

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
MAX_WAIT = 30.0


class DestinationError(Exception):
    def __init__(self, message, status=None, retry_after=None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds the destination asked us to wait (Retry-After), or None


class Destination:
    def __init__(self, host, project_api_key, personal_api_key, *, sleep=time.sleep, timeout=60, max_attempts=10,
                 user_agent="phlite-migrate"):
        self.host = host.rstrip("/")
        self.project_api_key = project_api_key
        self.personal_api_key = personal_api_key
        self.sleep = sleep
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.user_agent = user_agent
        self.retries = 0  # requests retried (429s included), for the summary
        self.throttled = 0  # 429 answers seen

    # --- transport ---

    def request(self, method, path, body=None, *, auth=True, compress=False, ok_statuses=(200, 201)):
        """(status, parsed JSON body or None). Retries what can be retried; raises DestinationError
        for any other answer outside ok_statuses."""
        url = path if path.startswith("http") else self.host + path
        data = None
        headers = {"User-Agent": self.user_agent}
        if body is not None:
            data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
            headers["Content-Type"] = "application/json"
            if compress:
                data = gzip.compress(data, compresslevel=6)
                headers["Content-Encoding"] = "gzip"
        if auth:
            headers["Authorization"] = f"Bearer {self.personal_api_key}"
        backoff = 1.0
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                req = urllib.request.Request(url, data=data, method=method, headers=headers)
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    status, raw = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, raw = e.code, e.read()
                retry_after = _seconds(e.headers.get("Retry-After"))
            except (urllib.error.URLError, OSError) as e:
                status, raw = None, str(e).encode()
            if status in ok_statuses:
                return status, _json(raw)
            if status is not None and status not in RETRY_STATUSES:
                raise DestinationError(f"{method} {url}: HTTP {status}: {raw[:500].decode(errors='replace')}", status)
            if attempt == self.max_attempts:
                last = f"HTTP {status}" if status else raw[:200].decode(errors='replace')
                raise DestinationError(f"{method} {url}: {last}" if attempt == 1 else
                                       f"{method} {url}: gave up after {attempt} attempts (last: {last})",
                                       status, retry_after)
            if status == 429:
                self.throttled += 1
            self.retries += 1
            self.sleep(min(MAX_WAIT, max(backoff, retry_after or 0)))
            backoff = min(MAX_WAIT, backoff * 2)
        raise AssertionError("unreachable")

    # --- the API ---

    def pages(self, path):
        """Every result of a paginated list, following `next`."""
        url = path
        while url:
            _, body = self.request("GET", url)
            yield from body.get("results", [])
            url = body.get("next")

    def project_id(self):
        """The destination project whose project API key we were given (the personal key must reach it)."""
        for project in self.pages("/api/projects/"):
            if project.get("api_token") == self.project_api_key:
                return project["id"]
        raise DestinationError("the personal API key reaches no project with this project API key")

    def send_batch(self, events, historical=True):
        """POST events to /batch/ (gzip). historical_migration marks them as history (PostHog's lane)."""
        body = {"api_key": self.project_api_key, "batch": events}
        if historical:
            body["historical_migration"] = True
        self.request("POST", "/batch/", body, auth=False, compress=True)

    def query(self, project_id, hogql):
        """Rows of a HogQL query, or None when the destination has no /query/ API."""
        try:
            _, body = self.request("POST", f"/api/projects/{project_id}/query/",
                                   {"query": {"kind": "HogQLQuery", "query": hogql}})
        except DestinationError as e:
            if e.status in (404, 405, 400, 501, 403):
                return None
            raise
        return body.get("results") if isinstance(body, dict) else None


def _seconds(value):
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def _json(raw):
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
