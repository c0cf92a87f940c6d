"""Persons and groups through real HTTP: events in through /batch, results read back through
the persons and groups API. Tables for property update order (docs/protocol.md "Persons: property updates"), the
illegal ids (docs/protocol.md "Persons: illegal distinct ids"), every merge case (docs/protocol.md "Persons: merges"), group types (docs/protocol.md "Groups: group types", docs/protocol.md "Groups: $groupidentify"), and Mixpanel's
people and group operations sent by the real mixpanel-python client."""

from urllib.parse import urlencode

import pytest

from support import Project, assert_error, creator_checked, ev, http, person, send
from phlite.ingest.rules import is_illegal_id


def all_persons(project, **params):
    r = project.api("GET", "/api/projects/@project/persons/?" + urlencode({"limit": 1000, **params}))
    assert r.status == 200, r.body
    return r.json()["results"]


def merge_event(kind, target, other, **props):
    if kind == "$identify":
        return ev("$identify", target, **{"$anon_distinct_id": other}, **props)
    return ev(kind, target, alias=other, **props)


MERGE_KINDS = ["$identify", "$create_alias", "$merge_dangerously"]


# --- docs/protocol.md "Persons: property updates": $set_once, then $set, then $unset, against the properties before the event -----

UPDATE_TABLE = [
    # (id, properties before, the event's operations, properties after)
    ("set_once new key", {}, {"$set_once": {"a": 1}}, {"a": 1}),
    ("set_once keeps existing", {"a": 1}, {"$set_once": {"a": 2}}, {"a": 1}),
    ("set_once keeps stored null", {"a": None}, {"$set_once": {"a": 2}}, {"a": None}),
    ("set overwrites", {"a": 1}, {"$set": {"a": 2}}, {"a": 2}),
    ("set beats set_once in one event", {}, {"$set_once": {"a": 1}, "$set": {"a": 2}}, {"a": 2}),
    ("set beats set_once on existing", {"a": 0}, {"$set_once": {"a": 1}, "$set": {"a": 2}}, {"a": 2}),
    ("set null", {"a": 1}, {"$set": {"a": None}}, {"a": None}),
    ("set nested value", {"a": {"x": 1}}, {"$set": {"a": {"x": 2}}}, {"a": {"x": 2}}),
    ("set 1 over true", {"a": True}, {"$set": {"a": 1}}, {"a": 1}),
    ("unset list", {"a": 1, "b": 2}, {"$unset": ["a"]}, {"b": 2}),
    ("unset object keys", {"a": 1, "b": 2}, {"$unset": {"a": None}}, {"b": 2}),
    ("unset missing key", {"a": 1}, {"$unset": ["zzz"]}, {"a": 1}),
    ("existing key in set and unset is removed", {"a": 1}, {"$set": {"a": 2}, "$unset": ["a"]}, {}),
    ("new key in set and unset is set", {}, {"$set": {"n": 1}, "$unset": ["n"]}, {"n": 1}),
    ("new key in set_once and unset is set", {}, {"$set_once": {"n": 1}, "$unset": ["n"]}, {"n": 1}),
    ("existing key in set_once and unset is removed", {"a": 1}, {"$set_once": {"a": 2}, "$unset": ["a"]}, {}),
    ("all three", {"keep": 1, "gone": 2, "over": 3},
     {"$set_once": {"keep": 9, "once": 1}, "$set": {"over": 4, "new": 5}, "$unset": ["gone"]},
     {"keep": 1, "once": 1, "over": 4, "new": 5}),
]


@pytest.mark.parametrize("same_batch", [False, True], ids=["two batches", "one batch"])
@pytest.mark.parametrize("before,ops,after", [r[1:] for r in UPDATE_TABLE], ids=[r[0] for r in UPDATE_TABLE])
def test_property_update_order(project, before, ops, after, same_batch):
    first = ev("$set", "u", **{"$set": before}) if before else ev("first", "u")
    second = ev("$set", "u", **ops)
    if same_batch:
        send(project, first, second)
    else:
        send(project, first)
        send(project, second)
    assert person(project, "u")["properties"] == after


def test_top_level_set_and_set_once_are_applied(project):
    # posthog-js $identify and posthog-python $set put them on the event, not in properties.
    send(project, {"event": "$set", "distinct_id": "u", "$set": {"a": 1}, "$set_once": {"b": 2}, "properties": {}})
    assert person(project, "u")["properties"] == {"a": 1, "b": 2}


