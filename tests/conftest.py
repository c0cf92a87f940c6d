"""Fixtures: a real phlite (waitress on a free port, a real SQLite file) per test session,
and a fresh project per test so tests never see each other's data. The harness itself is
tests/support.py (shared with bench/).

`phlite.flush()` waits for the writer synchronously: no test sleeps for background work.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import (ROOT, InProcessServer, Project, Response, Subprocess, admin, http)  # noqa: E402,F401
from phlite.config import Config  # noqa: E402


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
