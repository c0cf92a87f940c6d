"""Forwarding (docs/lifecycle.md "Forwarding"): a project's stored events also sent to a PostHog, here a
second real phlite: events and persons (merges included) come out equal; a destination that is down
is caught up in order with nothing lost or doubled; a source restarted mid-way resumes; 429 and
Retry-After are honoured. No sleeps: the tests stop the forwarder thread and drive `flush()` with an
injected clock."""

import gzip
import http.server
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from support import ROOT, InProcessServer, Project, ev, send
from test_lifecycle_migrate import events, persons
from test_ops import TOKEN, scrape, value
from phlite.config import Config


class Clock:
    def __init__(self):
        self.t = time.time()

    def __call__(self):
        return self.t


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def person_events(n=0):
    """Traffic that builds persons every way: anonymous pageviews, $identify, $create_alias,
    $merge_dangerously (of two identified persons after the first request), $set, groups and
    $groupidentify, with $set/$set_once on events. (Each request's pageviews use new anonymous ids: phlite
    applies automatic-only changes to a person created in the same group commit and skips them on an
    older one, so those would differ with the batch boundaries, which differ between the two sides.)"""
    out = [ev("$pageview", f"anon-{n}-{i}", f"2024-05-01T{i % 24:02d}:{n % 60:02d}:00Z",
              **{"$current_url": f"https://x.test/{i}", "$browser": "Firefox"}) for i in range(20)]
    out += [
        ev("$identify", f"user-{n}", "2024-05-02T00:00:00Z",
           **{"$anon_distinct_id": f"anon-{n}-1", "$set": {"plan": "pro"}}),
        ev("$create_alias", f"user-{n}", "2024-05-02T00:01:00Z", alias=f"anon-{n}-2"),
        ev("$merge_dangerously", f"user-{n}", "2024-05-02T00:02:00Z", alias=f"user-{n - 1}" if n else f"anon-{n}-3"),
        ev("$set", f"user-{n}", "2024-05-02T00:03:00Z", **{"$set": {"plan": "team"}, "$set_once": {"first": n}}),
        ev("$groupidentify", f"user-{n}", "2024-05-02T00:04:00Z",
           **{"$group_type": "company", "$group_key": "acme", "$group_set": {"size": 5 + n}}),
        ev("buy", f"user-{n}", "2024-05-02T00:05:00Z", **{"$groups": {"company": "acme"}, "$set_once": {"first": "b"}}),
    ]
    return out


def assert_same(src, src_project, dst_project):
    dst_project.flush()
    dst_db = dst_project.srv.app.config.db_path
    assert events(dst_db, dst_project.id) == events(src.app.config.db_path, src_project.id)
    assert persons(dst_db, dst_project.id) == persons(src.app.config.db_path, src_project.id)


def source_server(tmp_path, clock):
    return InProcessServer(Config(data_dir=tmp_path / "src", forward_batch_events=40, metrics_token=TOKEN), clock=clock,
                           start_forwarder=False)


@pytest.fixture
def pair(tmp_path):
    clock = Clock()
    port = free_port()
    # flush() drives the source's forwarding: no background sends under the assertions.
    servers = {"src": source_server(tmp_path, clock), "dst": InProcessServer(Config(data_dir=tmp_path / "dst"), port=port)}
    src_p, dst_p = Project(servers["src"], "source"), Project(servers["dst"], "destination")
    yield servers, src_p, dst_p, clock, tmp_path, port
    for s in servers.values():
        if s is not None:
            s.close()


