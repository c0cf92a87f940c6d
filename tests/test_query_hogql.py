"""HogQLQuery through POST /api/projects/<id>/query/ on a real server: the reference examples, PostHog's
value rules, the response shape, and what a query must never reach (other projects, other tables,
writes), tried hard. docs/insights.md "HogQLQuery", docs/insights.md "What a HogQL query can read"."""

import json
import subprocess
import sys
import threading

import pytest

from support import Project, assert_error, ev, http, send

EVENTS = [
    ev("$pageview", "anon-1", "2026-11-30T10:00:00Z", **{
        "$current_url": "https://shop.example/blog/one?ref=news&x=1", "$browser": "Chrome", "$os": "Android",
        "$active_feature_flags": ["beta", "new-ui"], "$feature/cool-flag": True, "price": 3.5}),
    ev("$pageview", "user-1", "2026-11-30T11:00:00Z", **{
        "$current_url": "https://shop.example/", "$browser": "Firefox", "$os": "Mac OS X", "price": 10,
        "$set": {"email": "one@example.com", "trial_started": "2026-11-01T00:00:00Z"}}),
    ev("$identify", "user-1", "2026-11-30T11:00:01Z", **{"$anon_distinct_id": "anon-1"}),
    ev("$pageview", "user-2", "2026-12-01T09:30:00Z", **{"$current_url": "https://shop.example/blog/two",
                                                           "$browser": "Chrome", "empty": "", "nul": "null"}),
    ev("signup", "user-2", "2026-12-01T09:31:00Z", plan="pro"),
]


@pytest.fixture(scope="module")
def data(server):
    p = Project(server, "hogql")
    send(p, *EVENTS)
    other = Project(server, "other")
    send(other, ev("secret", "spy", "2026-11-30T10:00:00Z", token="other-project-secret"))
    return p, other


def hogql(project, text, expect=200, **extra):
    r = project.api("POST", "/api/projects/@project/query/", {"query": {"kind": "HogQLQuery", "query": text, **extra}})
    assert r.status == expect, (text, r.status, r.body)
    return r.json()


def rows(project, text, **extra):
    return hogql(project, text, **extra)["results"]


# --- the reference's examples (PostHog's docs send these to /query) --------------------------------


DOC_EXAMPLES = [
    "select properties.$current_url from events where properties.$current_url like '%/blog%' limit 100",
    "select properties.email from persons where properties.email is not null",
    "select * from events",
    "SELECT event, COUNT() FROM events GROUP BY event ORDER BY COUNT() DESC",
    "SELECT properties.$current_url AS current_url, count() AS url_count FROM events WHERE event = '$pageview' AND"
    " (distinct_id, timestamp) IN (SELECT distinct_id, min(timestamp) FROM events WHERE event = '$pageview' GROUP BY"
    " distinct_id) AND {filters} GROUP BY current_url ORDER BY url_count DESC",
    "select multiIf(properties.$os == 'Android', 'mobile', properties.$os == 'iOS', 'mobile', 'desktop') from events",
    "select count() from events where dateDiff('minute', timestamp, now()) < 30",
    "select sumIf(1, properties.$browser = 'Chrome') / sumIf(1, properties.$browser != 'Chrome') from events",
    "select extract(properties.$current_url, 'ref=([^&]*)') from events",
    "select concat(event, ' by ', distinct_id), replaceOne(properties.$current_url, 'https://', '') from events",
    "select toHour(timestamp), toDayOfWeek(timestamp), toStartOfWeek(timestamp), toMonth(timestamp) from events",
    "select person.properties.trial_started + interval 30 day from events",
    "select arrayJoin(JSONExtractArrayRaw(properties.$active_feature_flags ?? '[]')) as flag, count() from events"
    " group by flag",
    "select extract(elements_chain, '[:|\"]attr__id=\"(.*?)\"') from events",
    "select properties['$feature/cool-flag'] from events",
]


@pytest.mark.parametrize("text", DOC_EXAMPLES)
def test_reference_examples_run(data, text):
    body = hogql(data[0], text)
    assert isinstance(body["results"], list) and body["columns"] and len(body["types"]) == len(body["columns"])


