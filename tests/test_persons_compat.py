"""Persons as PostHog's own person-processing tests expect (issue 14, "Persons"): deterministic uuid5
person ids, `$creator_event_uuid`, U+0000 stored as U+FFFD, events that never change the person, when
automatic properties are written, and Mixpanel's deduplication key."""

import json
import uuid

from support import ev, http, person, send


def raw_person(project, distinct_id):
    r = project.api("GET", f"/api/projects/@project/persons/?distinct_id={distinct_id}")
    (p,) = r.json()["results"]
    return p


def test_person_uuid_is_posthogs_uuid5_of_project_and_first_distinct_id(project):
    send(project, ev("first", "user-42"))
    expected = uuid.uuid5(uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22"), f"{project.id}:user-42")
    assert person(project, "user-42")["uuid"] == str(expected)
    # A merge creating one person for two new ids: the event's own distinct id names it, as in PostHog.
    send(project, ev("$identify", "signed-up", **{"$anon_distinct_id": "anon-9"}))
    expected = uuid.uuid5(uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22"), f"{project.id}:signed-up")
    assert person(project, "anon-9")["uuid"] == str(expected)


def test_new_person_records_its_creator_event_uuid(project):
    creator = "0190a4e1-7d2b-7c3a-8e4f-1234567890ab"
    send(project, {**ev("first", "c-1", **{"$set": {"a": 1}}), "uuid": creator})
    send(project, {**ev("second", "c-1", **{"$set": {"a": 2}}), "uuid": "0190a4e1-7d2b-7c3a-8e4f-1234567890ac"})
    assert raw_person(project, "c-1")["properties"] == {"$creator_event_uuid": creator, "a": 2}


def test_nul_in_person_string_values_is_stored_as_replacement_character(project):
    send(project, ev("$set", "nul", **{"$set": {"name": "a\u0000b", "list": ["x\u0000"], "k\u0000": 1},
                                       "$set_once": {"first": "\u0000"}}))
    props = person(project, "nul")["properties"]
    assert props == {"name": "a\ufffdb", "list": ["x\ufffd"], "k\ufffd": 1, "first": "\ufffd"}


def test_exception_and_heatmap_events_never_change_the_person(project):
    send(project, ev("$pageview", "ex", **{"$set": {"plan": "free"}, "$current_url": "https://a.example/"}))
    before = person(project, "ex")
    send(project,
         ev("$exception", "ex", **{"$set": {"plan": "pro"}, "$set_once": {"x": 1}, "$unset": ["plan"],
                                   "$current_url": "https://a.example/boom", "$browser": "Chrome"}),
         ev("$$heatmap", "ex", **{"$set": {"plan": "pro"}, "$current_url": "https://a.example/heat"}))
    assert person(project, "ex") == before
    # They are stored as sent, and a new distinct id still gets a person (with nothing from the event).
    send(project, ev("$exception", "ex-new", **{"$set": {"plan": "pro"}}))
    assert person(project, "ex-new")["properties"] == {}
    stored = {e["event"]: e for e in project.events(distinct_id="ex")}
    assert stored["$exception"]["properties"]["$set"] == {"plan": "pro"}


def test_automatic_properties_alone_update_the_person_only_on_person_events(project):
    send(project, ev("$pageview", "auto", **{"$current_url": "https://a.example/1", "$browser": "Firefox"}))
    send(project, ev("$pageview", "auto", **{"$current_url": "https://a.example/2", "$geoip_city_name": "x",
                                             "$set": {"$geoip_city_name": "Paris"}}))
    props = person(project, "auto")["properties"]
    assert props["$current_url"] == "https://a.example/1" and "$geoip_city_name" not in props
    for name in ("$identify", "$set"):  # PostHog's person events write every change
        send(project, ev(name, "auto", **{"$current_url": f"https://a.example/{name}"}))
        assert person(project, "auto")["properties"]["$current_url"] == f"https://a.example/{name}"
    send(project, ev("$pageview", "auto", **{"$current_url": "https://a.example/3", "$unset": ["$browser"]}))
    props = person(project, "auto")["properties"]
    assert props["$current_url"] == "https://a.example/3" and "$browser" not in props


def mp_track(project, path, events):
    body = json.dumps(events).encode()
    r = http("POST", f"{project.url}/{path}?verbose=1", body, {"Content-Type": "application/json"})
    assert r.status == 200 and r.json() == {"status": 1, "error": None}, r.body


def test_mixpanel_dedupes_on_name_distinct_id_second_and_insert_id(project):
    def mp(name="bought", distinct_id="m-1", time=1767225600.25, insert_id="ins-1"):
        return {"event": name, "properties": {"token": project.token, "distinct_id": distinct_id, "time": time,
                                              "$insert_id": insert_id}}

    mp_track(project, "track", [mp(), mp(time=1767225600.75)])  # the same second: one event
    mp_track(project, "import", [mp(time=1767225600250)])  # ms, same second: still the same event
    mp_track(project, "track", [mp(name="viewed"), mp(distinct_id="m-2"), mp(time=1767225601.0),
                                mp(insert_id="ins-2")])  # each differs in one of the four: four more
    assert len(project.events()) == 5