def test_person_created_on_first_event_with_its_properties(project):
    send(project, ev("pageview", "new-user", timestamp="2026-01-02T03:04:05Z", **{"$set": {"plan": "free"}}))
    p = person(project, "new-user")
    assert p["distinct_ids"] == ["new-user"]
    assert p["properties"] == {"plan": "free"}
    assert p["created_at"] == "2026-01-02T03:04:05.000Z"
    assert p["is_identified"] is False
    assert p["id"] == p["uuid"]


def test_automatic_person_properties(project):
    send(project, ev("$pageview", "u", **{
        "$browser": "Firefox", "$os": "Linux", "$current_url": "https://a.example/x", "utm_source": "news",
        "gclid": "g1", "other": "not copied", "$set": {"$browser": "explicit"},
        "$set_once": {"$initial_utm_source": "explicit-initial"},
    }))
    props = person(project, "u")["properties"]
    assert props == {
        "$browser": "explicit", "$initial_browser": "Firefox",
        "$os": "Linux", "$initial_os": "Linux",
        "$current_url": "https://a.example/x", "$initial_current_url": "https://a.example/x",
        "utm_source": "news", "$initial_utm_source": "explicit-initial",
        "gclid": "g1", "$initial_gclid": "g1",
    }
    # Later events: a change of automatic properties alone is not written (PostHog's rule, docs/protocol.md
    # "Automatic person properties"); together with another change it is.
    send(project, ev("$pageview", "u", **{"$browser": "Chrome", "$current_url": "https://a.example/y"}))
    assert person(project, "u")["properties"] == props
    send(project, ev("$pageview", "u", **{"$browser": "Chrome", "$current_url": "https://a.example/z",
                                          "$set": {"plan": "pro"}}))
    props = person(project, "u")["properties"]
    assert props["$browser"] == "Chrome" and props["$initial_browser"] == "Firefox" and props["plan"] == "pro"
    assert props["$current_url"] == "https://a.example/z"
    assert props["$initial_current_url"] == "https://a.example/x"


def test_automatic_properties_skip_os_on_server_events(project):
    send(project, ev("e", "srv", **{"$is_server": True, "$os": "Linux", "$os_version": "6", "$app_name": "api"}))
    assert person(project, "srv")["properties"] == {"$app_name": "api", "$initial_app_name": "api"}


def test_stored_event_keeps_what_was_sent(project):
    send(project, ev("$pageview", "u", **{"$browser": "Firefox"}))
    (e,) = project.events()
    assert "$set" not in e["properties"] and e["properties"]["$browser"] == "Firefox"


# --- illegal distinct ids never merge, docs/protocol.md "Persons: illegal distinct ids" ------------------------------------------------

ILLEGAL = [
    " ", "\t", "anonymous", "Anonymous", "GUEST", "distinctid", "distinct_id", "id", "not_authenticated", "email",
    "undefined", "UNDEFINED", "true", "False", "[object Object]", "NaN", "None", "none", "null", "0",
    '"anonymous"', "'guest'", '"null"', "'0'", '"[object Object]"', "'NaN'",
]
LEGAL_LOOKALIKES = ["Null", "NONE", "nan", "[object object]", "0.0", "00", "anonymous1", "guest 2", "'null",
                    "user@email"]


@pytest.mark.parametrize("bad", ILLEGAL)
def test_illegal_ids_table(bad):
    assert is_illegal_id(bad)


@pytest.mark.parametrize("ok", LEGAL_LOOKALIKES)
def test_legal_lookalikes_table(ok):
    assert not is_illegal_id(ok)


@pytest.mark.parametrize("bad", ["anonymous", "null", "'undefined'", "0", "[object Object]", " "])
@pytest.mark.parametrize("kind", MERGE_KINDS)
def test_merge_with_illegal_other_id_is_skipped(project, bad, kind):
    send(project, ev("pageview", bad), ev("pageview", "user"))
    send(project, merge_event(kind, "user", bad, **{"$set": {"email": "u@example.com"}}))
    u, b = person(project, "user"), person(project, bad)
    assert u["uuid"] != b["uuid"]
    assert u["distinct_ids"] == ["user"] and b["distinct_ids"] == [bad]
    assert u["properties"] == {"email": "u@example.com"}  # the event itself still counts
    assert u["is_identified"] is False
    assert len(all_persons(project)) == 2


@pytest.mark.parametrize("bad", ["guest", "None", '"email"'])
def test_merge_with_illegal_target_id_is_skipped(project, bad):
    send(project, ev("pageview", "anon-1"))
    send(project, merge_event("$identify", bad, "anon-1"))
    assert person(project, "anon-1")["distinct_ids"] == ["anon-1"]
    assert person(project, bad)["distinct_ids"] == [bad]


@pytest.mark.parametrize("ok", ["Null", "anonymous1"])
def test_legal_lookalike_merges(project, ok):
    send(project, ev("pageview", ok), merge_event("$identify", "user", ok))
    assert sorted(person(project, "user")["distinct_ids"]) == sorted(["user", ok])