def test_examples_answer_what_the_events_say(data):
    p = data[0]
    assert rows(p, DOC_EXAMPLES[0]) == [["https://shop.example/blog/one?ref=news&x=1"],
                                        ["https://shop.example/blog/two"]]
    assert rows(p, DOC_EXAMPLES[1]) == [["one@example.com"]]
    counts = {}
    for e in EVENTS:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    assert sorted(map(tuple, rows(p, DOC_EXAMPLES[3]))) == sorted(counts.items())
    # First pageview of each distinct id, per URL.
    firsts = {}
    for e in sorted((e for e in EVENTS if e["event"] == "$pageview"), key=lambda e: e["timestamp"]):
        firsts.setdefault(e["distinct_id"], e["properties"]["$current_url"])
    got = {r[0]: r[1] for r in rows(p, DOC_EXAMPLES[4])}
    assert got == {u: list(firsts.values()).count(u) for u in firsts.values()}
    assert sorted(rows(p, DOC_EXAMPLES[12])) == [['"beta"', 1], ['"new-ui"', 1]]
    assert rows(p, "select extract(properties.$current_url, 'ref=([^&]*)') from events order by timestamp limit 1") \
        == [["news"]]
    assert rows(p, "select properties['$feature/cool-flag'], properties.price from events order by timestamp limit 1") \
        == [["true", "3.5"]]


def test_response_shape(data):
    body = hogql(data[0], "select event, count() from events group by event order by event")
    assert body["columns"] == ["event", "count()"]
    assert [t[0] for t in body["types"]] == ["event", "count()"]
    assert body["hasMore"] is False and body["limit"] == 100 and body["offset"] == 0
    assert body["hogql"].endswith("LIMIT 101")
    for key in ("clickhouse", "timings", "error", "modifiers", "is_cached", "last_refresh",
                "next_allowed_client_refresh", "cache_key", "timezone", "query_status", "query"):
        assert key in body
    assert body["timezone"] == "UTC" and body["error"] is None and body["query_status"] is None
    star = hogql(data[0], "select * from events order by timestamp limit 1")
    assert star["columns"] == ["uuid", "event", "properties", "timestamp", "distinct_id", "elements_chain",
                               "created_at", "$session_id", "$window_id", "person_id"]
    row = dict(zip(star["columns"], star["results"][0]))
    assert json.loads(row["properties"])["$browser"] == "Chrome"  # a JSON string, as PostHog sends it
    assert row["timestamp"] == "2026-11-30T10:00:00Z" and star["limit"] is None


def test_default_limit_and_has_more(server):
    p = Project(server)
    send(p, *[ev("e", f"d{i}") for i in range(105)])
    body = hogql(p, "select distinct_id from events")
    assert len(body["results"]) == 100 and body["hasMore"] is True
    assert len(rows(p, "select distinct_id from events limit 103")) == 103
    assert len(rows(p, "select distinct_id from events limit 100000")) == 105  # capped at 50,000, not refused


def test_persons_after_a_merge_are_one_person(data):
    p = data[0]
    # anon-1 was identified as user-1: their events share one person_id.
    assert rows(p, "select count(distinct person_id), count(distinct distinct_id) from events"
                   " where distinct_id in ('anon-1', 'user-1')") == [[1, 2]]
    assert rows(p, "select person.properties.email from events where distinct_id = 'anon-1'") == [["one@example.com"]]
    assert rows(p, "select count() from events e join persons p on e.person_id = p.id"
                   " where p.properties.email = 'one@example.com'") == [[3]]
    assert sorted(rows(p, "select distinct_id from person_distinct_ids where person_id ="
                          " (select id from persons where properties.email = 'one@example.com')")) \
        == [["anon-1"], ["user-1"]]


