"""Hostile or odd values that reach the writer: edge timestamps every reader must format, merge ids
cut like distinct ids (issue 11)."""

from urllib.parse import urlencode

import pytest

from support import assert_error, ev, http, person, send

# Every edge a client can send: year 0 and just before year 1, the first and last representable
# instants, beyond them, epoch forms at the extremes, and zones that push a date over an edge.
EDGE_TIMESTAMPS = [
    "0000-01-01T00:00:00Z", "0000-12-31T23:59:59.999Z", "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59-05:00", "-000001-01-01T00:00:00Z",
    "+275760-09-13T00:00:00Z", "1969-12-31T23:59:59.9995Z", "1970-01-01T00:00:00Z", "0000-02-29",
    -62_167_219_200_000, -62_135_596_800_001, 253_402_300_800_000, 10**17, -(10**17), 10**30, 1e308,
    "9999999999999", "0000000000", "0000000000000000000", "Mon, 01 Jan 0000 00:00:00 +0000",
    "1/1/0000", "0000/1/1 12:00 PM",
]


def _page(project, path):
    r = project.api("GET", path)
    assert r.status == 200, (path, r.status, r.body[:300])
    return r.json()


def test_every_edge_timestamp_is_stored_as_one_every_list_can_format(project):
    events = []
    for i, ts in enumerate(EDGE_TIMESTAMPS):
        events.append({"event": "edge", "distinct_id": f"edge-{i}", "timestamp": ts,
                       "properties": {"$set": {"i": i}, "$groups": {"company": f"c{i}"}}})
        events.append({"event": "$groupidentify", "distinct_id": f"edge-{i}", "timestamp": ts,
                       "properties": {"$group_type": "company", "$group_key": f"c{i}", "$group_set": {"i": i}}})
        # An offset far in the past, and a sent_at skew towards year 0.
        events.append({"event": "offset", "distinct_id": f"edge-{i}", "offset": 63_000_000_000_000 + i})
    send(project, *events)
    r = http("POST", project.url + "/batch/", {"api_key": project.token, "sent_at": "9999-12-31T23:59:59Z",
                                               "batch": [ev("skew", "edge-skew", "0000-06-01T00:00:00Z")]})
    assert r.status == 200, r.body
    stored = project.events()
    assert len(stored) == 3 * len(EDGE_TIMESTAMPS) + 1
    for e in stored:
        assert "0001-01-01T00:00:00.000Z" <= e["timestamp"] <= "9999-12-31T23:59:59.999Z", e
    persons = _page(project, "/api/projects/@project/persons/?limit=1000")["results"]
    assert len(persons) == len(EDGE_TIMESTAMPS) + 1
    groups = _page(project, "/api/projects/@project/groups/?" + urlencode({"group_type_index": 0, "limit": 1000}))
    assert len(groups["results"]) == len(EDGE_TIMESTAMPS)
    for i in (0, 4, 5):
        _page(project, "/api/projects/@project/groups/find?" + urlencode({"group_type_index": 0, "group_key": f"c{i}"}))
        _page(project, "/api/projects/@project/events/?" + urlencode({"distinct_id": f"edge-{i}"}))
    one = persons[0]
    _page(project, f"/api/projects/@project/persons/{one['uuid']}/")
    _page(project, f"/api/projects/@project/events/?person_id={one['uuid']}")


def test_a_year_0_row_already_stored_still_reads(project):
    # Rows written by an older phlite (it accepted year 0): the readers format them, they do not 500.
    send(project, ev("old", "old-1"))
    with project.srv.store.db.connection_context():
        project.srv.store.db.execute_sql("UPDATE event SET timestamp = ? WHERE project_id = ?",
                                         (-62_167_219_200_000, project.id))
    [e] = project.events()
    assert e["timestamp"] == "0000-01-01T00:00:00.000Z"


@pytest.mark.parametrize("event, key", [("$identify", "$anon_distinct_id"), ("$create_alias", "alias"),
                                        ("$merge_dangerously", "alias")])
def test_merge_ids_get_the_distinct_id_cut_and_nul_handling(project, event, key):
    long_id, nul_id = "a" * 300, "b\x00c"
    send(project, ev("anon", long_id), ev("anon", nul_id))
    send(project, ev(event, "user-long", **{key: long_id}), ev(event, "user-nul", **{key: nul_id}))
    p = person(project, "user-long")
    assert sorted(p["distinct_ids"]) == sorted(["a" * 200, "user-long"]), p["distinct_ids"]
    p = person(project, "user-nul")
    assert sorted(p["distinct_ids"]) == sorted(["b\ufffdc", "user-nul"]), p["distinct_ids"]