# --- merges, docs/protocol.md "Persons: merges" ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MERGE_KINDS)
def test_merge_when_neither_has_a_person(project, kind):
    send(project, merge_event(kind, "user", "anon", **{"$set": {"email": "u@example.com"}}))
    p = person(project, "user")
    assert p == person(project, "anon")
    assert p["distinct_ids"] == ["anon", "user"]
    assert p["properties"] == {"email": "u@example.com"}
    assert p["is_identified"] is True
    assert len(all_persons(project)) == 1


@pytest.mark.parametrize("kind", MERGE_KINDS)
def test_merge_when_only_the_other_id_has_a_person(project, kind):
    send(project, ev("pageview", "anon", **{"$set": {"a": 1}}))
    before = person(project, "anon")
    send(project, merge_event(kind, "user", "anon", **{"$set": {"b": 2}}))
    p = person(project, "user")
    assert p["uuid"] == before["uuid"]
    assert p["distinct_ids"] == ["anon", "user"]
    assert p["properties"] == {"a": 1, "b": 2}
    assert p["is_identified"] is True


@pytest.mark.parametrize("kind", MERGE_KINDS)
def test_merge_when_only_the_target_id_has_a_person(project, kind):
    send(project, ev("pageview", "user", **{"$set": {"a": 1}}))
    before = person(project, "user")
    send(project, merge_event(kind, "user", "anon"))
    p = person(project, "anon")
    assert p["uuid"] == before["uuid"]
    assert p["distinct_ids"] == ["anon", "user"]
    assert p["is_identified"] is True


@pytest.mark.parametrize("kind", MERGE_KINDS)
def test_merge_when_both_have_persons(project, kind):
    send(project,
         ev("pageview", "anon", timestamp="2026-01-01T00:00:00Z",
            **{"$set": {"shared": "anon", "only_anon": 1, "both_set": "anon"}}),
         ev("pageview", "anon-2nd-id", timestamp="2026-01-03T00:00:00Z"),
         ev("pageview", "user", timestamp="2026-02-01T00:00:00Z", **{"$set": {"shared": "user", "only_user": 2}}))
    # anon-2nd-id joins anon's person (only one side has a person)
    send(project, merge_event("$create_alias", "anon", "anon-2nd-id"))
    anon, user = person(project, "anon"), person(project, "user")
    assert anon["is_identified"] is True  # was an alias target; so $merge_dangerously is needed below
    if kind != "$merge_dangerously":
        # make the other person mergeable again: a fresh anonymous one
        send(project, ev("pageview", "anon-b", timestamp="2026-01-01T00:00:00Z",
                         **{"$set": {"shared": "anon", "only_anon": 1}}))
        other = "anon-b"
    else:
        other = "anon"
    other_person = person(project, other)
    send(project, merge_event(kind, "user", other, timestamp="2026-03-01T00:00:00Z",
                              **{"$set": {"from_event": True}, "$set_once": {"only_anon": 99, "once": 1}}))
    p = person(project, "user")
    assert p["uuid"] == user["uuid"]
    assert sorted(p["distinct_ids"]) == sorted(other_person["distinct_ids"] + ["user"])
    assert p["properties"]["shared"] == "user"  # target wins
    assert p["properties"]["only_anon"] == 1 and p["properties"]["only_user"] == 2
    assert p["properties"]["from_event"] is True and p["properties"]["once"] == 1
    assert p["created_at"] == "2026-01-01T00:00:00.000Z"  # the earlier of the two
    assert p["is_identified"] is True
    gone = project.api("GET", f"/api/projects/@project/persons/{other_person['uuid']}/")
    assert gone.status == 404
    for d in other_person["distinct_ids"]:
        assert person(project, d)["uuid"] == user["uuid"]
    # every event of every merged distinct id lists under the kept person
    events = project.events(person_id=p["uuid"])
    assert {e["distinct_id"] for e in events} == set(p["distinct_ids"])


@pytest.mark.parametrize("kind", ["$identify", "$create_alias"])
def test_merge_refused_when_other_person_is_already_identified(project, kind):
    send(project, merge_event("$identify", "alice", "alice-anon", **{"$set": {"name": "Alice"}}))
    send(project, ev("pageview", "bob", **{"$set": {"name": "Bob"}}))
    send(project, merge_event(kind, "bob", "alice", **{"$set": {"seen": True}}))
    alice, bob = person(project, "alice"), person(project, "bob")
    assert alice["uuid"] != bob["uuid"]
    assert sorted(alice["distinct_ids"]) == ["alice", "alice-anon"]
    assert bob["distinct_ids"] == ["bob"]
    assert alice["properties"] == {"name": "Alice"}
    assert bob["properties"] == {"name": "Bob", "seen": True}  # the event is still processed for bob
    assert bob["is_identified"] is True
    # the event is kept
    assert [e["event"] for e in project.events(distinct_id="bob")].count(kind) == 1