def test_forwarded_events_and_persons_are_equal_and_backfill_sends_what_was_stored_before(pair):
    servers, src_p, dst_p, clock, tmp_path, _ = pair
    src = servers["src"]
    send(src_p, *person_events(0))  # stored before forwarding was set
    other = Project(src, "not forwarded")
    # The CLI beside the running server, as a user sets it: all stored events first, then every new one.
    r = subprocess.run([sys.executable, str(ROOT / "app.py"), "forward", "set", "--data-dir", str(tmp_path / "src"),
                        "--project", str(src_p.id), "--host", dst_p.url, "--project-api-key", dst_p.token,
                        "--backfill", "all", "--json"], capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"project_id": src_p.id, "host": dst_p.url, "forwarding": True, "backfill": True}
    send(src_p, *person_events(1))
    send(other, ev("elsewhere", "x"))
    [status] = src.app.forwarder.status()
    assert (status.project_id, status.waiting, status.backfilling) == (src_p.id, 52, True)
    assert status.oldest_age_seconds is not None and status.sent == 0
    assert src.app.forwarder.flush()
    assert_same(src, src_p, dst_p)
    [status] = src.app.forwarder.status()
    assert (status.waiting, status.sent, status.failures, status.backfilling) == (0, 52, 0, False)
    con = sqlite3.connect(src.app.config.db_path)
    assert con.execute("SELECT count(*) FROM forward_outbox").fetchone()[0] == 0
    con.close()
    # Live events keep going; `forward off` stops queueing them.
    send(src_p, ev("later", "user-1", "2024-05-03T00:00:00Z"))
    assert src.app.forwarder.flush()
    assert_same(src, src_p, dst_p)
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "forward", "status", "--data-dir",
                          str(tmp_path / "src"), "--json"], capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert [(s["project_id"], s["sent"], s["waiting"]) for s in json.loads(out.stdout)] == [(src_p.id, 53, 0)]
    assert src.store.stop_forwarding(src_p.id)
    send(src_p, ev("after-off", "user-1", "2024-05-03T00:00:00Z"))
    assert src.app.forwarder.status() == [] and src.app.forwarder.flush()
    assert len(events(dst_p.srv.app.config.db_path, dst_p.id)) == 53


def test_a_destination_down_for_a_day_is_caught_up_in_order_and_a_restarted_source_resumes(pair):
    servers, src_p, dst_p, clock, tmp_path, port = pair
    src = servers["src"]
    src.store.set_forwarding(src_p.id, dst_p.url, dst_p.token)
    servers["dst"].close()  # down
    servers["dst"] = None
    for n in range(8):
        send(src_p, *person_events(n))  # 208 events in 8 requests
    assert not src.app.forwarder.flush()
    [s] = src.app.forwarder.status()
    assert (s.waiting, s.sent, s.failures, s.consecutive_failures) == (208, 0, 1, 1)
    assert "refused" in s.last_error.lower() and 0.5 <= s.retry_in_seconds <= 1.0
    assert not src.app.forwarder.flush() and src.app.forwarder.status()[0].failures == 1  # backing off
    # A day of failures: backoff doubles with jitter up to 5 minutes, never more.
    waits = []
    for _ in range(450):
        clock.t += src.app.forwarder.status()[0].retry_in_seconds
        assert not src.app.forwarder.flush()
        waits.append(src.app.forwarder.status()[0].retry_in_seconds)
    assert max(waits) <= 300 and min(waits[-50:]) >= 150 and sum(waits) > 24 * 3600
    assert src.app.forwarder.status()[0].failures == 451
    # The destination is back; the next attempt (at most 5 minutes later) sends two batches, then
    # the source is restarted: it resumes from its outbox.
    servers["dst"] = dst = InProcessServer(Config(data_dir=tmp_path / "dst"), port=port)
    dst_p.srv = dst
    assert not src.app.forwarder.flush()  # still waiting out the backoff
    clock.t += 301
    assert not src.app.forwarder.flush(batches=2)
    dst_p.flush()
    assert len(events(dst.app.config.db_path, dst_p.id)) == 80
    src.close()
    servers["src"] = src = source_server(tmp_path, clock)
    [s] = src.app.forwarder.status()
    assert (s.waiting, s.sent, s.consecutive_failures) == (128, 80, 0)
    assert s.oldest_age_seconds > 24 * 3600
    assert src.app.forwarder.flush()
    assert_same(src, src_p, dst_p)  # same events in the same stored order: nothing lost, none twice
    assert src.app.forwarder.status()[0].sent == 208


