"""Running it for real (issue 15): `/metrics` in Prometheus's text format behind its token, read back with
prometheus_client's own parser, counting what the server did; `/healthz` with its disk check."""

import threading

from prometheus_client.parser import text_string_to_metric_families

from support import Project, assert_error, ev, http
from phlite.monitor import ForwardingStats

TOKEN = "metrics-token-for-tests"


def scrape(srv):
    r = http("GET", srv.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 200, r.body
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(r.body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_are_off_without_a_token_and_refuse_every_other_credential(server, make_server):
    assert_error(http("GET", server.url + "/metrics"), 404, code="not_found")
    srv = make_server(metrics_token=TOKEN)
    p = Project(srv)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {p.key}"},
                    {"Authorization": f"Bearer {p.token}"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        r = http("GET", srv.url + "/metrics", headers=headers)
        assert_error(r, 401)
        assert b"phlite_" not in r.body
    # Not a public route: no CORS, so no other site's page can read it even with the token.
    r = http("GET", srv.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Origin": "https://evil.example"})
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_metrics_count_what_the_server_did(make_server):
    srv = make_server(metrics_token=TOKEN)
    p = Project(srv)
    before = scrape(srv)
    assert value(before, "phlite_events_accepted_total") == 0
    assert value(before, "phlite_writer_healthy") == 1
    assert value(before, "phlite_info", version=__import__("phlite").__version__) == 1
    assert value(before, "phlite_process_resident_memory_bytes") > 10 * 2**20
    assert value(before, "phlite_disk_free_bytes") > 0 and value(before, "phlite_database_bytes") > 0

    batch = [ev("a", "u1"), ev("b", "u2"), {"event": "", "distinct_id": "u3"}, {"event": "c", "distinct_id": ""}]
    assert http("POST", p.url + "/batch/", {"api_key": p.token, "batch": batch}).status == 200
    assert http("POST", p.url + "/batch/", {"api_key": "phc_nope", "batch": batch}).status == 401
    for _ in range(3):
        assert http("POST", p.url + "/flags/?v=2", {"api_key": p.token, "distinct_id": "u1"}).status == 200
    assert p.api("GET", "/api/projects/@project/events/").status == 200
    p.flush()

    s = scrape(srv)
    assert value(s, "phlite_events_accepted_total") == 4
    assert value(s, "phlite_events_stored_total") == 2
    assert value(s, "phlite_events_dropped_total", reason="missing_event_name") == 1
    assert value(s, "phlite_events_dropped_total", reason="missing_distinct_id") == 1
    assert value(s, "phlite_events_quarantined_total") == 0
    assert value(s, "phlite_queue_requests") == 0 and value(s, "phlite_writer_lag_seconds") == 0
    assert value(s, "phlite_spool_segments") >= 1 and value(s, "phlite_spool_bytes") > 0
    assert value(s, "phlite_requests_total", method="POST", route="/batch", status="200") == 1
    assert value(s, "phlite_requests_total", method="POST", route="/batch", status="401") == 1
    assert value(s, "phlite_requests_total", method="POST", route="/flags", status="200") == 3
    hist = dict(method="POST", route="/flags")
    assert value(s, "phlite_request_duration_seconds_count", **hist) == 3
    assert value(s, "phlite_request_duration_seconds_bucket", le="+Inf", **hist) == 3
    assert 0 < value(s, "phlite_request_duration_seconds_sum", **hist) < 30
    # Routes are labelled by their rule, never by a path that holds an id (bounded label values).
    assert value(s, "phlite_requests_total", method="GET", route="/api/projects/<project>/events", status="200") == 1
    assert not any(str(p.id) in dict(labels).get("route", "") for _, labels in s)


def test_queue_depth_and_writer_lag_while_the_writer_is_held(make_server):
    srv = make_server(metrics_token=TOKEN)
    p = Project(srv)
    gate, entered = threading.Event(), threading.Event()
    threading.Thread(target=lambda: srv.app.ingestion.call(lambda: (entered.set(), gate.wait(30))), daemon=True).start()
    try:
        assert entered.wait(10)
        for k in range(2):
            assert http("POST", p.url + "/batch/", {"api_key": p.token, "batch": [ev(f"e{k}", "u")]}).status == 200
        s = scrape(srv)
        assert value(s, "phlite_queue_requests") == 2 and value(s, "phlite_queue_bytes") > 0
        assert value(s, "phlite_writer_lag_seconds") > 0
        assert value(s, "phlite_events_accepted_total") == 2 and value(s, "phlite_events_stored_total") == 0
    finally:
        gate.set()
    p.flush()
    s = scrape(srv)
    assert value(s, "phlite_queue_requests") == 0 and value(s, "phlite_writer_lag_seconds") == 0
    assert value(s, "phlite_events_stored_total") == 2


def test_a_source_such_as_the_forwarder_adds_its_numbers(make_server):
    srv = make_server(metrics_token=TOKEN)
    srv.app.monitor.add_source(lambda: ForwardingStats(pending_events=7, lag_seconds=1.5, sent=40, failures=2).samples())
    s = scrape(srv)
    assert value(s, "phlite_forwarding_pending_events") == 7
    assert value(s, "phlite_forwarding_lag_seconds") == 1.5
    assert value(s, "phlite_forwarding_sent_events_total") == 40
    assert value(s, "phlite_forwarding_failures_total") == 2


def test_healthz_reports_ready_writer_and_disk(server, make_server):
    r = http("GET", server.url + "/healthz")
    assert r.status == 200
    health = r.json()
    assert health["status"] == "ok" and health["ready"] is True and health["writer"] == "running"
    assert health["reason"] is None and health["disk_free_bytes"] > health["disk_min_free_bytes"] == 256 * 2**20

    # A disk under the margin: 503 before SQLite starts refusing writes, while capture still stores.
    srv = make_server(health_min_free_bytes=1 << 62)
    r = http("GET", srv.url + "/healthz")
    assert r.status == 503 and r.headers["Retry-After"] == "5"
    health = r.json()
    assert health["status"] == "unavailable" and health["ready"] is True and health["writer"] == "running"
    assert "MiB free on the data dir's disk" in health["reason"]
    p = Project(srv)
    assert http("POST", p.url + "/batch/", {"api_key": p.token, "batch": [ev("x", "u")]}).status == 200

    srv = make_server(health_min_free_bytes=0)  # no check
    assert http("GET", srv.url + "/healthz").json()["status"] == "ok"


def test_route_stats_counted_from_many_threads_add_up():
    from phlite.monitor import BUCKETS, RouteStats

    stats = RouteStats("POST", "/e")
    start = threading.Barrier(8)

    def count(k):
        start.wait()
        for i in range(5000):
            stats.record(BUCKETS[i % len(BUCKETS)] if k % 2 else 99.0, 200 if i % 10 else 503)

    threads = [threading.Thread(target=count, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    buckets, total, count_, statuses = stats.snapshot()
    assert count_ == 40_000 and statuses == {200: 36_000, 503: 4_000}
    assert buckets[-1] == 20_000  # 99 s: past the last bound
    assert buckets[0] == 4 * (5000 // len(BUCKETS) + (5000 % len(BUCKETS) > 0))  # a value equal to a bound is in it
    assert abs(total - (20_000 * 99.0 + 4 * sum(BUCKETS[i % len(BUCKETS)] for i in range(5000)))) < 1e-3