def test_merge_dangerously_merges_an_identified_person(project):
    send(project, merge_event("$identify", "alice", "alice-anon", **{"$set": {"name": "Alice", "a": 1}}))
    send(project, ev("pageview", "bob", **{"$set": {"name": "Bob"}}))
    send(project, merge_event("$merge_dangerously", "bob", "alice"))
    bob = person(project, "bob")
    assert sorted(bob["distinct_ids"]) == ["alice", "alice-anon", "bob"]
    assert bob["properties"] == {"name": "Bob", "a": 1}
    assert len(all_persons(project)) == 1


def test_target_already_identified_does_not_block(project):
    send(project, merge_event("$identify", "user", "anon-1"))
    send(project, ev("pageview", "anon-2"))
    send(project, merge_event("$identify", "user", "anon-2"))
    assert sorted(person(project, "user")["distinct_ids"]) == ["anon-1", "anon-2", "user"]


@pytest.mark.parametrize("kind", MERGE_KINDS)
def test_self_merge_is_a_no_op(project, kind):
    send(project, merge_event(kind, "same", "same", **{"$set": {"a": 1}}))
    p = person(project, "same")
    assert p["distinct_ids"] == ["same"]
    assert p["properties"] == {"a": 1}
    assert p["is_identified"] is False


def test_merge_of_ids_already_on_one_person_marks_identified(project):
    send(project, merge_event("$create_alias", "a", "b"))
    send(project, merge_event("$identify", "b", "a"))
    p = person(project, "a")
    assert p["distinct_ids"] == ["a", "b"] and p["is_identified"] is True
    assert len(all_persons(project)) == 1


def test_merges_chain_within_one_batch(project):
    send(project,
         ev("pageview", "anon-1", **{"$set": {"x": 1}}),
         ev("pageview", "anon-2", **{"$set": {"y": 2}}),
         merge_event("$identify", "user", "anon-1"),
         merge_event("$identify", "user", "anon-2"),  # anon-2 is not identified: merges
         ev("pageview", "anon-1", **{"$set": {"z": 3}}))
    (p,) = all_persons(project)
    assert p["distinct_ids"] == ["anon-1", "anon-2", "user"]
    assert creator_checked(p)["properties"] == {"x": 1, "y": 2, "z": 3}


def test_a_stored_person_merged_into_a_new_one_follows_it_into_the_next_merge(project):
    """A person stored earlier is merged into one created in this batch, which is merged again in the same
    batch: the stored distinct ids (and hash-key overrides) move along the whole chain, none is left
    pointing at a person that was never written (this split a forwarded chain of merges in two)."""
    send(project, merge_event("$identify", "old-user", "old-anon"))
    store = project.srv.store
    old_id = store.get_person_by_distinct_id(project.id, "old-user")["id"]
    with store.transaction():
        store.db.execute_sql("INSERT INTO flag_hash_key_override (project_id, person_id, flag_key, hash_key)"
                             " VALUES (?, ?, 'f1', 'old')", (project.id, old_id))
    send(project,
         ev("pageview", "a"),
         merge_event("$merge_dangerously", "a", "old-user"),  # stored person into a's, new in this batch
         ev("pageview", "b"),
         merge_event("$merge_dangerously", "b", "a"),  # a's (holding the stored ids) into b's, also new
         ev("pageview", "c", **{"$set": {"last": True}}),
         merge_event("$merge_dangerously", "c", "b"))
    (p,) = all_persons(project)
    assert p["distinct_ids"] == ["a", "b", "c", "old-anon", "old-user"]
    assert person(project, "old-anon")["id"] == p["id"]
    rows = store.db.execute_sql("SELECT person_id FROM flag_hash_key_override WHERE project_id = ?",
                                (project.id,)).fetchall()
    assert rows == [(store.get_person_by_distinct_id(project.id, "c")["id"],)]
    # Later batches find the ids where they are: one more merge keeps one person.
    send(project, merge_event("$merge_dangerously", "old-anon", "d"))
    assert [q["distinct_ids"] for q in all_persons(project)] == [["a", "b", "c", "d", "old-anon", "old-user"]]