VALUE_RULES = [
    ("1 / 2", 0.5),
    ("intDiv(7, 2)", 3),
    ("'A' like 'a'", 0),  # LIKE is case-sensitive
    ("'A' ilike 'a'", 1),
    ("'abc' like 'a%'", 1),
    ("dateDiff('day', toDateTime('2026-01-01 23:59:00'), toDateTime('2026-01-02 00:01:00'))", 1),
    ("dateDiff('hour', toDateTime('2026-01-01 10:59:00'), toDateTime('2026-01-01 11:00:00'))", 1),
    ("dateDiff('month', toDateTime('2026-01-31'), toDateTime('2026-02-01'))", 1),
    ("toString(toStartOfMonth(toDateTime('2026-03-17 12:00:00')))", "2026-03-01 00:00:00"),
    ("toDayOfWeek(toDateTime('2026-11-29'))", 7),  # a Sunday
    ("toString(toStartOfWeek(toDateTime('2026-12-02')))", "2026-11-29 00:00:00"),  # Sunday, PostHog's default
    ("toString(toStartOfWeek(toDateTime('2026-12-02'), 1))", "2026-11-30 00:00:00"),
    ("toString(toDateTime('2026-01-31 10:00:00') + interval 1 month)", "2026-02-28 10:00:00"),
    ("toInt('12')", 12), ("toInt('x')", None), ("toFloat('2.5')", 2.5), ("toIntOrZero('x')", 0),
    ("coalesce(NULL, 'b')", "b"), ("NULL ?? 'c'", "c"), ("if(1 = 1, 'y', 'n')", "y"),
    ("multiIf(0, 'a', 1, 'b', 'c')", "b"), ("lower('AbC')", "abc"), ("upper('a')", "A"), ("length('abc')", 3),
    ("substring('hello', 2, 3)", "ell"), ("position('hello', 'l')", 3), ("replaceAll('a-b-c', '-', '+')", "a+b+c"),
    ("replaceRegexpAll('a1b22', '[0-9]+', '#')", "a#b#"), ("match('abc', '^a.c$')", 1),
    ("extract('id=42;', 'id=(\\\\d+)')", "42"), ("splitByChar(',', 'a,b')", '["a","b"]'),
    ("JSONExtractString('{\"a\": {\"b\": \"x\"}}', 'a', 'b')", "x"), ("JSONHas('{\"a\": 1}', 'a')", 1),
    ("round(2.567, 2)", 2.57), ("abs(-3)", 3), ("greatest(1, 5, 3)", 5), ("isNull(NULL)", 1),
    ("toDate('2026-05-04')", "2026-05-04"), ("concat('a', NULL, 'b')", "ab"), ("7 != NULL", 1),
]


@pytest.mark.parametrize("expr,expected", VALUE_RULES, ids=[v[0] for v in VALUE_RULES])
def test_value_rules(data, expr, expected):
    assert rows(data[0], f"select {expr}") == [[expected]]


def test_property_null_rules(data):
    p = data[0]
    # '' and 'null' read as NULL; `!=` is true against NULL; `=` is not.
    assert rows(p, "select properties.empty, properties.nul from events where event = '$pageview'"
                   " and distinct_id = 'user-2'") == [[None, None]]
    assert rows(p, "select count() from events where properties.$browser != 'Chrome'") == [[3]]
    assert rows(p, "select count() from events where properties.$browser = 'Chrome'") == [[2]]
    assert rows(p, "select count() from events where properties.missing = NULL") == [[5]]
    # Compared with a number, a property is read as a number ('10' > 5, not as text).
    assert rows(p, "select count() from events where properties.price > 5") == [[1]]
    assert rows(p, "select count() from events where properties.price = 10") == [[1]]
    assert rows(p, "select count() from events where toFloat(properties.price) > 5") == [[1]]


def test_project_timezone_and_week_start(server):
    p = Project(server)
    server.store.update_project(p.id, timezone="America/New_York", week_start_day=1)
    send(p, ev("e", "d", "2026-11-30T03:00:00Z"))  # still Sunday the 29th in New York
    body = hogql(p, "select timestamp, toDate(timestamp), toStartOfDay(timestamp), toStartOfWeek(timestamp)"
                    " from events")
    assert body["results"] == [["2026-11-29T22:00:00-05:00", "2026-11-29", "2026-11-29T00:00:00-05:00",
                                "2026-11-23T00:00:00-05:00"]]
    assert body["timezone"] == "America/New_York"
    # A date literal without an offset is a time in the project's zone.
    assert rows(p, "select count() from events where timestamp >= '2026-11-29 22:00:00'") == [[1]]
    assert rows(p, "select count() from events where timestamp > '2026-11-29 22:00:00'") == [[0]]


