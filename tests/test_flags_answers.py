"""The /flags answer cache (phlite/flags/answers.py, docs/flags-protocol.md "Flags endpoint: answer
cache"): a repeated request is answered without lookups or evaluation, and a change to anything an
answer was computed from (definitions, the stored person, its distinct ids, groups, static cohort
members, the project timezone, any field of the request) gives a freshly computed answer."""

from support import ev, http, person, send

FLAGS = "/api/projects/@project/feature_flags/"
PLAN_PRO = {"key": "plan", "value": "pro", "type": "person"}


def make(project, key, **filters):
    r = project.api("POST", FLAGS, {"key": key, "filters": {"groups": [{"properties": []}], **filters}})
    assert r.status == 201, r.body
    return r.json()


class Asker:
    def __init__(self, project):
        self.project = project
        self.answers = project.srv.app.flags.answers

    def __call__(self, distinct_id="u1", headers=None, **body):
        r = http("POST", self.project.url + "/flags/?v=2",
                 {"token": self.project.token, "distinct_id": distinct_id, **body}, headers)
        assert r.status == 200, r.body
        return {k: f["variant"] or f["enabled"] for k, f in r.json()["flags"].items()}

    def hit(self, *args, **kwargs):
        """The answer, asserting it came from the cache."""
        before = self.answers.hits
        out = self(*args, **kwargs)
        assert self.answers.hits == before + 1, "expected a cached answer"
        return out

    def fresh(self, *args, **kwargs):
        """The answer, asserting it was computed."""
        before = self.answers.hits
        out = self(*args, **kwargs)
        assert self.answers.hits == before, "expected a freshly computed answer"
        return out


def test_repeats_are_cached_and_stored_changes_give_fresh_answers(project):
    ask = Asker(project)
    make(project, "pro", groups=[{"properties": [PLAN_PRO]}])
    make(project, "gold", aggregation_group_type_index=0,
         groups=[{"properties": [{"key": "tier", "value": "gold", "type": "group", "group_type_index": 0}]}])
    send(project, ev("$groupidentify", "u1", **{"$group_type": "company", "$group_key": "acme",
                                               "$group_set": {"tier": "silver"}}))
    groups = {"groups": {"company": "acme"}}
    assert ask.fresh(**groups) == {"pro": False, "gold": False}
    assert ask.hit(**groups) == {"pro": False, "gold": False}

    # The stored person's properties.
    send(project, ev("$set", "u1", **{"$set": {"plan": "pro"}}))
    assert ask.fresh(**groups)["pro"] is True
    assert ask.hit(**groups)["pro"] is True
    # The stored group's properties.
    send(project, ev("$groupidentify", "u1", **{"$group_type": "company", "$group_key": "acme",
                                               "$group_set": {"tier": "gold"}}))
    assert ask.fresh(**groups)["gold"] is True
    # A distinct id moving to another person (an $identify merge).
    assert ask.fresh("anon-1", **groups)["pro"] is False
    send(project, ev("$identify", "u1", **{"$anon_distinct_id": "anon-1"}))
    assert ask.fresh("anon-1", **groups)["pro"] is True
    # The person deleted through the API.
    uuid = person(project, "u1")["uuid"]
    assert project.api("DELETE", f"/api/projects/@project/persons/{uuid}/").status == 204
    assert ask.fresh(**groups)["pro"] is False


def test_definition_changes_give_fresh_answers(project):
    ask = Asker(project)
    flag = make(project, "f", groups=[{"properties": [PLAN_PRO]}])
    assert ask.fresh() == {"f": False}
    assert ask.hit() == {"f": False}
    r = project.api("PATCH", f"{FLAGS}{flag['id']}/", {"filters": {"groups": [{"properties": []}]}})
    assert r.status == 200
    assert ask.fresh() == {"f": True}
    # Static cohort members.
    cohort = project.api("POST", "/api/projects/@project/cohorts/", {"is_static": True, "distinct_ids": []}).json()
    project.api("PATCH", f"{FLAGS}{flag['id']}/", {"filters": {"groups": [{"properties": [
        {"key": "id", "type": "cohort", "value": cohort["id"]}]}]}})
    assert ask.fresh() == {"f": False}
    assert ask.hit() == {"f": False}
    project.api("PATCH", f"/api/projects/@project/cohorts/{cohort['id']}/", {"distinct_ids": ["u1"]})
    assert ask.fresh() == {"f": True}
    # The project timezone (it changes how stored naive dates read).
    assert ask.hit() == {"f": True}
    assert project.api("PATCH", "/api/projects/@project/", {"timezone": "Asia/Tokyo"}).status == 200
    assert ask.fresh() == {"f": True}