def _merge_chain(n):
    """User n identifies an anonymous id, aliases another and merges user n-1 (all identified): one long chain."""
    return [ev("pageview", f"anon-{n}-{i}") for i in range(3)] + [
        merge_event("$identify", f"user-{n}", f"anon-{n}-0", **{"$set": {"plan": n}}),
        merge_event("$create_alias", f"user-{n}", f"anon-{n}-1"),
        merge_event("$merge_dangerously", f"user-{n}", f"user-{n - 1}" if n else f"anon-{n}-2"),
    ]


@pytest.mark.parametrize("cuts", [[6, 12, 18, 24, 30], [16], [9, 25], [22], []], ids=str)
def test_a_chain_of_merges_ends_the_same_whatever_the_batch_boundaries(server, cuts):
    """The same events sent one user at a time or cut anywhere into requests (so group commits) end as the same
    one person: a chain through persons stored before and persons new in the batch loses no distinct id."""
    project = Project(server)
    events, at = [e for n in range(6) for e in _merge_chain(n)], 0
    for cut in cuts + [len(events)]:
        send(project, *events[at:cut])
        at = cut
    (p,) = [p for p in all_persons(project) if len(p["distinct_ids"]) > 1]  # anon-n-2 stays alone for n > 0
    assert p["distinct_ids"] == sorted([f"anon-{n}-{i}" for n in range(6) for i in range(2)] + ["anon-0-2"] +
                                       [f"user-{n}" for n in range(6)])
    assert creator_checked(p)["properties"]["plan"] == 5 and len(all_persons(project)) == 6


def test_merge_moves_flag_hash_key_overrides(project):
    send(project, ev("pageview", "anon"), ev("pageview", "user"))
    store = project.srv.store
    anon_id = store.get_person_by_distinct_id(project.id, "anon")["id"]
    user_id = store.get_person_by_distinct_id(project.id, "user")["id"]
    with store.transaction():
        for pid, flag, key in [(anon_id, "f1", "anon"), (anon_id, "f2", "anon"), (user_id, "f1", "user")]:
            store.db.execute_sql("INSERT INTO flag_hash_key_override (project_id, person_id, flag_key, hash_key)"
                                 " VALUES (?, ?, ?, ?)", (project.id, pid, flag, key))
    send(project, merge_event("$identify", "user", "anon"))
    rows = store.db.execute_sql("SELECT person_id, flag_key, hash_key FROM flag_hash_key_override"
                                " WHERE project_id = ? ORDER BY flag_key", (project.id,)).fetchall()
    assert rows == [(user_id, "f1", "user"), (user_id, "f2", "anon")]  # the kept person's own wins


@pytest.mark.parametrize("kind", MERGE_KINDS + ["$groupidentify"])
def test_person_events_with_process_person_profile_false_are_dropped(project, kind):
    if kind == "$groupidentify":
        e = ev(kind, "user", **{"$group_type": "company", "$group_key": "acme", "$group_set": {"a": 1}})
    else:
        e = merge_event(kind, "user", "anon", **{"$set": {"a": 1}})
    e["properties"]["$process_person_profile"] = False
    send(project, ev("kept", "user", **{"$process_person_profile": False}), e)
    assert [x["event"] for x in project.events()] == ["kept"]
    assert all_persons(project) == []
    r = project.api("GET", "/api/projects/@project/groups/?group_type_index=0")
    assert r.json()["results"] == []


def test_personless_events_never_touch_persons(project):
    send(project, ev("pageview", "u", **{"$set": {"a": 1}}))
    send(project, ev("pageview", "u", **{"$process_person_profile": False, "$set": {"a": 2}, "$browser": "X",
                                          "$unset": ["a"]}),
         ev("pageview", "personless", **{"$process_person_profile": False, "$set": {"b": 1}}))
    assert person(project, "u")["properties"] == {"a": 1}
    assert person(project, "personless") is None
    stored = [e for e in project.events() if e["properties"].get("$process_person_profile") is False]
    assert len(stored) == 2
    for e in stored:  # PostHog strips the person updates but keeps the flag on the event
        assert not {"$set", "$set_once", "$unset"} & set(e["properties"])


# --- groups, docs/protocol.md "Groups: group types", docs/protocol.md "Groups: $groupidentify" ------------------------------------------------------------------


def test_group_types_get_indexes_in_order_of_first_appearance_at_most_five(project):
    types = ["company", "team", "org", "project", "workspace", "sixth"]
    send(project, ev("e1", "u", **{"$groups": {t: f"{t}-key" for t in types}}))
    send(project, ev("e2", "u", **{"$groups": {"sixth": "s", "team": "t2"}}))
    r = project.api("GET", "/api/projects/@project/groups_types/")
    assert r.status == 200
    assert r.json() == [{"group_type": t, "group_type_index": i} for i, t in enumerate(types[:5])]
    by_name = {e["event"]: e["properties"] for e in project.events()}
    for i, t in enumerate(types[:5]):
        assert by_name["e1"][f"$group_{i}"] == f"{t}-key"
    assert "$group_5" not in by_name["e1"]
    assert by_name["e2"]["$group_1"] == "t2"
    assert not {"$group_0", "$group_2", "$group_3", "$group_4", "$group_5"} & set(by_name["e2"])


