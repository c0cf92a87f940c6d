"""Operator mistakes at start-up: one clear line on stderr and a nonzero exit, never a traceback;
one server per data dir (docs/reliability.md "Operator mistakes")."""

import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from support import ROOT, Subprocess, admin, http
from phlite import cli, config as configmod


def run(*args, timeout=30):
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=timeout)


def assert_one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phlite: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.slow
def test_a_second_server_on_the_same_data_dir_is_refused_naming_the_holder(tmp_path):
    srv = Subprocess(tmp_path)
    try:
        started = time.perf_counter()
        r = run("--port", "0", "--data-dir", str(tmp_path))
        assert time.perf_counter() - started < 15  # at once: it never serves
        assert_one_line_error(r, "in use", f"pid {srv.proc.pid}")
        # The first one is untouched: it still answers and stores.
        r = http("POST", srv.url + "/capture/", {"api_key": srv.token, "event": "e", "distinct_id": "u"})
        assert r.status == 200
        # Store-only admin commands work beside it (README "Scripted setup").
        created = admin(tmp_path, "project", "create", "beside", "--json")
        assert created in admin(tmp_path, "project", "list", "--json")
        assert admin(tmp_path, "key", "create", "--json")["personal_api_key"].startswith("phx_")
        assert (tmp_path / "phlite.lock").read_text().strip() == str(srv.proc.pid)
    finally:
        assert srv.terminate() == 0
    # Released on exit, and after kill -9 too: the kernel drops a dead process's flock.
    srv = Subprocess(tmp_path)
    srv.kill()
    srv = Subprocess(tmp_path)
    assert srv.terminate() == 0


def test_port_in_use_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("--port", str(port), "--data-dir", str(tmp_path))
    assert_one_line_error(r, "cannot listen", str(port))
    # It let go of the data dir: admin commands and a later start see no holder.
    from phlite import datadir
    assert datadir.holder(tmp_path) is None


def test_unknown_log_level_is_one_line(tmp_path):
    assert_one_line_error(run("--log-level", "LOUD", "--data-dir", str(tmp_path)), "log_level", "LOUD")
    assert configmod.load({"log_level": "debug"}, {}).log_level == "DEBUG"


def test_missing_data_dir_parent_is_one_line(tmp_path):
    missing = tmp_path / "nope" / "data"
    assert_one_line_error(run("--data-dir", str(missing)), "does not exist", str(tmp_path / "nope"))
    assert not missing.exists()
    assert_one_line_error(run("project", "list", "--data-dir", str(missing)), "does not exist")


def test_data_dir_that_is_a_file_is_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(run("--data-dir", str(f)), "not a directory")
    (tmp_path / "d" / "spool").mkdir(parents=True)
    (tmp_path / "d" / "spool").rmdir()
    (tmp_path / "d" / "spool").write_text("not a dir")
    assert_one_line_error(run("--data-dir", str(tmp_path / "d")), "spool", "not a directory")


def _unwritable_dirs(tmp_path):
    """Directories this user cannot write, real ones: chmod works unless we are root; as root,
    sysfs refuses file creation, and a read-only tmpfs mount (where we may mount) gives EROFS."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        yield d, "not writable"
        return
    yield "/sys/kernel", "not writable"
    d = tmp_path / "romount"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(d)], capture_output=True).returncode:
        return  # no mount privilege here: the chmod/sysfs case covers the same check
    try:
        yield d, "read-only file system"
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_unwritable_or_read_only_data_dir_is_one_line(tmp_path):
    seen = 0
    for d, words in _unwritable_dirs(tmp_path):
        assert_one_line_error(run("--data-dir", str(d)), str(d), words)
        seen += 1
    assert seen


def test_a_data_dir_from_a_newer_phlite_is_refused(tmp_path):
    admin(tmp_path, "project", "create", "p", "--json")
    with sqlite3.connect(tmp_path / "phlite.db") as db:
        db.execute("INSERT INTO schema_migration (version, name, applied_at) VALUES (99999, 'm99999_future', 0)")
    line = assert_one_line_error(run("--port", "0", "--data-dir", str(tmp_path)), "newer phlite", "99999")
    assert "upgrade" in line
    assert_one_line_error(run("project", "list", "--data-dir", str(tmp_path)), "newer phlite")
    # Nothing was written to it.
    with sqlite3.connect(tmp_path / "phlite.db") as db:
        assert db.execute("SELECT max(version) FROM schema_migration").fetchone()[0] == 99999


@pytest.mark.parametrize("argv, expected", [
    (["--trust-proxy"], True),
    (["--trust-proxy", "serve"], True),
    (["--trust-proxy", "false"], False),
    (["--trust-proxy", "NO"], False),
    (["--trust-proxy=yes"], True),
    (["--trust-proxy", "1", "project", "list"], True),
    (["project", "list", "--trust-proxy"], True),
    (["--trust-proxy", "0", "--port", "9"], False),
])
def test_boolean_flags_work_bare_and_with_a_value(argv, expected):
    args = cli.build_parser().parse_args(cli._bool_flags(argv))
    assert configmod.load(cli._flags(args), {}).trust_proxy is expected


def test_boolean_flag_with_a_bad_value_is_one_line(tmp_path):
    assert_one_line_error(run("--trust-proxy=maybe", "--data-dir", str(tmp_path)), "trust_proxy", "maybe")


@pytest.mark.slow
def test_bare_trust_proxy_starts_a_server(tmp_path):
    srv = Subprocess(tmp_path, "--trust-proxy")
    assert srv.terminate() == 0
