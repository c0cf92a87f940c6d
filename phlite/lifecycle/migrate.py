"""`python app.py migrate posthog`: a project into a PostHog (or another phlite) over its public API.

Order (docs/lifecycle.md "Migrate to PostHog"): cohorts, then flags, each in dependency order with
the ids inside their filters remapped to the destination's; then every event through `/batch/`
with `historical_migration`, keeping its uuid and timestamp, in the order phlite stored (and built
persons from) them; then a count of events per day on both sides. A checkpoint file records the
id maps and the last event sent after each step, so an interrupted run resumes where it stopped;
resending from a slightly early point is harmless because the destination dedupes by uuid.
"""

import copy
import json
import os
import signal
import time

import orjson

from phlite import flags
from phlite.lifecycle import formats

# Fields of a flag the destination assigns or computes (PostHog strips or overwrites them on create).
FLAG_FIELDS = ("key", "name", "filters", "active", "ensure_experience_continuity", "evaluation_runtime",
               "evaluation_tags", "is_remote_configuration", "bucketing_identifier")
COHORT_FIELDS = ("name", "description", "filters", "is_static")
BATCH_BYTES = 4 * 1024 * 1024  # under PostHog's 20 MiB /batch/ limit and posthog-python's 5 MiB batches


class Checkpoint:
    """The resumable state, rewritten atomically (temp file + rename) after every step."""

    def __init__(self, path, host, project_id):
        self.path = path
        self.state = {"host": host, "source_project": project_id, "destination_project": None,
                      "cohorts": {}, "flags": {}, "last_event_id": 0, "events_sent": 0}
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("host") != host or saved.get("source_project") != project_id:
                raise SystemExit(f"phlite: checkpoint {path} is for another migration"
                                 f" ({saved.get('host')}, project {saved.get('source_project')}); use --checkpoint")
            self.state.update(saved)

    def __getitem__(self, key):
        return self.state[key]

    def __setitem__(self, key, value):
        self.state[key] = value

    def save(self):
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)


class Pacer:
    """At most `rate` events per second on average (0: no limit)."""

    def __init__(self, rate, clock=time.monotonic, sleep=time.sleep):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.next = None

    def wait(self, n):
        if self.rate <= 0:
            return
        now = self.clock()
        if self.next is None or self.next < now:
            self.next = now
        if self.next > now:
            self.sleep(self.next - now)
        self.next += n / self.rate


def _remap_cohort_filters(node, cohort_map):
    """A copy of cohort filters (or a flag's filters) with every cohort id replaced by the destination's."""
    node = copy.deepcopy(node)
    leaves = []
    if isinstance(node, dict) and "properties" in node and isinstance(node["properties"], dict):
        leaves = list(flags.cohort_leaves(node["properties"]))
    for leaf in leaves:
        if leaf.get("type") == "cohort":
            _remap_leaf(leaf, cohort_map)
    return node


def _remap_leaf(leaf, cohort_map):
    ref = flags.cohort_id(leaf.get("value"))
    if ref is None or str(ref) not in cohort_map:
        raise MigrationError(f"filter names cohort {leaf.get('value')!r}, which was not migrated")
    leaf["value"] = cohort_map[str(ref)]


def _remap_flag_filters(filters, cohort_map, flag_map):
    filters = copy.deepcopy(filters)
    for _, _, prop in flags.property_filters(filters):
        if prop.get("type") == "cohort":
            _remap_leaf(prop, cohort_map)
        elif prop.get("type") == "flag":
            if str(prop.get("key")) not in flag_map:
                raise MigrationError(f"flag filter names flag {prop.get('key')!r}, which was not migrated")
            prop["key"] = str(flag_map[str(prop["key"])])
    return filters


class MigrationError(Exception):
    pass


def _ordered(rows, refs):
    """Rows with every row after the rows it references (refs(row) -> ids)."""
    by_id = {r["id"]: r for r in rows}
    graph = {r["id"]: [i for i in refs(r) if i in by_id] for r in rows}
    order, _ = flags.walk_dependencies(graph)
    return [by_id[i] for i in order]


