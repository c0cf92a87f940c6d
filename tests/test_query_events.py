"""EventsQuery: the events table of PostHog's UI, against the events sent (docs/insights.md "EventsQuery")."""

from datetime import datetime, timedelta, timezone

import pytest

from support import InProcessServer, Project, ev, send
from phlite.config import Config

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    srv = InProcessServer(Config(data_dir=tmp_path_factory.mktemp("events")), clock=lambda: NOW.timestamp())
    p = Project(srv, "events")
    send(p, *[ev("$pageview" if i % 3 else "click", f"u{i % 4}", (NOW - timedelta(hours=i)).isoformat(),
                 **{"$browser": "Chrome" if i % 2 else "Safari", "$current_url": f"https://x/{i}", "$lib": "web"})
              for i in range(30)],
         ev("$identify", "u1", (NOW - timedelta(hours=40)).isoformat(), **{"$set": {"email": "u1@x"}}))
    yield p
    srv.close()


def events_query(project, **q):
    r = project.api("POST", "/api/projects/@project/query/", {"query": {"kind": "EventsQuery", **q}})
    assert r.status == 200, r.body
    return r.json()


def test_the_reference_example(project):
    body = events_query(project, select=["*", "event", "person",
                                         "coalesce(properties.$current_url, properties.$screen_name) -- Url / Screen",
                                         "properties.$lib", "timestamp"],
                        where=["properties.$browser = 'Chrome'"], event="$pageview", orderBy=["timestamp DESC"],
                        after="-24h", limit=100)
    # Within the last 24 h, exclusive; Chrome means odd i; $pageview means i % 3 != 0.
    want = [i for i in range(30) if i < 24 and i % 2 and i % 3 and NOW - timedelta(hours=i) > NOW - timedelta(hours=24)]
    assert [r[3] for r in body["results"]] == [f"https://x/{i}" for i in want]
    star, event, person, url, lib, ts = body["results"][0]
    assert star["event"] == "$pageview" and star["properties"]["$browser"] == "Chrome"
    assert star["timestamp"] == ts == (NOW - timedelta(hours=want[0])).isoformat().replace("+00:00", "Z")
    assert person["distinct_id"] == star["distinct_id"] and "uuid" in person
    assert body["columns"][3].endswith("-- Url / Screen") and len(body["types"]) == 6
    assert isinstance(body["types"][0], str)  # a flat list here, not pairs
    assert body["hasMore"] is False and body["limit"] == 100


def test_aggregates_group_by_the_other_columns(project):
    body = events_query(project, select=["event", "count()"], after="all")
    counts = {}
    for i in range(30):
        e = "$pageview" if i % 3 else "click"
        counts[e] = counts.get(e, 0) + 1
    counts["$identify"] = 1
    assert body["results"] == sorted(([e, c] for e, c in counts.items()), key=lambda r: -r[1])


def test_limit_offset_has_more_and_person(project):
    body = events_query(project, select=["timestamp"], after="all", limit=5, offset=2)
    assert body["hasMore"] is True and len(body["results"]) == 5
    assert body["results"][0][0] == (NOW - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    body = events_query(project, select=["person"], properties=[{"key": "email", "value": "u1@x", "type": "person"}],
                        after="all", limit=50)
    assert len(body["results"]) == 1 + sum(1 for i in range(30) if i % 4 == 1)
    assert body["results"][0][0]["properties"]["email"] == "u1@x"


def test_bad_select_is_a_400(project):
    r = project.api("POST", "/api/projects/@project/query/",
                    {"query": {"kind": "EventsQuery", "select": ["nope_column"]}})
    assert r.status == 400 and "nope_column" in r.json()["detail"]