def test_groups_must_be_an_object(project):
    send(project, ev("e", "u", **{"$groups": ["company", "acme"]}), ev("f", "u", **{"$groups": None}))
    assert project.api("GET", "/api/projects/@project/groups_types/").json() == []


def test_groupidentify_upserts_group_and_never_touches_the_person(project):
    send(project, ev("pageview", "u", **{"$set": {"name": "U"}}))
    send(project, ev("$groupidentify", "u", timestamp="2026-01-01T00:00:00Z", **{
        "$group_type": "company", "$group_key": "acme", "$group_set": {"name": "Acme", "size": 1},
        "$set": {"name": "changed?"}}))
    send(project, ev("$groupidentify", "u", timestamp="2026-02-01T00:00:00Z", **{
        "$group_type": "company", "$group_key": "acme", "$group_set": {"size": 2, "plan": "pro"}}))
    send(project, ev("$groupidentify", "u", **{"$group_type": "company", "$group_key": 42, "$group_set": {}}))
    r = project.api("GET", "/api/projects/@project/groups/find?group_type_index=0&group_key=acme")
    assert r.status == 200
    assert r.json() == {"group_type_index": 0, "group_key": "acme",
                        "group_properties": {"name": "Acme", "size": 2, "plan": "pro"},
                        "created_at": "2026-01-01T00:00:00.000Z"}
    assert project.api("GET", "/api/projects/@project/groups/find?group_type_index=0&group_key=42").status == 200
    assert person(project, "u")["properties"] == {"name": "U"}


def test_groups_list_search_pagination_and_errors(project):
    send(project, *[ev("$groupidentify", "u", **{"$group_type": "company", "$group_key": f"co-{i}",
                                                  "$group_set": {"name": f"Company Ñame {i}"}}) for i in range(5)])
    send(project, ev("$groupidentify", "u", **{"$group_type": "team", "$group_key": "t", "$group_set": {}}))
    seen, url = [], "/api/projects/@project/groups/?group_type_index=0&limit=2"
    r = project.api("GET", url)
    while True:
        assert r.status == 200, r.body
        seen += [g["group_key"] for g in r.json()["results"]]
        if not r.json()["next"]:
            break
        r = http("GET", r.json()["next"], headers={"Authorization": f"Bearer {project.key}"})
    assert seen == [f"co-{i}" for i in reversed(range(5))]
    found = project.api("GET", "/api/projects/@project/groups/?group_type_index=0&search=%C3%B1AME%203").json()
    assert [g["group_key"] for g in found["results"]] == ["co-3"]
    found = project.api("GET", "/api/projects/@project/groups/?group_type_index=0&search=CO-1").json()
    assert [g["group_key"] for g in found["results"]] == ["co-1"]
    r = project.api("GET", "/api/projects/@project/groups/")
    assert r.status == 400 and r.json()["attr"] == "group_type_index"
    r = project.api("GET", "/api/projects/@project/groups/?group_type_index=7")
    assert r.status == 400 and r.json()["attr"] == "group_type_index"
    r = project.api("GET", "/api/projects/@project/groups/find?group_type_index=0&group_key=nope")
    assert r.status == 404 and r.json()["type"] == "invalid_request"
    r = project.api("GET", "/api/projects/@project/groups/find?group_type_index=0")
    assert r.status == 400 and r.json()["attr"] == "group_key"


# --- Mixpanel people and groups, from the real mixpanel-python client ---------------------


@pytest.fixture
def mixpanel(project):
    from mixpanel import Consumer, Mixpanel

    base = project.url
    consumer = Consumer(events_url=base + "/track", people_url=base + "/engage", groups_url=base + "/groups",
                        import_url=base + "/import", retry_limit=0)
    return Mixpanel(project.token, consumer=consumer)