def _all(list_page, project_id):
    rows, offset = [], 0
    while page := list_page(project_id, limit=1000, offset=offset)[0]:
        rows += page
        offset += len(page)
    return rows


def migrate(store, project_id, dest, checkpoint, *, dry_run=False, pacer=None, batch_events=1000, log=print,
            progress=None, kill_after_batches=None):
    """Run (or resume) the migration; returns the summary dict."""
    summary = {"cohorts": 0, "flags": 0, "events_sent": 0, "dry_run": dry_run}
    cohorts = _ordered(_all(store.list_cohorts, project_id),
                       lambda c: [] if c["is_static"] else flags.cohort_refs(c["filters"].get("properties")))
    flag_rows = _ordered(_all(store.list_flags, project_id),
                         lambda f: [int(p["key"]) for _, p in flags.flag_refs(f["filters"])
                                    if str(p.get("key")).isdigit()])
    total_events = store.count_events_after(project_id, checkpoint["last_event_id"])
    if dry_run:
        log(f"dry run: would create {len(cohorts)} cohorts and {len(flag_rows)} flags, and send"
            f" {total_events} events (after event id {checkpoint['last_event_id']})")
        return {**summary, "cohorts": len(cohorts), "flags": len(flag_rows), "events_sent": 0,
                "events_to_send": total_events}

    if checkpoint["destination_project"] is None:
        checkpoint["destination_project"] = dest.project_id()
        checkpoint.save()
    pid = checkpoint["destination_project"]

    # Cohorts, then flags (flags name cohorts; cohorts never name flags). An object already at the
    # destination (same cohort name, same flag key) is mapped, not created twice, so a run without
    # its checkpoint does not duplicate definitions either.
    def cohort_body(c):
        body = {k: c[k] for k in COHORT_FIELDS}
        body["filters"] = _remap_cohort_filters(c["filters"], checkpoint["cohorts"])
        if c["is_static"]:
            body["distinct_ids"] = store.static_members(c["id"])
        return body

    def flag_body(f):
        body = {k: f[k] for k in FLAG_FIELDS}
        body["filters"] = _remap_flag_filters(f["filters"], checkpoint["cohorts"], checkpoint["flags"])
        body["_should_create_usage_dashboard"] = False  # PostHog would make a dashboard per flag
        return body

    for kind, rows, path, name, make in (("cohorts", cohorts, "cohorts", "name", cohort_body),
                                         ("flags", flag_rows, "feature_flags", "key", flag_body)):
        done, existing = checkpoint[kind], None
        for row in rows:
            if str(row["id"]) in done:
                continue
            if existing is None:
                existing = {x[name]: x["id"] for x in dest.pages(f"/api/projects/{pid}/{path}/?limit=1000")}
            if row[name] in existing:
                done[str(row["id"])] = existing[row[name]]
            else:
                done[str(row["id"])] = dest.request("POST", f"/api/projects/{pid}/{path}/", make(row))[1]["id"]
                summary[kind] += 1
            checkpoint.save()

    # Events, in stored order: the order phlite processed them in, so the destination builds the
    # same persons, merges and groups (docs/lifecycle.md "Migrate to PostHog").
    batches = 0
    sent = 0
    while True:
        rows = store.migrate_events_page(project_id, after_id=checkpoint["last_event_id"], limit=batch_events)
        if not rows:
            break
        batch, size = [], 0
        for r in rows:
            e = {"uuid": r[1], "event": r[2], "distinct_id": r[3], "timestamp": formats.iso(r[5]),
                 "properties": orjson.Fragment(r[4])}
            size += len(r[4]) + 200
            batch.append(e)
            last = r[0]
            if size > BATCH_BYTES:
                break
        if pacer:
            pacer.wait(len(batch))
        dest.send_batch(batch)
        batches += 1
        sent += len(batch)
        if kill_after_batches is not None and batches >= kill_after_batches:
            # Test knob: die after a batch was sent and before it was checkpointed, the worst moment.
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint["last_event_id"] = last
        checkpoint["events_sent"] += len(batch)
        checkpoint.save()
        if progress:
            progress(sent)
    summary["events_sent"] = sent
    summary["retries"] = dest.retries
    summary["throttled"] = dest.throttled
    return summary


