"""`python app.py forward set|off|status`: a project's forwarding to PostHog (docs/lifecycle.md "Forwarding").

Like the other admin commands it opens the store alone, so it runs beside the server, whose forwarder
reads the destination from the database and applies a change from its next group commit.
"""

import json
import sys

from phlite import datadir


def add_parsers(sub, settings, settings_without_host):
    # --host is the destination here, as in `migrate posthog`, so the listen-address setting is left out.
    forward = sub.add_parser("forward", help="Also send every stored event to PostHog (docs/lifecycle.md).")
    forward = forward.add_subparsers(dest="action", required=True)
    p = forward.add_parser("set", parents=[settings_without_host],
                           help="Forward a project's events to a PostHog project from now on.")
    p.add_argument("--host", dest="destination", required=True, help="The PostHog URL, e.g. https://us.i.posthog.com.")
    p.add_argument("--project-api-key", required=True, help="The destination project's phc_ key.")
    p.add_argument("--project", type=int, help="Project id (default: the only project).")
    p.add_argument("--backfill", choices=("all", "after-migration"),
                   help="Also send stored events first: all of them, or those stored after `migrate posthog`"
                        " last sent (its checkpoint).")
    p.add_argument("--checkpoint", help="With --backfill after-migration: the migration's checkpoint file"
                                        " (default: <data dir>/migrate-<project>.json).")
    p.add_argument("--json", action="store_true")
    for action, text in (("off", "Stop forwarding a project (what still waits is dropped)."),
                         ("status", "What waits to be forwarded, and the last error.")):
        p = forward.add_parser(action, parents=[settings], help=text)
        p.add_argument("--project", type=int, help="Project id (default: the only project; status: all).")
        p.add_argument("--json", action="store_true")


def run(args, config):
    import dataclasses
    from pathlib import Path

    from phlite import lifecycle
    from phlite.app import forward_status, open_store
    from phlite.cli import _print, _project

    datadir.prepare(config.data_dir)
    store = open_store(config)
    try:
        if args.action == "status":
            pids = [_project(store, args.project)["id"]] if args.project is not None else None
            # The store alone gives what waits and the last error (the backoff state lives in the server).
            rows = [dataclasses.asdict(s) for pid in (pids or [None]) for s in forward_status(store, pid)]
            _print(rows, args.json, "\n".join(
                f"project {r['project_id']} -> {r['host']}: {r['waiting']} waiting"
                + (f" (oldest {r['oldest_age_seconds']:.0f} s)" if r["oldest_age_seconds"] is not None else "")
                + f", {r['sent']} sent, {r['failures']} failures"
                + (f"; last error: {r['last_error']}" if r["last_error"] else "") for r in rows)
                or "no project is forwarding")
            return 0
        project = _project(store, args.project)
        if args.action == "off":
            stopped = store.stop_forwarding(project["id"])
            _print({"project_id": project["id"], "forwarding": False}, args.json,
                   f"project {project['id']} no longer forwards" if stopped
                   else f"project {project['id']} was not forwarding")
            return 0
        try:
            host, key = lifecycle.check_destination(args.destination, args.project_api_key)
        except lifecycle.ForwardSettingError as e:
            print(f"phlite: --{e.field.replace('_', '-')}: {e.message}", file=sys.stderr)
            return 1
        after = None
        if args.backfill == "all":
            after = 0
        elif args.backfill == "after-migration":
            path = Path(args.checkpoint or Path(config.data_dir) / f"migrate-{project['id']}.json")
            try:
                checkpoint = json.loads(path.read_text())
                after = int(checkpoint["last_event_id"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                print(f"phlite: cannot read the migration checkpoint {path}: {e}", file=sys.stderr)
                return 1
            if checkpoint.get("host") != host or checkpoint.get("source_project") != project["id"]:
                print(f"phlite: {path} is the checkpoint of a migration of project {checkpoint.get('source_project')}"
                      f" to {checkpoint.get('host')}, not of this one", file=sys.stderr)
                return 1
        dest = store.set_forwarding(project["id"], host, key, backfill_after=after)
        backfill = dest["backfill_until"] is not None
        _print({"project_id": project["id"], "host": host, "forwarding": True, "backfill": backfill}, args.json,
               f"project {project['id']} forwards every event stored from now on to {host}"
               + (" (after the stored events it was asked to backfill)" if backfill else "")
               + "; a running server applies it from its next write")
        return 0
    finally:
        store.close()
