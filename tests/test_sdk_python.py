"""The real posthog-python client (from PyPI) against a real phlite: what it sends is
stored with the right names, ids, timestamps and properties."""

from datetime import datetime, timezone

import pytest
from posthog import Posthog
from support import person


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


@pytest.mark.parametrize("compression", ["none", "gzip", "deflate"])
def test_capture_v1_mode(project, compression):
    """posthog-python's `capture_mode="v1"`: POST /i/v1/analytics/events, Bearer key, per-event results."""
    from posthog import CaptureMode

    errors = []
    c = Posthog(project.token, host=project.url, capture_mode="v1", capture_compression=compression, flush_at=10,
                on_error=lambda e, batch: errors.append(e), max_retries=0)
    assert c.capture_mode == CaptureMode.V1
    ts = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    for i in range(3):
        c.capture(f"v1-{i}", distinct_id="v1-user", timestamp=ts,
                  properties={"i": i, "$session_id": "sess-1", "$process_person_profile": False})
    c.set(distinct_id="v1-person", properties={"plan": "pro"})
    c.flush()
    c.shutdown()
    assert not errors, errors
    events = {e["event"]: e for e in project.events()}
    assert sorted(events) == ["$set", "v1-0", "v1-1", "v1-2"]
    props = events["v1-1"]["properties"]
    # What the SDK moved into options, top-level fields and a header is back where /batch has it.
    assert (props["i"], props["$session_id"], props["$process_person_profile"]) == (1, "sess-1", False)
    assert props["$lib"] == "posthog-python" and props["$lib_version"]
    stored = datetime.fromisoformat(events["v1-1"]["timestamp"].replace("Z", "+00:00"))
    assert abs((stored - ts).total_seconds()) < 5
    assert events["$set"]["properties"]["$set"] == {"plan": "pro"}
    assert person(project, "v1-user") is None  # $process_person_profile: false, through options
    assert person(project, "v1-person")["properties"]["plan"] == "pro"
