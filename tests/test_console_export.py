"""Settings -> "Download an export" over HTTP against a real server: a date range of events as gzip JSONL and
as CSV, persons, flags; the download is byte for byte what `export()` writes, read back; members may download,
signed-out visitors and bad parameters may not; the button in Chromium (tests/js/console_export.mjs). And
docs/lifecycle.md "Parquet": its DuckDB command, run as written there."""

import csv
import gzip
import io
import json
import re
import subprocess

import pytest

from support import ROOT, ConsoleClient, console_user, ev, send
from phlite import lifecycle


def _events(project):
    # Three days; the range asked for is the middle one and the first, inclusive.
    send(project, *(ev("day1", f"u{k}", "2024-03-01T10:00:00Z", n=k) for k in range(3)),
         *(ev("day2", f"u{k}", "2024-03-02T23:59:59Z", n=k, nested={"a": [1, "é"]}) for k in range(2)),
         ev("day3", "u0", "2024-03-03T00:00:00Z"), {"event": "$identify", "distinct_id": "u1",
                                                    "properties": {"$anon_distinct_id": "u2"},
                                                    "timestamp": "2024-03-01T11:00:00Z"})


def test_settings_offers_a_download_and_it_is_the_export_file(server, project, tmp_path):
    _events(project)
    admin = console_user(server, "admin")
    page = admin.text(f"/project/{project.id}/settings")
    assert f'action="/project/{project.id}/export"' in page and "Download an export" in page

    r = admin.get(f"/project/{project.id}/export?table=events&format=jsonl&from=2024-03-01&to=2024-03-02")
    assert r.status == 200, r.body[:300]
    assert r.headers["Content-Type"] == "application/gzip"
    assert r.headers["Content-Disposition"] == (
        f'attachment; filename="phlite-project-{project.id}-events-2024-03-01-2024-03-02.jsonl.gz"')
    assert r.headers.get("Transfer-Encoding") == "chunked"  # streamed, not built whole first
    rows = [json.loads(line) for line in gzip.decompress(r.body).splitlines()]
    assert [e["event"] for e in rows] == ["day1"] * 3 + ["$identify"] + ["day2"] * 2
    assert rows[-1]["properties"]["nested"] == {"a": [1, "é"]} and rows[-1]["timestamp"] == "2024-03-02T23:59:59.000000Z"
    # The same bytes as `python app.py export` writes for that range.
    written = lifecycle.export(server.store, project.id, tmp_path, after=lifecycle.parse_when("2024-03-01"),
                               before=lifecycle.parse_when("2024-03-03"))
    assert written["events.jsonl.gz"] == 6 and (tmp_path / "events.jsonl.gz").read_bytes() == r.body

    r = admin.get(f"/project/{project.id}/export?table=events&format=csv&from=2024-03-02")
    assert r.status == 200 and r.headers["Content-Type"] == "text/csv; charset=utf-8"
    table = list(csv.DictReader(io.StringIO(r.body.decode("utf-8"))))
    assert [e["event"] for e in table] == ["day2", "day2", "day3"]
    assert json.loads(table[0]["properties"])["nested"] == {"a": [1, "é"]}

    # Persons: the merge of u1 and u2 is one person with both ids.
    r = admin.get(f"/project/{project.id}/export?table=persons&format=csv")
    persons = list(csv.DictReader(io.StringIO(r.body.decode())))
    ids = {}
    for p in persons:
        ids.setdefault(p["person_id"], set()).add(p["distinct_id"])
    assert sorted(map(sorted, ids.values())) == [["u0"], ["u1", "u2"]]
    assert re.search(r'filename="phlite-project-\d+-persons\.csv"', r.headers["Content-Disposition"])

    # Flags are JSON lines whatever the format; an empty table is a valid empty file.
    r = admin.get(f"/project/{project.id}/export?table=feature_flags&format=csv")
    assert r.status == 200 and r.headers["Content-Type"] == "application/gzip" and gzip.decompress(r.body) == b""
    r = admin.get(f"/project/{project.id}/export?table=groups&format=csv")
    assert r.body.decode().splitlines() == [",".join(lifecycle.CSV_FIELDS["groups"])]


def test_who_may_download_and_bad_parameters(server, project):
    _events(project)
    member = console_user(server, "member")
    r = member.get(f"/project/{project.id}/export?table=events")
    assert r.status == 200 and len(gzip.decompress(r.body).splitlines()) == 7
    assert "Download an export" in member.text(f"/project/{project.id}/settings")
    # Signed out: to the sign-in page, no data.
    r = ConsoleClient(server.url).get(f"/project/{project.id}/export?table=events")
    assert r.status == 303 and "/console/login" in r.headers["Location"] and b"day1" not in r.body
    for query in ("table=event", "format=parquet", "from=2024-13-01", "from=yesterday", "from=2024-03-02&to=2024-03-01"):
        r = member.get(f"/project/{project.id}/export?{query}")
        assert r.status == 400 and r.headers["Content-Type"].startswith("text/html"), query
    assert member.get("/project/999999/export").status == 404


def test_the_parquet_command_of_the_docs_reads_the_export(server, project, tmp_path):
    duckdb = pytest.importorskip("duckdb")  # in the test extra: tests/run.sh installs it
    _events(project)
    lifecycle.export(server.store, project.id, tmp_path / "export-1")
    doc = (ROOT / "docs" / "lifecycle.md").read_text()
    (sql,) = re.findall(r"^duckdb <<'SQL'\n(.*?)\nSQL$", doc, re.M | re.S)
    con = duckdb.connect()
    con.execute(sql.replace("'export-1/", f"'{tmp_path}/export-1/"))
    rows = con.execute(f"SELECT event, distinct_id, properties->>'$.n', typeof(timestamp), person_id"
                       f" FROM '{tmp_path}/export-1/events.parquet' ORDER BY timestamp, event, distinct_id").fetchall()
    assert [r[0] for r in rows] == ["day1"] * 3 + ["$identify"] + ["day2"] * 2 + ["day3"]
    assert rows[1][1:4] == ("u1", "1", "TIMESTAMP WITH TIME ZONE")
    # u1 and u2 merged: one person id on both, as in the JSON lines.
    assert rows[1][4] == rows[2][4] and rows[0][4] != rows[1][4]


@pytest.mark.slow
def test_the_download_button_in_chromium(server, project):
    from test_browser import CHROMIUM, JS, MODULES

    if not (MODULES / "playwright-core").is_dir() or not CHROMIUM.exists():
        pytest.skip("tests/js/node_modules or /usr/bin/chromium missing (tests/run.sh installs them)")
    _events(project)
    email = f"export-{project.id}@example.com"
    server.app.console.create_user(email, "member", "correct horse battery")
    proc = subprocess.run(
        ["node", "console_export.mjs", server.url, str(project.id), email, "correct horse battery", "2024-03-02",
         "2024-03-03"], cwd=JS, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in out and out["failure"] is None and out["pageErrors"] == [] and out["console"] == [], out
    assert out["name"] == f"phlite-project-{project.id}-events-2024-03-02-2024-03-03.csv"
    assert out["url"].endswith(f"/project/{project.id}/settings")
    rows = list(csv.DictReader(io.StringIO(out["text"])))
    assert [r["event"] for r in rows] == ["day2", "day2", "day3"]