def test_every_request_field_is_part_of_the_key(project):
    ask = Asker(project)
    variants = {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}
    make(project, "pro", groups=[{"properties": [PLAN_PRO]}])
    make(project, "mv", multivariate=variants)
    make(project, "company", aggregation_group_type_index=0)
    server_only = make(project, "server-only")
    project.api("PATCH", f"{FLAGS}{server_only['id']}/", {"evaluation_runtime": "server"})
    make(project, "device", bucketing_identifier="device_id",
         groups=[{"properties": [], "rollout_percentage": 50}])
    send(project, ev("$groupidentify", "u1", **{"$group_type": "company", "$group_key": "acme", "$group_set": {}}))
    base = ask.fresh()
    assert ask.hit() == base
    assert ask.fresh(person_properties={"plan": "pro"})["pro"] is True
    assert ask.fresh(person_properties={"plan": "free"})["pro"] is False
    # Another distinct id: the variant follows its hash, not the cached one.
    ids = [f"user-{i}" for i in range(12)]
    seen = {ask.fresh(i)["mv"] for i in ids}
    assert seen == {"a", "b"}
    assert ask.fresh(groups={"company": "acme"})["company"] is True
    assert ask.fresh(group_properties={"company": {"x": 1}}, groups={"company": "acme"})["company"] is True
    assert set(ask.fresh(flag_keys_to_evaluate=["pro"])) == {"pro"}
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"}
    sdk = {"User-Agent": "posthog-python/7.91.1"}
    assert "server-only" in ask.fresh(headers=sdk)
    assert "server-only" not in ask.fresh(headers=browser)
    assert "server-only" in ask.hit(headers=sdk)
    devices = {ask.fresh(device_id=f"d{i}")["device"] for i in range(12)}
    assert devices == {True, False}
    assert ask.fresh(evaluation_contexts=["web"]) == ask.hit(evaluation_contexts=["web"])


def test_answers_that_move_by_themselves_are_not_cached(project):
    ask = Asker(project)
    make(project, "recent", groups=[{"properties": [
        {"key": "seen", "value": "-7d", "operator": "is_date_after", "type": "person"}]}])
    ask.fresh(person_properties={"seen": "2020-01-01"})
    ask.fresh(person_properties={"seen": "2020-01-01"})  # a relative date reads the clock
    other = type(project)(project.srv)
    ask = Asker(other)
    r = other.api("POST", FLAGS, {"key": "sticky", "ensure_experience_continuity": True,
                                  "filters": {"groups": [{"properties": []}]}})
    assert r.status == 201
    ask.fresh()
    ask.fresh()  # evaluating a continuity flag writes hash keys


def test_answers_that_read_the_clock_are_not_cached(project):
    ask = Asker(project)
    make(project, "since-2024", groups=[{"properties": [
        {"key": "seen", "value": "2024-01-01", "operator": "is_date_after", "type": "person"}]}])
    # An absolute date against an absolute value: cached.
    assert ask.fresh(person_properties={"seen": "2024-06-01"}) == {"since-2024": True}
    assert ask.hit(person_properties={"seen": "2024-06-01"}) == {"since-2024": True}
    # A relative value ("3 days ago") is resolved against now: computed every time.
    ask.fresh(person_properties={"seen": "-3d"})
    ask.fresh(person_properties={"seen": "-3d"})


class Queries:
    """Counts the store's SQL statements from request threads that read persons or groups (observes; the
    real execute_sql runs)."""

    def __init__(self, store, monkeypatch):
        self.seen = []
        real = store.db.execute_sql

        def counting(sql, params=None, *a, **kw):
            if "person" in sql or "group_ " in sql or "group_\n" in sql:
                self.seen.append(sql)
            return real(sql, params, *a, **kw)

        monkeypatch.setattr(store.db, "execute_sql", counting)

    def take(self):
        out, self.seen = self.seen, []
        return out