def test_mixpanel_people_operations(project, mixpanel):
    mixpanel.people_set("mp-1", {"name": "Ann", "plan": "free", "tmp": 1})
    mixpanel.people_set_once("mp-1", {"name": "ignored", "first_seen": "2026-01-01"})
    mixpanel.people_increment("mp-1", {"logins": 1, "score": 2.5})
    mixpanel.people_increment("mp-1", {"logins": 1})
    mixpanel.people_increment("mp-1", {"name": 5})  # not a number: ignored, as Mixpanel rejects it
    mixpanel.people_append("mp-1", {"pages": "home"})
    mixpanel.people_append("mp-1", {"pages": "pricing"})
    mixpanel.people_union("mp-1", {"tags": ["a", "b"]})
    mixpanel.people_union("mp-1", {"tags": ["b", "c"]})
    mixpanel.people_remove("mp-1", {"tags": "a"})
    mixpanel.people_unset("mp-1", ["tmp"])
    project.flush()
    assert person(project, "mp-1")["properties"] == {
        "name": "Ann", "plan": "free", "first_seen": "2026-01-01", "logins": 2, "score": 2.5,
        "pages": ["home", "pricing"], "tags": ["b", "c"],
    }


def test_mixpanel_delete_removes_the_person_not_the_events(project, mixpanel):
    mixpanel.people_set("mp-2", {"name": "Bo"})
    project.flush()
    assert person(project, "mp-2") is not None
    mixpanel.people_delete("mp-2")
    mixpanel.people_delete("never-existed")
    project.flush()
    assert person(project, "mp-2") is None and person(project, "never-existed") is None
    assert len(project.events(distinct_id="mp-2")) == 2
    mixpanel.people_set("mp-2", {"again": True})
    project.flush()
    assert person(project, "mp-2")["properties"] == {"again": True}


def test_mixpanel_group_operations(project, mixpanel):
    mixpanel.group_set("company", "acme", {"name": "Acme", "tmp": 1})
    mixpanel.group_set_once("company", "acme", {"name": "ignored", "founded": 1999})
    mixpanel.group_union("company", "acme", {"regions": ["eu", "us"]})
    mixpanel.group_union("company", "acme", {"regions": ["us", "apac"]})
    mixpanel.group_remove("company", "acme", {"regions": "eu"})
    mixpanel.group_unset("company", "acme", ["tmp"])
    project.flush()
    r = project.api("GET", "/api/projects/@project/groups/find?group_type_index=0&group_key=acme")
    assert r.json()["group_properties"] == {"name": "Acme", "founded": 1999, "regions": ["us", "apac"]}
    mixpanel.group_delete("company", "acme")
    project.flush()
    r = project.api("GET", "/api/projects/@project/groups/find?group_type_index=0&group_key=acme")
    assert r.status == 404


# --- the persons API ----------------------------------------------------------------------


def test_persons_list_pagination_and_search(project):
    send(project, *[ev("pageview", f"user-{i}", **{"$set": {"email": f"User{i}@Example.com"}}) for i in range(5)],
         ev("pageview", "Ünïcode-Person", **{"$set": {"city": "ZÜRICH", "n": 12345}}))
    seen, r = [], project.api("GET", "/api/projects/@project/persons/?limit=2")
    while True:
        assert r.status == 200, r.body
        seen += [p["distinct_ids"][0] for p in r.json()["results"]]
        if not r.json()["next"]:
            break
        r = http("GET", r.json()["next"], headers={"Authorization": f"Bearer {project.key}"})
    assert sorted(seen) == sorted([f"user-{i}" for i in range(5)] + ["Ünïcode-Person"])
    assert len(seen) == 6

    def search(term):
        return sorted(p["distinct_ids"][0] for p in all_persons(project, search=term))

    assert search("USER-3") == ["user-3"]  # distinct ids
    assert search("user2@example") == ["user-2"]  # property values, case-insensitive
    assert search("zürich") == ["Ünïcode-Person"]  # beyond ASCII
    assert search("ünïcode") == ["Ünïcode-Person"]
    assert search("2345") == ["Ünïcode-Person"]  # numbers too
    assert search("email") == []  # keys do not match
    assert search("nobody") == []


def test_persons_api_errors(project, server):
    r = http("GET", project.url + f"/api/projects/{project.id}/persons/")
    assert r.status == 401 and r.json()["type"] == "authentication_error"
    for path in ["/api/projects/@project/persons/not-a-uuid/",
                 "/api/projects/@project/persons/01890000-0000-7000-8000-000000000000/"]:
        r = project.api("GET", path)
        assert_error(r, 404)
        assert project.api("DELETE", path).status == 404
    r = project.api("GET", "/api/projects/@project/events/?person_id=01890000-0000-7000-8000-000000000000")
    assert r.status == 404
    r = project.api("GET", "/api/projects/@project/persons/?cursor=abc")
    assert r.status == 400 and r.json()["attr"] == "cursor"
    # a person of another project is not found through this project
    from conftest import Project

    other = Project(server)
    send(other, ev("pageview", "theirs"))
    their_uuid = person(other, "theirs")["uuid"]
    assert project.api("GET", f"/api/projects/@project/persons/{their_uuid}/").status == 404
    assert project.api("GET", f"/api/projects/{other.id}/persons/").status == 403


