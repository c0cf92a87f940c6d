"""What every route shares: JSON in and out, the error plugin, CORS, body limits (auth: web/auth.py).

Routes are registered with `route(app, paths, methods, public=...)`. Public routes
(the SDK endpoints) get permissive CORS with credentials, as PostHog's capture does;
private API routes get no CORS headers at all.
"""

import logging
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, urlencode

import bottle
import orjson

from phlite import errors
from phlite.codec import parse_int64
from phlite.store import OperationalError

log = logging.getLogger(__name__)

JSON = "application/json"


def dumps(value):
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def json_response(value, status=200, headers=None):
    return bottle.HTTPResponse(dumps(value), status, {"Content-Type": JSON, **(headers or {})})


def error_response(err):
    resp = json_response(err.body(), err.status, err.headers)
    return resp


def header(name, default=None):
    """Request header `name` as bottle.request.headers.get gives it, without its per-call overhead."""
    key = _ENV_KEYS.get(name)
    if key is None:
        key = name.replace("-", "_").upper()
        key = _ENV_KEYS.setdefault(name, key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key)
    value = bottle.request.environ.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        # bottle's decoding (WSGI's latin-1 -> UTF-8); an ASCII value is already right.
        return value if value.isascii() else value.encode("latin1").decode("utf8")
    return value.decode("utf8")


_ENV_KEYS: dict = {}  # header name -> environ key (names are constants of the code)


class Headers:
    """A `.get` view of the request headers (what request_runtime reads), backed by header()."""

    __slots__ = ()

    def get(self, name, default=None):
        return header(name, default)

    def __contains__(self, name):
        return header(name) is not None


HEADERS = Headers()


def _cors_headers(resp, public):
    if not public:
        return
    origin = header("Origin")
    if not origin:
        return
    resp.set_header("Access-Control-Allow-Origin", origin)
    resp.set_header("Access-Control-Allow-Credentials", "true")
    resp.set_header("Vary", "Origin")


class _JsonPlugin:
    """Errors as JSON, dict/list answers serialised, CORS on public routes.

    A bottle plugin with apply(): whether the route is public is read once per route, not per request.
    """

    name = "phlite_json"
    api = 2

    def __init__(self, monitor=None):
        self.monitor = monitor

    def apply(self, callback, route):
        public = bool(route.config.get("public"))
        # With a monitor, one RouteStats per route, found here once; per request: two clock reads and a few
        # increments (docs/operations.md "Metrics" has what they cost /capture and /flags).
        record = None if self.monitor is None else self.monitor.route(route.method, route.rule.rstrip("/") or "/").record
        clock = time.perf_counter

        def wrapper(*args, **kwargs):
            start = clock()
            try:
                rv = callback(*args, **kwargs)
            except errors.PhliteError as e:
                rv = error_response(e)
            except bottle.HTTPResponse as r:
                rv = r
            except OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    log.exception("error while serving %s %s", bottle.request.method, bottle.request.path)
                    rv = error_response(errors.PhliteError("Internal server error.", code="server_error"))
                else:
                    # SQLite's lock wait ran out (a long writer transaction): nothing was changed, and
                    # the client may retry (the transaction rolled back).
                    log.warning("database locked while serving %s %s", bottle.request.method, bottle.request.path)
                    rv = error_response(errors.Unavailable("The database is busy; retry shortly.", retry_after=2))
            except Exception:
                log.exception("error while serving %s %s", bottle.request.method, bottle.request.path)
                rv = error_response(errors.PhliteError("Internal server error.", code="server_error"))
            if isinstance(rv, (dict, list)):
                bottle.response.content_type = JSON
                rv = dumps(rv)
            answer = rv if isinstance(rv, bottle.HTTPResponse) else bottle.response
            if public:
                _cors_headers(answer, True)
            if record is not None:
                record(clock() - start, answer.status_code)
            return rv

        return wrapper


def _bottle_error(status, type_, code, detail):
    def handler(err):
        bottle.response.content_type = JSON
        bottle.response.status = status
        if status == 405 and err.headers and "Allow" in err.headers:
            bottle.response.set_header("Allow", err.headers["Allow"])
        # No route matched, so no route says whether it is public: a browser may read
        # these bodies (they hold no data) unless the path is under the private API.
        _cors_headers(bottle.response, not bottle.request.path.startswith("/api/projects"))
        return dumps(errors.error_body(type_, code, detail))

    return handler


def _utf8_headers():
    # bottle decodes header values as UTF-8 and raises on other bytes (a 500 from any
    # handler that reads the header); make such bytes U+FFFD instead, as for bodies.
    env = bottle.request.environ
    # Nearly every request is pure ASCII: one cheap pass over the values decides that.
    for v in env.values():
        if isinstance(v, str) and not v.isascii():
            break
    else:
        return
    for k, v in list(env.items()):
        if (k.startswith("HTTP_") or k == "CONTENT_TYPE") and isinstance(v, str) and not v.isascii():
            try:
                v.encode("latin1").decode("utf8")
            except UnicodeError:
                env[k] = v.encode("latin1", "replace").decode("utf8", "replace").encode("utf8").decode("latin1")


