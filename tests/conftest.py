"""Fixtures: a real phlite (waitress on a free port, a real SQLite file) per test session,
and a fresh project per test so tests never see each other's data.

`phlite.flush()` waits for the writer synchronously: no test sleeps for background work.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phlite.config import Config  # noqa: E402
from phlite.app import open_app  # noqa: E402
from phlite.web import create_app  # noqa: E402


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


class InProcessServer:
    """phlite's app on a real waitress server in a background thread."""

    def __init__(self, config, clock=None):
        import waitress

        kw = {"clock": clock} if clock else {}
        self.app = open_app(config, **kw)
        self.web = create_app(self.app)
        self.server = waitress.create_server(self.web, host="127.0.0.1", port=0, threads=config.threads,
                                             channel_timeout=config.channel_timeout)
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
        from urllib.parse import urlencode

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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = InProcessServer(Config(data_dir=tmp_path_factory.mktemp("phlite")))
    yield srv
    srv.close()


@pytest.fixture
def project(server):
    return Project(server)


@pytest.fixture
def make_server(tmp_path):
    """Start a dedicated in-process server with custom settings: make_server(max_body_bytes=...)."""
    started = []

    def make(**settings):
        d = tmp_path / f"srv{len(started)}"
        srv = InProcessServer(Config(data_dir=d, **settings))
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.close()


class Subprocess:
    """`python app.py` as a user runs it, on a free port, with its own data dir."""

    def __init__(self, data_dir, *args, env=None):
        self.data_dir = data_dir
        e = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", "0", "--data-dir", str(data_dir), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, cwd=str(ROOT),
        )
        self.output = []
        for line in self.proc.stdout:
            self.output.append(line)
            if " listening on " in line:
                self.url = line.split(" listening on ")[1].split()[0]
                break
        else:
            raise RuntimeError("phlite did not start:\n" + "".join(self.output) + self.proc.stderr.read())
        # Keep reading stdout so the child never blocks on a full pipe.
        threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True).start()

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