DAY_QUERY = "SELECT toDate(timestamp) AS day, count() AS n FROM events GROUP BY day ORDER BY day LIMIT 50000"


def destination_days(dest, pid):
    """({day: events} at the destination, how it was counted)."""
    rows = dest.query(pid, DAY_QUERY)
    if rows is not None:
        return {str(day)[:10]: int(n) for day, n in rows}, "the /query/ API (HogQL)"
    days = {}
    for e in dest.pages(f"/api/projects/{pid}/events/?limit=1000"):
        day = str(e.get("timestamp"))[:10]
        days[day] = days.get(day, 0) + 1
    return days, "the events list API (the destination has no /query/ API)"


def verify(store, project_id, dest, pid, *, wait=30.0, sleep=time.sleep, clock=time.monotonic):
    """Compare events per UTC day on both sides, waiting up to `wait` s for the destination's
    ingestion to catch up. Returns {"ok", "method", "days": [{"day", "source", "destination"}]}."""
    source = store.count_events_by_day(project_id)
    deadline = clock() + wait
    while True:
        theirs, method = destination_days(dest, pid)
        ok = all(theirs.get(d, 0) == n for d, n in source.items())
        if ok or clock() > deadline:
            break
        sleep(1.0)
    days = [{"day": d, "source": n, "destination": theirs.get(d, 0)} for d, n in sorted(source.items())]
    extra = sorted(set(theirs) - set(source))
    days += [{"day": d, "source": 0, "destination": theirs[d]} for d in extra]
    return {"ok": ok, "method": method, "days": days}


def migrate_posthog(store, project_id, host, project_api_key, personal_api_key, *, checkpoint_path, dry_run=False,
                    rate=1000, batch_events=1000, progress_stream=None, log=print, kill_after_batches=None,
                    sleep=time.sleep):
    """The whole command: definitions, events, verification. Returns the summary; raises
    MigrationError (or DestinationError) when the destination refuses, with the checkpoint saved."""
    from phlite.lifecycle.client import Destination, DestinationError
    from phlite.lifecycle.progress import Progress

    dest = Destination(host, project_api_key, personal_api_key, sleep=sleep)
    checkpoint = Checkpoint(checkpoint_path, dest.host, project_id)
    total = store.count_events_after(project_id, checkpoint["last_event_id"])
    bar = Progress(progress_stream, "sending events", total) if progress_stream is not None else None
    try:
        summary = migrate(store, project_id, dest, checkpoint, dry_run=dry_run, pacer=Pacer(rate, sleep=sleep),
                          batch_events=batch_events, log=log, progress=bar.update if bar else None,
                          kill_after_batches=int(kill_after_batches) if kill_after_batches else None)
        if bar:
            bar.finish()
        if dry_run:
            return summary
        log(f"created {summary['cohorts']} cohorts and {summary['flags']} flags; sent {summary['events_sent']} events"
            f" ({summary['retries']} retries, {summary['throttled']} answered 429)")
        result = verify(store, project_id, dest, checkpoint["destination_project"], sleep=sleep)
    except DestinationError as e:
        raise MigrationError(str(e)) from None
    summary["verification"] = result
    log(f"verification through {result['method']}: "
        + ("every day matches" if result["ok"] else "MISMATCH (the destination may still be ingesting)"))
    for d in result["days"]:
        if d["source"] != d["destination"]:
            log(f"  {d['day']}: phlite {d['source']}, destination {d['destination']}")
    return summary
