"""The one harness for running phlite from tests and from bench/: a real waitress server in process
(InProcessServer), `python app.py` as a user runs it (Subprocess), a fresh project (Project), plain
HTTP (http), and the helpers many test files share (ev, send, person, stored_uuids, assert_error).

It lives under tests/ rather than in phlite/ because it imports waitress, which inside the package
only phlite/cli.py may (tests/test_layout.py). bench/ puts tests/ on sys.path and imports it.
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from phlite.app import open_app  # noqa: E402
from phlite.web import create_app  # noqa: E402

# The four keys of every API error body (phlite/errors.py).
ERROR_KEYS = {"type", "code", "detail", "attr"}
_ANY = object()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def http(method, url, body=None, headers=None, timeout=30):
    """One HTTP request with the standard library; returns Response for every status."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def assert_error(r, status, code=None, type=None, detail=None, attr=_ANY):
    """`r` is phlite's JSON error: this status, exactly the four keys, and the given values. Returns the body."""
    assert r.status == status, (r.status, r.body)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]
    body = r.json()
    assert set(body) == ERROR_KEYS, body
    if code is not None:
        assert body["code"] == code, body
    if type is not None:
        assert body["type"] == type, body
    if detail is not None:
        assert body["detail"] == detail, body
    if attr is not _ANY:
        assert body["attr"] == attr, body
    return body


# --- servers ---------------------------------------------------------------------------------------


class InProcessServer:
    """phlite's app on a real waitress server in a background thread (on `port`: a free one by default;
    a given one lets a test stop a server and start it again at the same address)."""

    def __init__(self, config, clock=None, port=0, start_forwarder=True):
        from phlite import httpserver, web

        kw = {"clock": clock} if clock else {}
        if not start_forwarder:
            kw["start_forwarder"] = False  # forwarding only through app.forwarder.flush()
        self.app = open_app(config, **kw)
        self.web = create_app(self.app)
        # The server the CLI runs (phlite/httpserver.py), on a free port.
        self.server = httpserver.create_server(self.web, config, lambda path: web.body_limit(path, config),
                                               web.max_body_limit(config), host="127.0.0.1", port=port)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self._stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        self.store = self.app.store

    def _loop(self):
        # waitress's own run() cannot be stopped from another thread without closing
        # sockets under its select(); loop in short steps and close from this thread.
        from waitress import wasyncore

        while not self._stopping:
            wasyncore.loop(timeout=0.05, map=self.server._map, use_poll=True, count=1)
        self.server.close()
        for channel in list(self.server._map.values()):
            channel.close()

    def flush(self):
        assert self.app.ingestion.flush(timeout=30), "writer did not catch up"

    def close(self):
        self._stopping = True
        self.thread.join(10)
        self.server.task_dispatcher.shutdown(timeout=5)
        self.app.close()


class Subprocess:
    """`python app.py` as a user runs it, with its own data dir, on a free port (or `port`).

    On an empty data dir, `token` and `key` are the project key and personal key it printed."""

    def __init__(self, data_dir, *args, env=None, port=0):
        self.data_dir = Path(data_dir)
        self.started = time.perf_counter()
        e = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--data-dir", str(data_dir), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, cwd=str(ROOT),
        )
        self.output = []
        self.token = self.key = None
        for line in self.proc.stdout:
            self._line(line)
            if " listening on " in line:
                self.url = line.split(" listening on ")[1].split()[0]
                break
        else:
            raise RuntimeError("phlite did not start:\n" + "".join(self.output) + self.proc.stderr.read())
        # Keep reading its output so the child never blocks on a full pipe.
        threading.Thread(target=lambda: [self._line(line) for line in self.proc.stdout], daemon=True).start()
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def _line(self, line):
        self.output.append(line)
        m = re.search(r"project API key (phc_\S+)", line)
        if m:
            self.token = m.group(1)
        m = re.search(r"store it\): (phx_\S+)", line)
        if m:
            self.key = m.group(1)

    @property
    def db(self):
        return self.data_dir / "phlite.db"

    def admin(self, *args):
        return admin(self.data_dir, *args)

    def terminate(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)


def admin(data_dir, *args):
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), *args, "--data-dir", str(data_dir)],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if "--json" in args else out.stdout