class FakePostHog(http.server.BaseHTTPRequestHandler):
    """A tiny /batch/ that answers the scripted statuses first, then 200, and keeps every body."""
    script = []
    bodies = []

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw)
        FakePostHog.bodies.append((self.path, body))
        status, headers = FakePostHog.script.pop(0) if FakePostHog.script else (200, {})
        if callable(status):
            status = status(body)
        self.send_response(status)
        for k, v in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b'{"status": 1}' if status == 200 else b'{"detail": "<b>no</b>"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_posthog():
    FakePostHog.script, FakePostHog.bodies = [], []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakePostHog)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_429_retry_after_is_honoured_and_the_same_events_are_resent(pair, fake_posthog):
    servers, src_p, _, clock, _, _ = pair
    src = servers["src"]
    src.store.set_forwarding(src_p.id, fake_posthog + "/", "phc_destination")
    FakePostHog.script = [(429, {"Retry-After": "120"})]
    send(src_p, *person_events(0)[:10])
    assert not src.app.forwarder.flush()
    [s] = src.app.forwarder.status()
    assert s.retry_in_seconds >= 120 and "429" in s.last_error and s.waiting == 10
    m = scrape(src)
    assert value(m, "phlite_forwarding_pending_events") == 10 and value(m, "phlite_forwarding_failures_total") == 1
    clock.t += 100
    assert value(scrape(src), "phlite_forwarding_lag_seconds") >= 100
    assert not src.app.forwarder.flush() and len(FakePostHog.bodies) == 1  # not before Retry-After
    clock.t += 21
    assert src.app.forwarder.flush() and len(FakePostHog.bodies) == 2
    (path1, first), (path2, second) = FakePostHog.bodies
    assert path1 == path2 == "/batch/" and first == second
    assert first["api_key"] == "phc_destination" and "historical_migration" not in first and "sent_at" not in first
    stored = events(src.app.config.db_path, src_p.id)
    assert [(e["uuid"], e["event"], e["distinct_id"], e["properties"]) for e in first["batch"]] == [
        (u, name, d, props) for u, name, d, props, _ in stored]
    assert first["batch"][0]["timestamp"] == "2024-05-01T00:00:00.000000Z"
    [s] = src.app.forwarder.status()
    assert (s.waiting, s.sent, s.failures, s.consecutive_failures, s.retry_in_seconds) == (0, 10, 1, 0, None)
    m = scrape(src)
    assert (value(m, "phlite_forwarding_pending_events"), value(m, "phlite_forwarding_sent_events_total")) == (0, 10)
    assert src.store.stop_forwarding(src_p.id) and value(scrape(src), "phlite_forwarding_pending_events") is None


def test_413_halves_the_batch_and_a_lone_event_too_large_is_dropped_counted(pair, fake_posthog):
    servers, src_p, _, clock, _, _ = pair
    src = servers["src"]
    src.store.set_forwarding(src_p.id, fake_posthog, "phc_destination")
    too_big = lambda body: 413 if len(body["batch"]) > 10 or any(e["event"] == "huge" for e in body["batch"]) else 200  # noqa: E731
    FakePostHog.script = [(too_big, {})] * 100
    send(src_p, *[ev("e", f"u{i}", "2024-05-01T00:00:00Z") for i in range(30)], ev("huge", "u1"), ev("last", "u1"))
    assert src.app.forwarder.flush()
    assert len(FakePostHog.bodies[0][1]["batch"]) == 32  # all that waited (under forward_batch_events)
    accepted = [b["batch"] for _, b in FakePostHog.bodies if too_big(b) == 200]
    assert max(len(b) for b in accepted) <= 10 and len(FakePostHog.bodies) < 20
    assert [e["event"] for b in accepted for e in b] == ["e"] * 30 + ["last"]  # in order, once each
    [s] = src.app.forwarder.status()
    assert (s.waiting, s.sent, s.dropped, s.consecutive_failures) == (0, 31, 1, 0) and "413" in s.last_error


def test_console_settings_set_show_and_stop_forwarding(server, project, fake_posthog):
    from support import console_user

    FakePostHog.script = [(400, {})] * 50
    admin, member = console_user(server, "admin"), console_user(server, "member")
    base = f"/project/{project.id}/settings"
    assert "does not forward" in admin.text(base)
    r = admin.post(f"/project/{project.id}/forwarding", {"host": "ftp://nope", "project_api_key": "phc_x"})
    assert r.status == 200 and b'data-field="host"' in r.body and server.store.forward_destinations(project.id) == []
    r = admin.post(f"/project/{project.id}/forwarding", {"host": fake_posthog, "project_api_key": "phc_dest",
                                                         "backfill": "none"})
    assert r.status == 303
    [dest] = server.store.forward_destinations(project.id)
    assert (dest["host"], dest["project_api_key"]) == (fake_posthog, "phc_dest")
    send(project, ev("$pageview", "d1"))
    server.app.forwarder.flush()
    page = member.text(base)  # members see the status (not the key, nor the form)
    assert 'data-waiting="1"' in page and 'data-failures="0"' not in page and fake_posthog in page
    assert "&lt;b&gt;no&lt;/b&gt;" in page and "<b>no</b>" not in page and "phc_dest" not in page
    assert member.post(f"/project/{project.id}/forwarding", {"action": "off"}).status == 403
    assert "phc_dest" in admin.text(base)
    assert admin.post(f"/project/{project.id}/forwarding", {"action": "off"}).status == 303
    assert "does not forward" in admin.text(base) and server.store.forward_destinations(project.id) == []