def test_person_and_groups_are_read_in_one_query_then_from_memory(project, monkeypatch):
    ask = Asker(project)
    make(project, "pro", groups=[{"properties": [PLAN_PRO]}])
    make(project, "gold", aggregation_group_type_index=0,
         groups=[{"properties": [{"key": "tier", "value": "gold", "type": "group", "group_type_index": 0}]}])
    send(project, ev("$set", "u1", **{"$set": {"plan": "pro"}}),
         ev("$groupidentify", "u1", **{"$group_type": "company", "$group_key": "acme",
                                      "$group_set": {"tier": "gold"}}))
    queries = Queries(project.srv.store, monkeypatch)
    groups = {"groups": {"company": "acme"}}
    assert ask.fresh(**groups) == {"pro": True, "gold": True}
    [sql] = queries.take()  # the person and the group: one statement
    assert "person_distinct_id" in sql and "group_" in sql
    # The same person and group with other request fields: computed, but from memory.
    assert ask.fresh(person_properties={"x": 1}, **groups) == {"pro": True, "gold": True}
    assert ask.hit(**groups) == {"pro": True, "gold": True}
    assert queries.take() == []


def test_a_write_to_another_person_or_group_keeps_the_answer(project):
    ask = Asker(project)
    make(project, "pro", groups=[{"properties": [PLAN_PRO]}])
    make(project, "gold", aggregation_group_type_index=0,
         groups=[{"properties": [{"key": "tier", "value": "gold", "type": "group", "group_type_index": 0}]}])
    send(project, ev("$set", "u1", **{"$set": {"plan": "pro"}}), ev("$identify", "u1", **{"$anon_distinct_id": "a1"}),
         ev("$groupidentify", "u1", **{"$group_type": "company", "$group_key": "acme", "$group_set": {"tier": "x"}}))
    groups = {"groups": {"company": "acme"}}
    assert ask.fresh(**groups) == {"pro": True, "gold": False}
    # Other persons created and updated, another group of the same type: still a hit.
    send(project, ev("$set", "u2", **{"$set": {"plan": "free"}}), ev("pv", "u3"),
         ev("$groupidentify", "u2", **{"$group_type": "company", "$group_key": "other", "$group_set": {"tier": "gold"}}))
    assert ask.hit(**groups) == {"pro": True, "gold": False}
    # The same person written through its other distinct id: fresh.
    send(project, ev("$set", "a1", **{"$set": {"plan": "free"}}))
    assert ask.fresh(**groups) == {"pro": False, "gold": False}
    assert ask.hit(**groups) == {"pro": False, "gold": False}
    # Its group: fresh.
    send(project, ev("$groupidentify", "u9", **{"$group_type": "company", "$group_key": "acme",
                                               "$group_set": {"tier": "gold"}}))
    assert ask.fresh(**groups) == {"pro": False, "gold": True}
    # Another person merged into it (its distinct ids move): fresh.
    send(project, ev("$set", "a2", **{"$set": {"plan": "pro"}}))
    assert ask.hit(**groups)["pro"] is False
    send(project, ev("$merge_dangerously", "u1", alias="a2"))
    merged = ask.fresh(**groups)["pro"]
    assert ask.fresh("a2", **groups)["pro"] is merged


def test_a_row_read_while_a_write_commits_is_used_once_and_not_kept():
    from phlite.store.subjects import Subjects, Touched

    s = Subjects()
    started = s.start()
    written = Touched()
    written.persons.add(5)
    s.invalidate(written)  # committed while the reader's SELECT ran: what it read may be the older row
    s.keep(started, 1, "d5", {"id": 5, "properties": {}}, {})
    s.keep(started, 1, "d6", {"id": 6, "properties": {}}, {(0, "g"): None})
    assert s.person(1, "d5") is None  # not kept
    assert s.person(1, "d6")[1]["id"] == 6 and s.group(1, 0, "g") is not None  # untouched: kept
    # A reader older than every invalidation remembered keeps nothing.
    old = s.start()
    for i in range(300):
        t = Touched()
        t.persons.add(1000 + i)
        s.invalidate(t)
    s.keep(old, 1, "d7", {"id": 7, "properties": {}}, {})
    assert s.person(1, "d7") is None