class Project:
    """A fresh project on a running server, with a personal key limited to it."""

    def __init__(self, srv, name="test"):
        self.srv = srv
        self.url = srv.url
        p = srv.store.create_project(name)
        self.id = p["id"]
        self.token = p["api_token"]
        self.key = srv.store.create_personal_key("test", [self.id])["personal_api_key"]

    def flush(self):
        self.srv.flush()

    def api(self, method, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        return http(method, self.url + path.replace("@project", str(self.id)), body, h)

    def events(self, **params):
        """All events of this project (newest first), following `next` links."""
        self.flush()
        url = f"/api/projects/{self.id}/events/?" + urlencode({"limit": 1000, **params})
        out = []
        r = self.api("GET", url)
        assert r.status == 200, r.body
        out.extend(r.json()["results"])
        while r.json()["next"]:
            r = http("GET", r.json()["next"], headers={"Authorization": f"Bearer {self.key}"})
            out.extend(r.json()["results"])
        return out


class Clock:
    """An injected clock a test moves by setting `t` (seconds)."""

    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


# --- events and persons ----------------------------------------------------------------------------


def ev(name, distinct_id, timestamp=None, **props):
    """A PostHog event as the SDKs send it in a batch."""
    e = {"event": name, "distinct_id": distinct_id, "properties": props}
    if timestamp:
        e["timestamp"] = timestamp
    return e


def send(project, *events):
    """POST events to /batch/, expect 200, and wait until they are stored."""
    r = http("POST", project.url + "/batch/", {"api_key": project.token, "batch": list(events)})
    assert r.status == 200, r.body
    project.flush()


def person(project, distinct_id):
    """The person of a distinct id through the persons API, or None."""
    r = project.api("GET", "/api/projects/@project/persons/?" + urlencode({"distinct_id": distinct_id}))
    assert r.status == 200, r.body
    results = r.json()["results"]
    assert len(results) <= 1
    return creator_checked(results[0]) if results else None


def creator_checked(p):
    """A person from the API, its `$creator_event_uuid` (every person has one: the event that created it,
    docs/protocol.md "Persons: property updates") checked and taken out, so tests compare the rest."""
    creator = p["properties"].pop("$creator_event_uuid", None)
    assert isinstance(creator, str) and str(uuid.UUID(creator)) == creator, p
    return p


def stored_uuids(db_path, project_id=None):
    """The uuids of the stored events, read from the SQLite file itself."""
    con = sqlite3.connect(db_path)
    sql = "SELECT uuid FROM event" + (" WHERE project_id = ?" if project_id else "")
    rows = con.execute(sql, (project_id,) if project_id else ()).fetchall()
    con.close()
    return [str(uuid.UUID(bytes=r[0])) for r in rows]


# --- the console -------------------------------------------------------------------------------------


class ConsoleClient:
    """A cookie-keeping client of the console's HTML pages that does not follow redirects;
    posts carry the page's CSRF token and this server's Origin, as a browser on the page sends them."""

    def __init__(self, url):
        self.url = url
        self.cookies = {}
        self.csrf = None

    def request(self, method, path, fields=None, headers=None, raw=None):
        h = {"Origin": self.url, **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            if self.csrf and "csrf" not in fields:
                fields = {**fields, "csrf": self.csrf}
            body = urlencode(fields, doseq=True).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        if raw is not None:
            body = raw

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=h)
        try:
            with opener.open(req, timeout=30) as r:
                resp = Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            resp = Response(e.code, e.headers, e.read())
        for raw in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = raw.partition("=")
            value = rest.split(";")[0]
            if "Max-Age=0" in raw or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        m = re.search(rb'name="csrf" value="([^"]+)"', resp.body or b"")
        if m:
            self.csrf = m.group(1).decode()
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, fields, **kw):
        return self.request("POST", path, fields or {}, **kw)

    def text(self, path):
        r = self.get(path)
        assert r.status == 200, (r.status, r.body[:500])
        return r.body.decode()

    def sign_in(self, email, password):
        r = self.post("/console/login", {"email": email, "password": password, "next": "/"})
        assert r.status == 303, (r.status, r.body[:500])
        self.get("/console/projects")  # picks up the session's CSRF token
        return r


def console_user(srv, role="member", password="correct horse battery"):
    """A new console account on a running server and a client signed in as it."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    srv.app.console.create_user(email, role, password)
    client = ConsoleClient(srv.url)
    client.sign_in(email, password)
    return client
