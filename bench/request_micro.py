"""phlite's own CPU per request, in process: the WSGI app called directly, no sockets, no threads.

Builds phlite on a temporary data dir (the 20 flags, cohort, group and 10-property person of
bench.py's flags scenario), then calls the WSGI app N times for
  capture: POST /e/ with a gzip posthog-js batch of one $pageview (what posthog-js sends),
  flags:   POST /flags/?v=2 with the JSON posthog-node sends,
and the same requests against bench/bare_app.py's bare bottle app (gunzip + parse + answer) in
the same run. Prints CPU microseconds per request (process time), median of 3 alternated rounds.

    python bench/request_micro.py [N]                 # default N = 3000
    python bench/request_micro.py N --profile capture  # or flags: cProfile of phlite's handler
"""

import gzip
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bare_app  # noqa: E402
from bench import FLAG_USER, GROUP_PROPERTIES, NOW, PERSON_PROPERTIES, flag_definitions, js_event  # noqa: E402

from phlite.config import Config  # noqa: E402
from phlite.app import open_app  # noqa: E402
from phlite.web import create_app  # noqa: E402

BROWSER_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")


class Call:
    """One prepared request: environ template and body; `app` answers (status, body bytes)."""

    def __init__(self, method, path, body=b"", headers=None):
        path, _, qs = path.partition("?")
        self.body = body
        self.environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": qs, "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body)), "HTTP_HOST": "127.0.0.1:8000",
        }
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            self.environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value

    def __call__(self, app):
        env = dict(self.environ)
        env["wsgi.input"] = io.BytesIO(self.body)
        status = []
        out = app(env, lambda s, h, exc_info=None: status.append(s))
        body = b"".join(out)
        if hasattr(out, "close"):
            out.close()
        return status[0], body


def setup(tmp):
    services = open_app(Config(data_dir=Path(tmp)), start_writer=False)
    app = create_app(services)
    store = services.store
    project = store.create_project("bench")
    token = project["api_token"]
    key = store.create_personal_key("bench", [project["id"]])["personal_api_key"]

    def api(method, path, body=None):
        status, out = Call(method, path.replace("@p", str(project["id"])), orjson.dumps(body) if body else b"",
                           {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})(app)
        assert status.startswith("2"), (status, out)
        return orjson.loads(out)

    events = [
        {"event": "$identify", "distinct_id": FLAG_USER, "properties": {"$set": PERSON_PROPERTIES},
         "timestamp": NOW.isoformat()},
        {"event": "$groupidentify", "distinct_id": FLAG_USER,
         "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": GROUP_PROPERTIES},
         "timestamp": NOW.isoformat()},
    ]
    status, out = Call("POST", "/batch/", orjson.dumps({"api_key": token, "batch": events}),
                       {"Content-Type": "application/json"})(app)
    assert status.startswith("200"), (status, out)
    services.ingestion.flush()
    cohort = api("POST", "/api/projects/@p/cohorts/", {
        "name": "Germany and France",
        "filters": {"properties": {"type": "OR", "values": [{"type": "AND", "values": [
            {"key": "country", "type": "person", "operator": "exact", "value": ["DE", "FR"]}]}]}},
    })
    for f in flag_definitions(cohort["id"]):
        api("POST", "/api/projects/@p/feature_flags/", f)
    return services, app, token


def requests(token):
    capture = Call("POST", "/e/?compression=gzip-js&ip=1&_=1700000000000&ver=1.200.0",
                   gzip.compress(orjson.dumps([js_event(token, 0, "anon-1")]), 6),
                   {"Content-Type": "text/plain", "User-Agent": BROWSER_UA, "Origin": "https://example.com"})
    # posthog-node's getFlags: its own person/group properties added, geoip off.
    flags = Call("POST", "/flags/?v=2", orjson.dumps({
        "token": token, "distinct_id": FLAG_USER, "groups": {"company": "acme"},
        "person_properties": {"distinct_id": FLAG_USER},
        "group_properties": {"company": {"$group_key": "acme"}}, "geoip_disable": True,
    }), {"Content-Type": "application/json", "User-Agent": "posthog-node/5.8.1"})
    return capture, flags


def us_per_call(app, call, n):
    """CPU time of this process per call: steadier than wall time on a shared machine (nothing else
    runs in the process, the writer thread is not started)."""
    t = time.process_time()
    for _ in range(n):
        call(app)
    return (time.process_time() - t) / n * 1e6


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 3000
    profile = sys.argv[sys.argv.index("--profile") + 1] if "--profile" in sys.argv else None
    with tempfile.TemporaryDirectory(prefix="phlite-micro-") as tmp:
        services, app, token = setup(tmp)
        capture, flags = requests(token)
        status, flags_answer = flags(app)
        assert status.startswith("200") and len(orjson.loads(flags_answer)["flags"]) == 20, flags_answer
        status, out = capture(app)
        assert status.startswith("200"), (status, out)
        bare_app.FLAGS_RESPONSE = flags_answer  # the baseline answers the same bytes
        drain = services.ingestion.flush
        for call in (capture, flags):  # warm up (caches, first compile)
            for _ in range(200):
                call(app)
                call(bare_app.app)
        drain()
        if profile:
            import cProfile
            import pstats

            call = capture if profile == "capture" else flags
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(n):
                call(app)
            prof.disable()
            drain()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
            services.close()
            return
        rows = []
        for name, call in (("capture /e/ (gzip, 1 event)", capture), ("flags POST /flags?v=2 (20 flags)", flags)):
            ours, bare = [], []
            for _ in range(3):  # alternated, so a slower moment of the machine hits both
                ours.append(us_per_call(app, call, n))
                drain()  # outside the timing: store what the capture round queued
                bare.append(us_per_call(bare_app.app, call, n))
            rows.append((name, statistics.median(ours), statistics.median(bare)))
        services.close()
    print(f"{'request':36} {'phlite us':>10} {'bare us':>9} {'ratio':>6}   (N={n}, median of 3)")
    for name, ours, bare in rows:
        print(f"{name:36} {ours:10.1f} {bare:9.1f} {ours / bare:6.2f}")


if __name__ == "__main__":
    main()