def _row_id(text):
    # bottle's `:int` path filter, kept, except that a number SQLite cannot hold (>= 2^63) names no
    # row: it reads as -1, an id no row has, so the route answers its usual 404 instead of a 500.
    try:
        return parse_int64(text)
    except ValueError:
        return -1


def install(web, trust_proxy=False, monitor=None):
    """Set up `web` for phlite; with a `monitor`, every routed request is counted and timed."""
    web.config["phlite.trust_proxy"] = trust_proxy
    web.router.add_filter("int", lambda conf: (r"-?\d+", _row_id, lambda x: str(int(x))))
    web.add_hook("before_request", _utf8_headers)
    web.install(_JsonPlugin(monitor))
    # bottle's own error pages are HTML; phlite answers JSON on every path.
    web.error(400)(_bottle_error(400, "validation_error", "invalid_input", "Bad request."))
    web.error(404)(_bottle_error(404, "invalid_request", "not_found", "Not found."))
    web.error(405)(_bottle_error(405, "invalid_request", "method_not_allowed", "Method not allowed."))
    web.error(413)(_bottle_error(413, "validation_error", "payload_too_large", "Request body too large."))
    web.error(500)(_bottle_error(500, "server_error", "error", "Internal server error."))
    # bottle.static_file's own answers (`/static`): a Range it cannot serve, a file it may not read.
    web.error(416)(_bottle_error(416, "validation_error", "range_not_satisfiable", "Requested range not satisfiable."))
    web.error(403)(_bottle_error(403, "authentication_error", "permission_denied", "Permission denied."))


def route(web, paths, methods, callback, public=False, slash=True):
    """Register callback on each path, with and without the trailing slash."""
    if isinstance(paths, str):
        paths = [paths]
    for path in paths:
        variants = {path.rstrip("/") or "/", path.rstrip("/") + "/"} if slash else {path}
        for p in sorted(variants):
            web.route(p, methods, callback, public=public)
            if public and "OPTIONS" not in methods:
                web.route(p, "OPTIONS", preflight, public=True)


def preflight(*args, **kwargs):
    """CORS preflight: allow the method and mirror the requested headers."""
    resp = bottle.HTTPResponse(b"", 200)
    req = bottle.request.headers.get("Access-Control-Request-Headers")
    resp.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
    if req:
        resp.set_header("Access-Control-Allow-Headers", req)
    resp.set_header("Access-Control-Max-Age", "86400")
    return resp


def is_preflight():
    return bottle.request.method == "OPTIONS" and "Access-Control-Request-Method" in bottle.request.headers


# --- request helpers -------------------------------------------------------------


def query():
    """The query string as {name: last value}, decoded as UTF-8 (bottle's is latin-1)."""
    qs = bottle.request.environ.get("QUERY_STRING", "")
    if "%" in qs or "+" in qs:
        return dict(parse_qsl(qs, keep_blank_values=True))
    # Nothing to unquote (the SDKs' "v=2", "compression=gzip-js&ip=1&_=...&ver=..."): the same
    # result as parse_qsl at a third of its cost, on every capture and flags request.
    out = {}
    for part in qs.split("&"):
        if part:
            name, _, value = part.partition("=")
            out[name] = value
    return out


JSON_BODY_LIMIT = 2 * 1024 * 1024  # private-API JSON bodies (flag, cohort definitions)
BATCH_PATHS = ("/batch", "/i/v0/ai")


def body_limit(path, config):
    """The largest body a request to `path` may send. The HTTP server applies it to Content-Length before
    reading the body (phlite/httpserver.py); read_body applies it again to what arrives."""
    if path.startswith(BATCH_PATHS):
        return config.max_batch_body_bytes
    if path.startswith("/api/"):
        return JSON_BODY_LIMIT
    return config.max_body_bytes


def max_body_limit(config):
    return max(config.max_batch_body_bytes, config.max_body_bytes, JSON_BODY_LIMIT)


def read_body(limit):
    """The raw request body, refused with 413 JSON past `limit` bytes without reading it all."""
    env = bottle.request.environ
    length = env.get("CONTENT_LENGTH") or ""
    stream = env["wsgi.input"]
    if length.strip():
        try:
            n = int(length)
        except ValueError:
            raise errors.BadRequest("Invalid Content-Length header.")
        if n > limit:
            raise errors.PayloadTooLarge(f"Request body is {n} bytes; the limit here is {limit}.")
        return stream.read(n) if n else b""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise errors.PayloadTooLarge(f"Request body is over the limit of {limit} bytes.")
    return data


