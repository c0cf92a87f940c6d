"""WebOverviewQuery against a plain-Python reading of the same sessions (docs/insights.md "WebOverviewQuery")."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from support import InProcessServer, Project, ev, send
from phlite.config import Config

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)


def generate(seed=11):
    rnd = random.Random(seed)
    events = []
    for s in range(80):
        user = f"u{rnd.randrange(30)}"
        t = NOW - timedelta(days=rnd.uniform(0, 15))
        for _ in range(rnd.randrange(1, 5)):
            name = rnd.choice(["$pageview", "$pageview", "$autocapture", "other"])
            events.append(ev(name, user, t.isoformat(), **{"$session_id": f"s{s}"}))
            t += timedelta(seconds=rnd.choice([1, 3, 8, 40]))
    events.append(ev("$pageview", "nosession", NOW.isoformat()))  # no $session_id: not a web session
    return events


EVENTS = generate()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    srv = InProcessServer(Config(data_dir=tmp_path_factory.mktemp("web")), clock=lambda: NOW.timestamp())
    p = Project(srv, "web")
    send(p, *EVENTS)
    yield p
    srv.close()


def expected(lo, hi):
    sessions = {}
    for e in EVENTS:
        sid = e["properties"].get("$session_id")
        if sid:
            sessions.setdefault(sid, []).append(e)
    picked = []
    for evs in sessions.values():
        times = sorted(datetime.fromisoformat(e["timestamp"]) for e in evs)
        views = [e for e in evs if e["event"] == "$pageview"]
        in_window = [e for e in views if lo <= datetime.fromisoformat(e["timestamp"]) <= hi]
        if not (lo <= times[0] <= hi) or not in_window:
            continue
        duration = int((times[-1] - times[0]).total_seconds())
        bounce = not (len(views) > 1 or any(e["event"] == "$autocapture" for e in evs) or duration >= 10)
        picked.append((views[0]["distinct_id"], len(in_window), duration, bounce))
    return {"visitors": len({p[0] for p in picked}), "views": sum(p[1] for p in picked), "sessions": len(picked),
            "session duration": sum(p[2] for p in picked) / len(picked),
            "bounce rate": 100 * sum(p[3] for p in picked) / len(picked)}


def test_overview_and_previous_period(project):
    r = project.api("POST", "/api/projects/@project/query/", {"query": {
        "kind": "WebOverviewQuery", "dateRange": {"date_from": "-7d"}, "properties": [],
        "compareFilter": {"compare": True}}})
    assert r.status == 200, r.body
    body = r.json()
    lo = (NOW - timedelta(days=7)).replace(hour=0, minute=0, second=0)
    hi = NOW.replace(hour=23, minute=59, second=59, microsecond=999000)
    want = expected(lo, hi)
    length = hi - lo + timedelta(milliseconds=1)
    before = expected(lo - length, lo - timedelta(milliseconds=1))
    got = {x["key"]: x for x in body["results"]}
    assert list(got) == ["visitors", "views", "sessions", "session duration", "bounce rate"]
    for key in want:
        assert got[key]["value"] == pytest.approx(want[key]), key
        assert got[key]["previous"] == pytest.approx(before[key]), key
    assert got["bounce rate"]["kind"] == "percentage" and got["bounce rate"]["isIncreaseBad"] is True
    assert got["sessions"]["changeFromPreviousPct"] == round(100 * (want["sessions"] - before["sessions"])
                                                             / before["sessions"])
    assert body["dateFrom"] == lo.strftime("%Y-%m-%d %H:%M:%S")