def _quarantined(srv, project_id):
    with srv.store.db.connection_context():
        return srv.store.quarantined(project_id)


def test_one_unstorable_value_sinks_only_its_own_event(project):
    # u64 max is valid JSON and storable; $add past it is not a 64-bit integer any more.
    body = [{"$token": project.token, "$distinct_id": "big", "$set": {"n": 18446744073709551615}},
            {"$token": project.token, "$distinct_id": "big", "$add": {"n": 1}},
            {"$token": project.token, "$distinct_id": "neighbour", "$set": {"ok": True}}]
    r = http("POST", project.url + "/engage", body)
    assert r.status == 200, r.body
    project.flush()
    assert person(project, "neighbour")["properties"] == {"ok": True}
    # Stored losslessly as text: the exact sum, nothing rounded, nothing lost.
    assert person(project, "big")["properties"]["n"] == "18446744073709551616"
    assert len(project.events()) == 3
    spool = project.srv.app.config.spool_dir
    assert not (spool / "rejected.log").exists()


def test_an_event_the_writer_cannot_store_is_quarantined_alone_with_its_reason(project):
    # A poison event (here: a group key the store cannot bind, made by a test-only hook into the
    # writer's one event path) goes to the bounded quarantine; its neighbours are stored.
    srv = project.srv
    persons = srv.app.ingestion.persons
    process = persons.process

    def poison(store, pid, events, now_ms):
        if any(e.event == "poison" for e in events):
            raise ValueError("cannot store this one")
        return process(store, pid, events, now_ms)

    persons.process = poison
    try:
        send(project, ev("good", "a"), ev("poison", "b"), ev("good", "c"))
    finally:
        persons.process = process
    assert sorted(e["event"] for e in project.events()) == ["good", "good"]
    [q] = _quarantined(srv, project.id)
    assert q["reason"] == "ValueError: cannot store this one" and q["event"]["event"] == "poison"
    assert srv.app.ingestion.writer.dropped["quarantined"] >= 1


def _gzip_bomb_of_empty_objects(target_bytes):
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(b"[")]
    chunk = b"{}," * 100_000
    for _ in range(target_bytes // len(chunk)):
        out.append(c.compress(chunk))
    out.append(c.compress(b"{}]"))
    out.append(c.flush())
    return b"".join(out)


@pytest.mark.parametrize("path", ["/batch/", "/e/", "/flags/?v=2"])
def test_a_small_body_of_many_tiny_values_is_refused_before_it_is_parsed(project, path):
    # 48 KB of gzip that decompresses under max_decompressed_bytes but parses into ~16 M dicts (1.5 GB).
    body = _gzip_bomb_of_empty_objects(40 * 1024 * 1024)
    assert len(body) < 100_000
    r = http("POST", project.url + path, body, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert_error(r, 413, code="payload_too_large", detail="payload holds more than 1000000 JSON values")


def test_events_per_request_are_bounded_before_the_200(make_server):
    srv = make_server(max_request_events=1000)
    from support import Project

    p = Project(srv)
    batch = [{"event": "e", "distinct_id": "d"} for _ in range(1001)]
    r = http("POST", p.url + "/batch/", {"api_key": p.token, "batch": batch})
    assert_error(r, 413, code="payload_too_large", detail="request holds 1001 events; at most 1000 per request")
    r = http("POST", p.url + "/batch/", {"api_key": p.token, "batch": batch[:1000]})
    assert r.status == 200


def test_junk_group_types_take_no_slot_and_do_not_sink_the_event(project):
    junk = {"": "k", " ": "k", "a\x00b": "k", "x" * 401: "k", "nul-key": None, "empty-key": ""}
    send(project, ev("junk", "u1", **{"$groups": {**junk, "company": "acme"}}),
         ev("$groupidentify", "u1", **{"$group_type": "", "$group_key": "k", "$group_set": {"a": 1}}))
    types = _page(project, "/api/projects/@project/groups_types/")
    assert [t["group_type"] for t in types] == ["company"]
    [e] = [e for e in project.events() if e["event"] == "junk"]
    assert e["properties"]["$groups"] == {"company": "acme"} and e["properties"]["$group_0"] == "acme"
    # The four slots left are still there for real types.
    send(project, ev("real", "u2", **{"$groups": {f"t{i}": "k" for i in range(4)}}))
    assert len(_page(project, "/api/projects/@project/groups_types/")) == 5