def test_values_and_filters(data):
    p = data[0]
    r = rows(p, "select count() from events where event = {ev} and {filters}", values={"ev": "$pageview"},
             filters={"dateRange": {"date_from": "2026-11-30T10:30:00Z", "date_to": "2026-12-01T09:30:00Z"}})
    assert r == [[1]]  # date_from inclusive, date_to exclusive
    # A value is a literal, never SQL text.
    assert rows(p, "select count() from events where event = {ev}", values={"ev": "x' OR 1=1 --"}) == [[0]]
    assert rows(p, "select count() from events where {filters}") == [[5]]


# --- errors --------------------------------------------------------------------------------------


BAD = [
    ("selec 1", "Syntax error"),
    ("select nonexistent_column from events", "Unable to resolve field: nonexistent_column"),
    ("select nope(1)", "nope"),
    ("select 1 from nowhere", "Unknown table `nowhere`"),
    ("select {missing}", "{missing}"),
    ("select {filters}", "{filters}"),
    ("insert into events values (1)", "SELECT"),
    ("", "empty"),
]


@pytest.mark.parametrize("text,detail", BAD)
def test_bad_query_is_a_400_pointing_at_the_problem(data, text, detail):
    r = data[0].api("POST", "/api/projects/@project/query/", {"query": {"kind": "HogQLQuery", "query": text}})
    body = assert_error(r, 400, type="validation_error")
    assert detail in body["detail"], body


def test_bad_requests(data):
    p = data[0]
    assert_error(p.api("POST", "/api/projects/@project/query/", {"nope": 1}), 400, attr="query")
    assert_error(p.api("POST", "/api/projects/@project/query/", {"query": {"kind": "NopeQuery"}}), 400, attr="kind")
    assert_error(p.api("POST", "/api/projects/@project/query/",
                       {"query": {"kind": "HogQLQuery", "query": "select 1", "bogus": 1}}), 400, attr="bogus")
    assert_error(p.api("POST", "/api/projects/@project/query/TrendsQuery/",
                       {"query": {"kind": "HogQLQuery", "query": "select 1"}}), 400, attr="kind")
    assert p.api("POST", "/api/projects/@project/query/HogQLQuery/",
                 {"query": {"kind": "HogQLQuery", "query": "select 1"}}).status == 200
    assert_error(p.api("GET", "/api/projects/@project/query/0123abc/"), 404)


def test_auth(data, server):
    p, other = data
    for path in ("/api/projects/@project/query/", "/api/projects/@project/query", "/api/environments/@project/query/",
                 "/api/projects/@project/query/1", "/api/projects/@project/query/HogQLQuery/"):
        for method in ("POST", "GET", "DELETE"):
            r = http(method, p.url + path.replace("@project", str(p.id)), {"query": {}})
            assert_error(r, 401, type="authentication_error")
        r = http("POST", p.url + path.replace("@project", str(p.id)), {"query": {}},
                 {"Authorization": "Bearer phx_wrong"})
        assert_error(r, 401)
    # A key limited to one project cannot query another.
    r = p.api("POST", f"/api/projects/{other.id}/query/", {"query": {"kind": "HogQLQuery", "query": "select 1"}})
    assert_error(r, 403)
    assert p.api("POST", f"/api/environments/{p.id}/query/",
                 {"query": {"kind": "HogQLQuery", "query": "select 1"}}).status == 200


# --- what a query can never reach ------------------------------------------------------------------


