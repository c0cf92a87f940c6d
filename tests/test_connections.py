"""No client can take the server down with connections or body sizes (docs/reliability.md "Connections and
bodies"): >1,100 idle connections, a huge Content-Length, an endless chunked upload."""

import os
import resource
import socket
import time

import pytest

from support import Subprocess, http
from test_reliability import record

MiB = 1024 * 1024


def _fds_and_rss(pid):
    """(bytes in deleted temp files the process holds open, RSS bytes): what an upload costs it."""
    spilled = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.endswith("(deleted)"):
                spilled += os.stat(f"/proc/{pid}/fd/{fd}").st_size
        except OSError:
            pass
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    return spilled, rss


def _response(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def _content_length(data):
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _connect(url):
    host, port = url.split("//")[1].split(":")
    return socket.create_connection((host, int(port)), timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Subprocess(tmp_path_factory.mktemp("conn"), "--connection-limit", "1500")
    yield srv
    assert srv.terminate() == 0


@pytest.mark.slow
def test_over_1100_idle_connections_do_not_kill_the_server(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1300:  # this test's own side needs the sockets too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle = []
    try:
        for _ in range(1150):
            idle.append(_connect(server.url))
        # waitress accepts them in its loop; a request behind them is answered, and the process lives.
        r = http("POST", server.url + "/capture/", {"api_key": server.token, "event": "after", "distinct_id": "u"})
        assert r.status == 200, r.body
        assert server.proc.poll() is None
        r = http("GET", server.url + "/array/" + server.token + "/config")
        assert r.status == 200
    finally:
        for s in idle:
            s.close()
    record("idle_connections", idle_connections=len(idle), connection_limit=1500, answered=True)


@pytest.mark.slow
def test_huge_content_length_is_refused_at_once_with_json_413(server):
    before, _ = _fds_and_rss(server.proc.pid)
    with _connect(server.url) as s:
        s.sendall(b"POST /capture/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (200 * MiB) + b"[" * 1000)
        t = time.monotonic()
        head, body = _response(s)
        took = time.monotonic() - t
    assert head.startswith("HTTP/1.1 413"), head
    assert "application/json" in head
    import json
    err = json.loads(body)
    assert err["code"] == "payload_too_large" and set(err) == {"type", "code", "detail", "attr"}
    assert str(2 * MiB) in err["detail"]
    assert took < 5
    # /batch has its own (20 MiB) limit: a 21 MiB claim is refused the same way.
    with _connect(server.url) as s:
        s.sendall(b"POST /batch/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (21 * MiB))
        head, body = _response(s)
    assert head.startswith("HTTP/1.1 413") and json.loads(body)["code"] == "payload_too_large"
    spilled, _ = _fds_and_rss(server.proc.pid)
    assert spilled - before < MiB


@pytest.mark.slow
def test_endless_chunked_upload_is_cut_at_the_route_limit(server):
    base_spilled, base_rss = _fds_and_rss(server.proc.pid)
    peak_spilled = peak_rss = 0
    sent = 0
    chunk = b"x" * (256 * 1024)
    with _connect(server.url) as s:
        s.sendall(b"POST /capture/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < 64 * MiB:
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                spilled, rss = _fds_and_rss(server.proc.pid)
                peak_spilled, peak_rss = max(peak_spilled, spilled), max(peak_rss, rss)
        except (BrokenPipeError, ConnectionResetError):
            pass
        head, body = _response(s)
    assert head.startswith("HTTP/1.1 413"), head
    # Cut near 2 MiB (plus what was in flight in socket buffers), not 64 MiB later.
    assert sent < 32 * MiB, sent
    assert peak_spilled - base_spilled < 4 * MiB, peak_spilled
    record("chunked_upload_cut", sent_bytes=sent, limit_bytes=2 * MiB, peak_temp_file_bytes=peak_spilled - base_spilled,
           rss_growth_bytes=max(0, peak_rss - base_rss))
    r = http("POST", server.url + "/capture/", {"api_key": server.token, "event": "still", "distinct_id": "u"})
    assert r.status == 200


def test_open_file_limit_is_raised_and_connection_limit_capped_below_it(tmp_path):
    import subprocess
    import sys

    from support import ROOT

    # A child started with a low soft limit: the server raises it to the hard limit, and a
    # connection_limit beyond what even the hard limit holds is capped (and says so).
    code = ("import resource, logging; logging.basicConfig();"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 600));"
            "from phlite import httpserver, web; from phlite.config import Config;"
            f"c = Config(port=0, connection_limit=5000, data_dir={str(tmp_path)!r});"
            "s = httpserver.create_server(lambda e, r: [], c, lambda p: 10, 10);"
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], s.adj.connection_limit)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=30)
    assert r.returncode == 0, r.stderr
    soft, limit = map(int, r.stdout.split())
    assert soft == 600
    from phlite import httpserver
    assert limit == httpserver.connection_cap(600, 8) < 600 // 2
    assert "connection_limit 5000 is more than this process can hold" in r.stderr
