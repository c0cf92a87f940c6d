"""The deployment files docs/operations.md shows (docs/deploy/): the systemd unit verifies and its command, with its
environment, serves and stops cleanly on its stop signal; nginx and Caddy, run on loopback with TLS in front of a
trust_proxy phlite, pass capture, big batches and links through, and never let a client choose its own address.

nginx and Caddy are Debian's binaries, unpacked into tests/.tools by tests/run.sh."""

import http.client as httpclient
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import uuid

import pytest

from support import ROOT, Project, Subprocess, http, stored_uuids

DEPLOY = ROOT / "docs" / "deploy"
TOOLS = ROOT / "tests" / ".tools"
CLIENT = "127.0.0.3"  # the client's own address on loopback, which only X-Forwarded-For can carry to phlite
FORGED = "203.0.113.9"


def tool(name, path):
    found = shutil.which(name) or (str(TOOLS / path) if (TOOLS / path).exists() else None)
    if found is None:
        pytest.skip(f"{name} is not installed (tests/run.sh unpacks it into tests/.tools)")
    return found


def unit_file():
    return (DEPLOY / "phlite.service").read_text()


def test_docs_show_each_deploy_file_as_it_is():
    doc = (ROOT / "docs" / "operations.md").read_text()
    for name in ("phlite.service", "nginx.conf", "Caddyfile"):
        body = (DEPLOY / name).read_text()
        assert body.strip() in doc, f"docs/operations.md does not show docs/deploy/{name} as it is"