ESCAPES = [
    "select * from events",
    "select count() from events where event = 'secret'",
    "select * from (select * from events)",
    "with x as (select * from events) select * from x",
    "select event from events union all select event from events",
    "select e.properties from events e join events f on 1 = 1",
    "select * from persons", "select * from groups", "select * from person_distinct_ids",
    "select * from event", "select * from main.event", "select * from `event`", "select * from \"event\"",
    "select * from ev/**/ent", "select * from events -- ; select * from event",
    "select * from personal_key", "select * from project", "select * from sqlite_master",
    "select * from sqlite_schema", "select * from pragma_table_info('event')", "select * from temp.event",
    "select * from file('/etc/passwd')", "select * from url('http://x')", "select * from numbers(10)",
    "select * from remote('x', 'y')", "select * from json_each('[1]')", "select * from mysql('a','b','c','d','e')",
    "select 1; attach database '/tmp/x.db' as x", "attach database '/tmp/x.db' as x", "pragma table_info(event)",
    "select 1; drop table event", "drop table event", "delete from events", "update events set event = 'x'",
    "insert into events select * from events", "create table x (a int)", "select load_extension('x')",
    "select readfile('/etc/passwd')", "select * from events settings max_execution_time = 1000",
    "with recursive r(n) as (select 1 union all select n + 1 from r) select * from r",
    "select * from events where team_id = {other}", "select * from events e, event x",
    "select (select count() from event)", "select * from events where exists (select 1 from event)",
]


@pytest.mark.parametrize("text", ESCAPES)
def test_never_another_projects_rows_nor_another_table(data, text):
    p, other = data
    r = p.api("POST", "/api/projects/@project/query/",
              {"query": {"kind": "HogQLQuery", "query": text, "values": {"other": other.id}}})
    assert r.status in (200, 400), r.body
    assert b"other-project-secret" not in r.body and b"phx_" not in r.body and b"phc_" not in r.body, r.body
    if r.status == 400:
        assert_error(r, 400)
    else:
        assert all(row.count("secret") == 0 for row in r.json()["results"])


def test_team_id_is_the_keys_project(data):
    p, other = data
    assert rows(p, "select distinct team_id from events") == [[p.id]]
    assert rows(p, f"select count() from events where team_id = {other.id}") == [[0]]


def test_the_store_refuses_what_the_translation_would_never_send(server):
    # The second wall: even raw SQL on the query connection cannot write, attach or read other tables.
    from phlite.query.runner import FUNCTIONS
    from phlite.query.tables import STORE_TABLES
    from phlite.errors import BadRequest

    store = server.store
    for sql in ("SELECT * FROM personal_key", "SELECT * FROM project", "DELETE FROM event",
                "ATTACH DATABASE ':memory:' AS x", "PRAGMA query_only = 0", "SELECT * FROM sqlite_master",
                "CREATE TEMP TABLE x (a)", "SELECT load_extension('x')"):
        with pytest.raises(BadRequest):
            store.run_read_query(sql, functions=FUNCTIONS, tables=STORE_TABLES, timeout_s=1, max_rows=10)


# --- limits ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_runaway_query_is_stopped_while_ingestion_goes_on(make_server):
    srv = make_server(query_timeout=0.5)
    p = Project(srv)
    send(p, *[ev("e", f"d{i}") for i in range(200)])
    result = {}

    def runaway():
        result["r"] = p.api("POST", "/api/projects/@project/query/", {"query": {
            "kind": "HogQLQuery", "query": "select count() from events a, events b, events c, events d"}})

    t = threading.Thread(target=runaway)
    t.start()
    send(p, *[ev("during", f"x{i}") for i in range(50)])  # capture answers and the writer stores meanwhile
    t.join(30)
    body = assert_error(result["r"], 400, code="timeout_exceeded")
    assert "time limit" in body["detail"]
    assert rows(p, "select count() from events where event = 'during'") == [[50]]


# --- a client written for PostHog --------------------------------------------------------------------


CLIENT = """
import json, os, requests
url = os.environ["HOST"] + "/api/projects/" + os.environ["PROJECT_ID"] + "/query/"
headers = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["POSTHOG_PERSONAL_API_KEY"]}
payload = {"query": {"kind": "HogQLQuery",
                     "query": "select properties.email from persons where properties.email is not null"}}
response = requests.post(url, headers=headers, data=json.dumps(payload))
response.raise_for_status()
print(json.dumps(response.json()["results"]))
"""


@pytest.mark.slow
def test_posthogs_documented_example_unchanged(data):
    p = data[0]
    env = {"HOST": p.url, "PROJECT_ID": str(p.id), "POSTHOG_PERSONAL_API_KEY": p.key, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [["one@example.com"]]
