"""The real posthog-python client (from PyPI) against a real phlite: what it sends is
stored with the right names, ids, timestamps and properties."""

from datetime import datetime, timezone

import pytest
from posthog import Posthog


@pytest.fixture
def client(project):
    errors = []
    c = Posthog(project.token, host=project.url, on_error=lambda e, batch: errors.append(e), flush_at=5,
                max_retries=0)
    yield c
    c.shutdown()
    assert not errors, errors


@pytest.mark.parametrize("gzip", [False, True])
def test_capture_batching_and_gzip(project, gzip):
    errors = []
    c = Posthog(project.token, host=project.url, gzip=gzip, flush_at=3,
                on_error=lambda e, batch: errors.append(e), max_retries=0)
    ts = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    for i in range(7):
        c.capture(f"evt-{i}", distinct_id="py-user", properties={"i": i, "plan": "pro"}, timestamp=ts)
    c.flush()
    c.shutdown()
    assert not errors
    events = project.events()
    assert sorted(e["event"] for e in events) == [f"evt-{i}" for i in range(7)]
    for e in events:
        assert e["distinct_id"] == "py-user"
        assert e["properties"]["plan"] == "pro"
        assert e["properties"]["$lib"] == "posthog-python"
        # posthog-python sends sent_at: skew correction keeps a past timestamp within a second or so.
        stored = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        assert abs((stored - ts).total_seconds()) < 5


def test_capture_with_groups_set_set_once_alias_group_identify(project, client):
    client.capture("purchase", distinct_id="u1", properties={"amount": 5}, groups={"company": "acme"})
    client.set(distinct_id="u1", properties={"email": "u1@example.com"})
    client.set_once(distinct_id="u1", properties={"first_seen": "today"})
    client.alias(previous_id="anon-1", distinct_id="u1")
    client.group_identify("company", "acme", {"name": "Acme Inc"})
    client.flush()
    by_name = {e["event"]: e for e in project.events()}
    assert set(by_name) == {"purchase", "$set", "$create_alias", "$groupidentify"} | ({"$set_once"} & set(by_name))
    assert by_name["purchase"]["properties"]["$groups"] == {"company": "acme"}
    assert by_name["$set"]["properties"]["$set"] == {"email": "u1@example.com"}
    set_once = [e for e in project.events() if "$set_once" in e["properties"]]
    assert any(e["properties"]["$set_once"] == {"first_seen": "today"} for e in set_once)
    assert by_name["$create_alias"]["properties"]["alias"] == "u1"
    assert by_name["$groupidentify"]["properties"]["$group_set"] == {"name": "Acme Inc"}
