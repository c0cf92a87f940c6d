"""The command line as a user runs it: first start, scripted setup, settings precedence."""

import json
import os
import subprocess
import sqlite3
import sys

import pytest

from support import ROOT, Subprocess, admin, http
from phlite import config
from phlite.errors import StartupError


def run(*args, env=None, cwd=ROOT):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], capture_output=True, text=True,
                          env=e, cwd=str(cwd), timeout=60)


@pytest.mark.slow
def test_first_start_creates_default_project_and_key_and_prints_them(tmp_path):
    srv = Subprocess(tmp_path)
    try:
        out = "".join(srv.output)
        assert "Default project" in out and "phc_" in out and "phx_" in out
        assert 'Posthog("phc_' in out and "posthog.capture(" in out
        [project] = admin(tmp_path, "project", "list", "--json")
        assert project["name"] == "Default project" and project["api_token"] in out
        key = out.split("shown once, store it): ")[1].split()[0]
        r = http("GET", srv.url + "/api/projects/", headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200 and r.json()["results"][0]["api_token"] == project["api_token"]
        assert (tmp_path / "phlite.db").exists()
        # The printed example runs as pasted: unindented, and it says what to install.
        assert "pip install posthog" in out
        example = out.split("then in python3:\n")[1].split("\n\n")[0]
        assert all(not line.startswith(" ") for line in example.splitlines())
        ran = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        # The README shows the same example, with placeholders for the key and this server's port.
        readme = (ROOT / "README.md").read_text()
        shown = readme.split("after `pip install posthog`:\n\n```python\n")[1].split("```")[0]
        assert shown.strip() == example.replace(project["api_token"], "phc_...").replace(
            srv.url, "http://127.0.0.1:8000").strip()
    finally:
        assert srv.terminate() == 0
    # SIGTERM stored everything queued: the example's event is in the database.
    with sqlite3.connect(tmp_path / "phlite.db") as db:
        assert db.execute("SELECT distinct_id FROM event WHERE event = 'my-event'").fetchall() == [("user-1",)]
    # A second start creates nothing new and prints no key.
    srv = Subprocess(tmp_path)
    assert "phx_" not in "".join(srv.output)
    assert srv.terminate() == 0
    assert len(admin(tmp_path, "project", "list", "--json")) == 1


def test_project_and_key_commands_print_stable_json(tmp_path):
    assert admin(tmp_path, "project", "list", "--json") == []
    created = admin(tmp_path, "project", "create", "Shop", "--json")
    assert set(created) == {"id", "name", "api_token"} and created["name"] == "Shop"
    assert created["api_token"].startswith("phc_")
    assert admin(tmp_path, "project", "list", "--json") == [created]
    key = admin(tmp_path, "key", "create", "--json")
    assert set(key) == {"personal_api_key"} and key["personal_api_key"].startswith("phx_")
    # Only a salted hash is stored.
    assert key["personal_api_key"].encode() not in (tmp_path / "phlite.db").read_bytes()
    listed = admin(tmp_path, "key", "list", "--json")
    assert len(listed) == 1 and "personal_api_key" not in listed[0]


def test_data_dir_from_environment_and_flag_wins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    r = run("project", "create", "from-env", "--json", env={"PHLITE_DATA_DIR": str(a)})
    assert r.returncode == 0, r.stderr
    assert (a / "phlite.db").exists()
    r = run("project", "list", "--json", "--data-dir", str(b), env={"PHLITE_DATA_DIR": str(a)})
    assert json.loads(r.stdout) == []


def test_settings_precedence_default_env_flag():
    assert config.load({}, {}).port == 8000
    assert config.load({}, {"PHLITE_PORT": "9000"}).port == 9000
    assert config.load({"port": "9100"}, {"PHLITE_PORT": "9000"}).port == 9100
    assert config.load({}, {"PHLITE_TRUST_PROXY": "yes"}).trust_proxy is True
    with pytest.raises(StartupError):
        config.load({}, {"PHLITE_PORT": "eighty"})