def client_ip(config):
    if config.trust_proxy:
        fwd = bottle.request.headers.get("X-Forwarded-For")
        if fwd:
            return bare_ip(fwd.split(",")[0])
    return bottle.request.environ.get("REMOTE_ADDR")


def bare_ip(value):
    """An address as proxies write it (`1.2.3.4:5555`, `[::1]:443`, `::1`) -> the bare IP, as PostHog's capture does."""
    value = value.strip()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has two or more colons
        return value.split(":", 1)[0]
    return value


_EPOCH = datetime(1970, 1, 1)


def iso_ms(ms):
    """UTC epoch milliseconds as ISO 8601 with milliseconds and a Z."""
    if ms is None:
        return None
    # Integer arithmetic and isoformat: half the cost of fromtimestamp(ms / 1000).strftime
    # (twice per row of an events list), and exact at the extremes (no float rounding).
    try:
        return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"
    except OverflowError:
        return _iso_any_year(ms)


def _iso_any_year(ms):
    """iso_ms beyond datetime's years 1-9999: rows an older phlite stored (it kept year 0) still read."""
    days, rest = divmod(ms, 86_400_000)
    z = days + 719_468  # civil-from-days (H. Hinnant), proleptic Gregorian
    era, doe = divmod(z, 146_097)
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (m <= 2)
    h, rest = divmod(rest, 3_600_000)
    mi, rest = divmod(rest, 60_000)
    s, frac = divmod(rest, 1000)
    year = f"{y:04d}" if 0 <= y <= 9999 else f"{y:+07d}"  # ISO 8601's expanded years
    return f"{year}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{frac:03d}Z"


def parse_time_param(value, name):
    """A query-string time (ISO 8601 or date) as epoch ms; 400 naming the parameter if bad."""
    if value in (None, ""):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+") if "T" in value else value)
    except ValueError:
        raise errors.BadRequest(f"'{name}' must be an ISO 8601 date or time.", attr=name)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def int_param(q, name, default, lo=1, hi=1000):
    raw = q.get(name)
    if raw in (None, ""):
        return default
    try:
        v = int(raw)  # any size: the bounds below refuse what SQLite could not hold
    except ValueError:
        raise errors.BadRequest(f"'{name}' must be an integer.", attr=name)
    if not lo <= v <= hi:
        raise errors.BadRequest(f"'{name}' must be between {lo} and {hi}.", attr=name)
    return v


_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def _host(value):
    value = (value or "").split(",")[0].strip()
    return value if _HOST.fullmatch(value) else None


def base_url():
    """scheme://host of this server as the client reached it, for links in answers. X-Forwarded-Proto and
    -Host count only with trust_proxy; the Host header only if it is a host name or address (a port at most),
    so no header can turn a link into another scheme or a path (`javascript://`)."""
    env = bottle.request.environ
    scheme = "https" if env.get("wsgi.url_scheme") == "https" else "http"
    host = _host(env.get("HTTP_HOST"))
    if bottle.request.app.config.get("phlite.trust_proxy"):
        proto = (env.get("HTTP_X_FORWARDED_PROTO") or "").split(",")[0].strip().lower()
        scheme = proto if proto in ("http", "https") else scheme
        host = _host(env.get("HTTP_X_FORWARDED_HOST")) or host
    if host is None:
        name, port = env.get("SERVER_NAME", "localhost"), env.get("SERVER_PORT", "80")
        host = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    return f"{scheme}://{host}"


def url_with(params):
    """This request's URL with query parameters replaced (for `next` links)."""
    q = query()
    q.update({k: v for k, v in params.items() if v is not None})
    return f"{base_url()}{quote(bottle.request.path)}?{urlencode(q)}"


def page(results, count, limit, offset):
    """DRF's limit/offset pagination: {"count", "next", "previous", "results"}."""
    nxt = url_with({"limit": limit, "offset": offset + limit}) if offset + limit < count else None
    prev = url_with({"limit": limit, "offset": max(offset - limit, 0)}) if offset > 0 else None
    return {"count": count, "next": nxt, "previous": prev, "results": results}


def page_limits():
    """`?limit=` (default 100, at most 1000) and `?offset=` of a list endpoint."""
    q = query()
    return int_param(q, "limit", 100, 1, 1000), int_param(q, "offset", 0, 0, 10**9)


def created(value):
    return bottle.HTTPResponse(dumps(value), 201, {"Content-Type": JSON})


def bool_query(q, name):
    """A boolean query parameter: None if absent, else whether it reads as true."""
    raw = q.get(name)
    if raw in (None, ""):
        return None
    return raw.lower() in ("1", "true", "yes")


def json_body(limit=JSON_BODY_LIMIT):
    """A private-API JSON object body."""
    raw = read_body(limit)
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise errors.BadRequest(f"Request body is not valid JSON: {e}.", code="parse_error")
    if not isinstance(value, dict):
        raise errors.BadRequest("Request body must be a JSON object.", code="parse_error")
    return value