def test_systemd_unit_verifies_and_its_command_serves_and_stops_on_its_signal(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = unit_file().replace("/opt/phlite/.venv/bin/python", sys.executable).replace("/opt/phlite", str(ROOT))
    (tmp_path / "phlite.service").write_text(unit)
    out = subprocess.run([analyze, "verify", str(tmp_path / "phlite.service")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    # verify only warns about unknown keys and bad values: any line about the unit is a mistake in it.
    assert "phlite.service" not in out.stderr, out.stderr

    service = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    env = dict(line.split("=", 1) for line in re.findall(r"^Environment=(.*)$", unit, re.M))
    assert env["PHLITE_DATA_DIR"] == "/var/lib/" + service["StateDirectory"]
    assert service["KillSignal"] == "SIGTERM" and service["RestartPreventExitStatus"] == "2"
    args = service["ExecStart"].split()
    assert args[:2] == [sys.executable, str(ROOT / "app.py")] and args[2:] == ["serve"]
    # The unit's own environment, with a data dir and a port of this test's.
    env.update(PHLITE_DATA_DIR=str(tmp_path / "data"), PHLITE_PORT="0")
    srv = Subprocess(tmp_path / "data", "serve", env=env)
    try:
        assert " listening on http://127.0.0.1:" in "".join(srv.output)
        assert http("GET", srv.url + "/healthz").json()["status"] == "ok"
        uid = str(uuid.uuid4())
        r = http("POST", srv.url + "/batch/", {"api_key": srv.token, "batch": [{"event": "e", "distinct_id": "d",
                                                                               "uuid": uid}]})
        assert r.status == 200, r.body
    finally:
        srv.proc.send_signal(getattr(signal, service["KillSignal"]))
        code = srv.proc.wait(int(service["TimeoutStopSec"]))
    assert code == 0  # stopped by its signal: Restart=on-failure leaves it stopped
    assert stored_uuids(srv.db) == [uid]  # what was queued was stored before it exited


# --- proxies -------------------------------------------------------------------------------------------


def https(port, method, path, body=None, headers=None, cafile=None, host="127.0.0.1"):
    """One request from CLIENT's address, trusting only `cafile`."""
    ctx = ssl.create_default_context(cafile=cafile)
    conn = httpclient.HTTPSConnection(host, port, context=ctx, source_address=(CLIENT, 0), timeout=30)
    try:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def plain(port, path, host="127.0.0.1"):
    conn = httpclient.HTTPConnection(host, port, source_address=(CLIENT, 0), timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders())
    finally:
        conn.close()


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_proxy(srv, port, http_port, cafile, host):
    """What a TLS proxy in front of a trust_proxy phlite must do, checked through it."""
    p = Project(srv)
    status, _, body = https(port, "GET", "/healthz", cafile=cafile, host=host)
    assert status == 200 and json.loads(body)["status"] == "ok"
    # A client that claims another address is stored with its own.
    batch = [{"event": "through-proxy", "distinct_id": "d", "properties": {"n": k}} for k in range(2)]
    status, _, body = https(port, "POST", "/batch/", {"api_key": p.token, "batch": batch},
                            {"X-Forwarded-For": FORGED}, cafile=cafile, host=host)
    assert status == 200, body
    # A batch over nginx's 1 MiB default body limit.
    big = [{"event": "big", "distinct_id": "d", "properties": {"blob": os.urandom(4000).hex()}} for _ in range(400)]
    raw = json.dumps({"api_key": p.token, "batch": big}).encode()
    assert len(raw) > 3 * 2**20
    status, _, body = https(port, "POST", "/batch/", raw, cafile=cafile, host=host)
    assert status == 200, body
    p.flush()
    status, _, body = https(port, "GET", f"/api/projects/{p.id}/events/?event=through-proxy&limit=1",
                            headers={"Authorization": f"Bearer {p.key}"}, cafile=cafile, host=host)
    page = json.loads(body)
    assert status == 200 and page["results"][0]["properties"]["$ip"] == CLIENT
    # Links phlite writes are the address the client used: https, with the proxy's host and port.
    assert page["next"].startswith(f"https://{host}:{port}/api/projects/{p.id}/events/"), page["next"]
    # Plain http is sent to https.
    status, headers = plain(http_port, "/healthz", host=host)
    assert status in (301, 308) and headers["Location"].startswith("https://"), (status, headers)


@pytest.mark.slow
def test_nginx_snippet_in_front_of_phlite(tmp_path, make_server):
    nginx = tool("nginx", "usr/sbin/nginx")
    srv = make_server(trust_proxy=True)
    upstream = srv.url.rsplit(":", 1)[1]
    port, http_port = free_port(), free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True, timeout=60)
    site = (DEPLOY / "nginx.conf").read_text()
    site = re.sub(r"^\s*listen \[::\]:.*$", "", site, flags=re.M)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
    site = site.replace("/etc/letsencrypt/live/analytics.example.com/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/analytics.example.com/privkey.pem", str(tmp_path / "key.pem"))
    site = site.replace("proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://127.0.0.1:{upstream};")
    (tmp_path / "phlite.conf").write_text(site)
    t = tmp_path
    (tmp_path / "nginx.conf").write_text(
        f"{'user root;' if os.getuid() == 0 else ''}\ndaemon on; worker_processes 1; pid {t}/nginx.pid;\n"
        f"error_log {t}/error.log;\nevents {{ worker_connections 64; }}\n"
        f"http {{ access_log off; client_body_temp_path {t}/body; proxy_temp_path {t}/proxy;"
        f" fastcgi_temp_path {t}/fastcgi; uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;\n"
        f"include {t}/phlite.conf; }}\n")
    # Daemon mode: the command returns once the master holds its sockets.
    out = subprocess.run([nginx, "-p", str(t), "-c", str(t / "nginx.conf"), "-e", str(t / "error.log")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + (t / "error.log").read_text()
    try:
        check_proxy(srv, port, http_port, str(t / "cert.pem"), "127.0.0.1")
    finally:
        os.kill(int((t / "nginx.pid").read_text()), signal.SIGQUIT)


@pytest.mark.slow
def test_caddy_snippet_in_front_of_phlite(tmp_path, make_server):
    caddy = tool("caddy", "usr/bin/caddy")
    srv = make_server(trust_proxy=True)
    upstream = srv.url.rsplit(":", 1)[1]
    port, http_port, admin = free_port(), free_port(), free_port()
    site = (DEPLOY / "Caddyfile").read_text()
    # A loopback address instead of a public name: Caddy's own local CA instead of Let's Encrypt, same site.
    site = site.replace("analytics.example.com {", f"127.0.0.1:{port} {{").replace("127.0.0.1:8000", f"127.0.0.1:{upstream}")
    (tmp_path / "Caddyfile").write_text(
        f"{{\n\tadmin 127.0.0.1:{admin}\n\tskip_install_trust\n\thttp_port {http_port}\n\thttps_port {port}\n"
        f"\tstorage file_system {tmp_path}/caddy\n}}\n" + site)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    # `caddy start` returns once the configuration is loaded and the listeners are up. Its output goes to a
    # file: the server it leaves running keeps the descriptors it was given.
    with open(tmp_path / "caddy.log", "wb") as log:
        out = subprocess.run([caddy, "start", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile",
                              "--pidfile", str(tmp_path / "caddy.pid")], stdout=log, stderr=log, env=env, timeout=60)
    assert out.returncode == 0, (tmp_path / "caddy.log").read_text()
    try:
        ca = tmp_path / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        check_proxy(srv, port, http_port, str(ca), "127.0.0.1")
    finally:
        os.kill(int((tmp_path / "caddy.pid").read_text()), signal.SIGTERM)
