"""The waitress server phlite runs on, set up so that no client can take it down (docs/reliability.md
"Connections and bodies"). Used by the CLI and by the tests' in-process server, so both run the same.

- poll() instead of select(): select cannot watch a file descriptor above 1023, and waitress's loop
  died on "filedescriptor out of range" with ~1,100 idle connections.
- The open-file limit is raised to the hard limit, and `connection_limit` is capped below what the
  process can hold (each connection may also hold a spilled body or answer as a temp file).
- A body larger than its route's limit is refused from the Content-Length header, before any of it is
  read, with phlite's JSON 413; a chunked body is cut off as soon as it passes the limit. waitress's own
  limit is the largest route limit, not 1 GiB of temp files.
- What waitress answers itself (HTTP framing it cannot parse: 400, 431, 501, and its 500 when the app
  fails mid-answer) is phlite's JSON error shape, not waitress's text/plain page.
- A request a person waits for (the private API, the console) goes to the front of waitress's task
  queue, ahead of the SDK traffic (capture, flags) queued there (docs/design.md "HTTP server threads").
"""

import logging
import resource

import orjson
import waitress
from waitress.parser import HTTPRequestParser
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import RequestEntityTooLarge

from phlite import errors

log = logging.getLogger(__name__)

# File descriptors kept for everything but client connections: SQLite (db, WAL, shm per connection
# and thread), the spool, the listening socket, waitress's trigger pipe, logs.
_RESERVED_FDS = 64
_FDS_PER_THREAD = 8
# Most fds one connection may hold: its socket, a spilled request body, a spilled answer.
_FDS_PER_CONNECTION = 3


def raise_open_file_limit():
    """Soft RLIMIT_NOFILE up to the hard limit where allowed; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if want > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, want, e)
    return soft


def connection_cap(soft_limit, threads):
    """The most connections a process with this many open files can hold without running out."""
    return max(1, (soft_limit - _RESERVED_FDS - _FDS_PER_THREAD * threads) // _FDS_PER_CONNECTION)


class _TooLarge(RequestEntityTooLarge):
    """A 413 whose detail is phlite's (the words of read_body's), not waitress's."""


# waitress's error classes by status -> phlite's (type, code) for them (phlite/errors.py's vocabulary).
_ERROR_KINDS = {
    400: ("validation_error", "malformed_request"),  # malformed request line, header, chunk, Content-Length
    413: ("validation_error", "payload_too_large"),
    431: ("validation_error", "request_header_fields_too_large"),
    501: ("invalid_request", "not_implemented"),  # a Transfer-Encoding other than chunked
}


class _JsonErrorTask(ErrorTask):
    """waitress's own answers (framing it cannot parse) in phlite's JSON error shape."""

    def execute(self):
        e = self.request.error
        kind, code = _ERROR_KINDS.get(e.code, ("server_error", "error"))
        detail = e.body if e.code != 500 else "Internal server error."
        body = orjson.dumps(errors.error_body(kind, code, detail))
        self.status = f"{e.code} {e.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _channel_class(body_limit):
    """An HTTPChannel whose parser applies `body_limit(path) -> bytes` as soon as the headers are in."""

    class Parser(HTTPRequestParser):
        _limit = None

        def received(self, data):
            n = super().received(data)
            if isinstance(self.error, RequestEntityTooLarge) and not isinstance(self.error, _TooLarge):
                self.error = _TooLarge(f"Request body is over the limit of {body_limit(self.path or '/')} bytes.")
            elif self.headers_finished and not self.error:
                if self._limit is None:
                    self._limit = body_limit(self.path or "/")
                size = len(self.body_rcv) if self.chunked and self.body_rcv is not None else self.content_length
                if size > self._limit:
                    # The words of read_body's 413 (phlite/web/common.py), which answers the same case.
                    self.error = _TooLarge(f"Request body is over the limit of {self._limit} bytes." if self.chunked
                                           else f"Request body is {size} bytes; the limit here is {self._limit}.")
                    self.completed = True
            return n

    class Channel(HTTPChannel):
        parser_class = Parser
        error_task_class = _JsonErrorTask

    return Channel


# Requests a person waits for: the private API (not the SDKs' local-evaluation polling) and the console.
# The SDK traffic (capture, flags, remote config) is many small requests, retried by their clients.
INTERACTIVE_PREFIXES = ("/api/projects/", "/console")


def interactive(path):
    """Whether a request is one a person is waiting for (served ahead of queued SDK requests)."""
    return path.startswith(INTERACTIVE_PREFIXES) and "/local_evaluation" not in path


class _Dispatcher(ThreadedTaskDispatcher):
    """waitress's task queue, with interactive requests put at its front. Under SDK load the queue
    holds a task per busy connection, and an events-list read waited behind all of them."""

    def add_task(self, task):
        requests = getattr(task, "requests", None)
        # A request waitress could not parse has no path (it is answered with an error): FIFO.
        path = getattr(requests[0], "path", None) if requests else None
        if path and interactive(path):
            with self.lock:
                self.queue.appendleft(task)
                self.queue_cv.notify()
            return
        super().add_task(task)


def create_server(wsgi, config, body_limit, max_body_limit, host=None, port=None):
    """A waitress server for `wsgi`; raises OSError when the address cannot be bound."""
    soft = raise_open_file_limit()
    cap = connection_cap(soft, config.threads)
    limit = config.connection_limit
    if limit > cap:
        log.warning("connection_limit %d is more than this process can hold with %d open files: using %d",
                    limit, soft, cap)
        limit = cap
    dispatcher = _Dispatcher()
    dispatcher.set_thread_count(config.threads)
    server = waitress.create_server(
        wsgi, host=config.host if host is None else host, port=config.port if port is None else port,
        threads=config.threads, connection_limit=limit, channel_timeout=config.channel_timeout,
        # waitress closes timed-out connections only on its cleanup cycle (30 s by default):
        # run it as often as the timeout, or held connections outlive it by up to 30 s.
        cleanup_interval=max(1, min(30, config.channel_timeout)),
        # The per-route limits are applied by the parser above; this is only the backstop.
        max_request_body_size=max_body_limit + 1,
        asyncore_use_poll=True,
        ident="phlite", clear_untrusted_proxy_headers=False,
        _dispatcher=dispatcher,
    )
    server.channel_class = _channel_class(body_limit)
    return server