def test_person_detail_and_events_by_person(project):
    send(project, ev("one", "anon"), ev("two", "anon"))
    send(project, merge_event("$identify", "user", "anon"), ev("three", "user"), ev("other", "someone-else"))
    p = person(project, "anon")
    r = project.api("GET", f"/api/projects/@project/persons/{p['uuid']}/")
    assert r.status == 200 and creator_checked(r.json()) == p
    assert r.json()["uuid"].upper() == project.api(
        "GET", f"/api/projects/@project/persons/{p['uuid'].upper()}").json()["uuid"].upper()
    names = sorted(e["event"] for e in project.events(person_id=p["uuid"]))
    assert names == ["$identify", "one", "three", "two"]


@pytest.mark.parametrize("delete_events", [False, True])
def test_delete_person(project, delete_events):
    send(project, ev("one", "anon", **{"$set": {"a": 1}}), merge_event("$identify", "user", "anon"),
         ev("keep", "someone-else"))
    p = person(project, "user")
    suffix = "?delete_events=true" if delete_events else ""
    r = project.api("DELETE", f"/api/projects/@project/persons/{p['uuid']}/{suffix}")
    assert r.status == 204
    assert project.api("GET", f"/api/projects/@project/persons/{p['uuid']}/").status == 404
    assert person(project, "anon") is None and person(project, "user") is None
    remaining = sorted(e["event"] for e in project.events())
    assert remaining == (["keep"] if delete_events else ["$identify", "keep", "one"])
    # the writer's cache forgot the person: the next event makes a new one
    send(project, ev("again", "user", **{"$set": {"b": 2}}))
    again = person(project, "user")
    assert again["uuid"] != p["uuid"] and again["properties"] == {"b": 2} and again["distinct_ids"] == ["user"]


def test_mixpanel_operations_only_apply_to_engage_requests(project):
    # The same property names on an ordinary PostHog event are just properties.
    send(project, ev("$set", "u", **{"$set": {"n": 1}}))
    send(project, ev("custom", "u", **{"$mp_delete": True, "$mp_add": {"n": 5}}))
    assert person(project, "u")["properties"] == {"n": 1}


def test_a_capture_client_setting_mp_engage_gets_no_mixpanel_semantics(project):
    # Mixpanel operations come only from /engage and /groups bodies, beside the event, never from
    # in-band properties: a /capture event naming `$mp_engage` is stored as sent and changes nothing.
    send(project, ev("$set", "u", **{"$set": {"n": 1}}))
    sent = {"$mp_engage": True, "$mp_add": {"n": 5}, "$mp_delete": True, "$mp_groups": True}
    send(project, ev("$identify", "u", **sent))
    assert person(project, "u")["properties"] == {"n": 1}
    stored = next(e for e in project.events() if e["event"] == "$identify")
    assert {k: v for k, v in stored["properties"].items() if k.startswith("$mp_")} == sent


def test_engage_operations_are_not_stored_in_the_event(project, mixpanel):
    mixpanel.people_set("u", {"n": 1})
    mixpanel.people_increment("u", {"n": 2})
    project.flush()
    assert person(project, "u")["properties"] == {"n": 3}
    for e in project.events():
        assert not any(k.startswith("$mp_") for k in e["properties"]), e["properties"]


def test_mixpanel_group_operations_only_apply_to_groups_requests(project, mixpanel):
    # A PostHog $groupidentify carrying $mp_* keys leaves the group's properties alone; /groups applies them.
    group_url = "/api/projects/@project/groups/find?group_type_index=0&group_key=acme"
    send(project, ev("$groupidentify", "u", **{"$group_type": "company", "$group_key": "acme",
                                               "$group_set": {"regions": ["eu"]}}))
    send(project, ev("$groupidentify", "u", **{"$group_type": "company", "$group_key": "acme",
                                               "$mp_union": {"regions": ["us"]}, "$mp_delete": True}))
    assert project.api("GET", group_url).json()["group_properties"] == {"regions": ["eu"]}
    mixpanel.group_union("company", "acme", {"regions": ["us"]})
    project.flush()
    assert project.api("GET", group_url).json()["group_properties"] == {"regions": ["eu", "us"]}


def test_personless_events_get_no_group_indexes(project):
    # As PostHog's pipeline: groups are resolved only for person-processed events.
    send(project, ev("e", "u", **{"$process_person_profile": False, "$groups": {"company": "acme"}}))
    (e,) = project.events()
    assert "$group_0" not in e["properties"]
    assert project.api("GET", "/api/projects/@project/groups_types/").json() == []