def test_switching_api_host_with_no_gap_migrate_then_forward_after_migration(pair):
    # docs/lifecycle.md "Forwarding" (switching api_host with no gap): history through the migration,
    # then the events stored since its last batch and every new one through forwarding.
    servers, src_p, dst_p, clock, tmp_path, _ = pair
    src = servers["src"]
    send(src_p, *person_events(0))
    cp = tmp_path / "cp.json"
    r = subprocess.run([sys.executable, str(ROOT / "app.py"), "migrate", "posthog", "--data-dir", str(tmp_path / "src"),
                        "--project", str(src_p.id), "--host", dst_p.url, "--project-api-key", dst_p.token,
                        "--personal-api-key", dst_p.key, "--checkpoint", str(cp), "--json"],
                       capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["events_sent"] == 26, r.stderr
    send(src_p, *person_events(1))  # after the migration, before forwarding: the gap to close

    def forward_set(*args):
        return subprocess.run([sys.executable, str(ROOT / "app.py"), "forward", "set", "--data-dir",
                               str(tmp_path / "src"), "--project", str(src_p.id), "--project-api-key", dst_p.token,
                               "--backfill", "after-migration", "--checkpoint", str(cp), *args],
                              capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert forward_set("--host", "http://elsewhere.test").returncode == 1  # another migration's checkpoint
    assert forward_set("--host", dst_p.url).returncode == 0
    send(src_p, *person_events(2))
    assert src.app.forwarder.status()[0].waiting == 52
    assert src.app.forwarder.flush()
    assert_same(src, src_p, dst_p)
    assert src.app.forwarder.status()[0].sent == 52


def test_a_batch_holds_at_most_4_mib_of_events_however_large_they_are(pair, fake_posthog):
    servers, src_p, _, clock, _, _ = pair
    src = servers["src"]
    src.store.set_forwarding(src_p.id, fake_posthog, "phc_destination")
    big = "x" * 300_000
    send(src_p, *[ev("big", f"u{i}", "2024-05-01T00:00:00Z", blob=big) for i in range(30)])
    assert src.app.forwarder.flush()
    sizes = [len(b["batch"]) for _, b in FakePostHog.bodies]
    assert sizes == [14, 14, 2], sizes  # 14 x 300 kB is past 4 MiB: the 14th closes the batch
    assert [e["distinct_id"] for _, b in FakePostHog.bodies for e in b["batch"]] == [f"u{i}" for i in range(30)]


def test_a_source_killed_between_a_send_and_its_ack_resends_that_batch_and_the_destination_keeps_it_once(pair):
    servers, src_p, dst_p, clock, tmp_path, _ = pair
    src = servers["src"]
    src.store.set_forwarding(src_p.id, dst_p.url, dst_p.token)
    for n in range(4):
        send(src_p, *person_events(n))  # 104 events
    src.close()
    servers["src"] = None
    # `python app.py` as a user runs it; its forwarder kills it (-9) once the second batch was answered 200.
    r = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", "0", "--data-dir", str(tmp_path / "src"),
                        "--forward-batch-events", "40"], capture_output=True, text=True, cwd=str(ROOT), timeout=120,
                       env={**os.environ, "PHLITE_FORWARD_KILL_AFTER_BATCHES": "2"})
    assert r.returncode == -9, r.stderr
    dst_p.flush()
    assert len(events(dst_p.srv.app.config.db_path, dst_p.id)) == 80
    servers["src"] = src = source_server(tmp_path, clock)
    [s] = src.app.forwarder.status()
    assert (s.waiting, s.sent) == (64, 40)  # the second batch was sent and not yet forgotten: sent again
    assert src.app.forwarder.flush()
    assert_same(src, src_p, dst_p)  # every event once, in stored order
