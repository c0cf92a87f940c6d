"""The deletion commands: `retention`, `project delete` and `vacuum` (docs/lifecycle.md "Retention",
"Deleting a project", "Giving the space back"). Registered by phlite/cli.py."""

import dataclasses
import sys
import time

from phlite import datadir


def add_parsers(sub, project, settings):
    p = project.add_parser("delete", parents=[settings],
                           help="Delete a project and every row of it, in batches (docs/lifecycle.md).")
    p.add_argument("id", type=int)
    p.add_argument("--yes", action="store_true", help="Really delete it (required: there is no undo).")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("retention", parents=[settings],
                       help="Show or set how many days a project keeps its events (older ones are deleted).")
    p.add_argument("--project", type=int, help="Project id (default: the only project).")
    p.add_argument("--days", help="Days to keep events; 0 or 'forever' keeps them forever.")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("vacuum", parents=[settings],
                       help="Rewrite the database so deleted space can be given back (stop the server first).")
    p.add_argument("--json", action="store_true")


def handles(args):
    return args.command in ("retention", "vacuum") or (args.command == "project" and args.action == "delete")


def run(args, config):
    if args.command == "retention":
        return run_retention(args, config)
    if args.command == "vacuum":
        return run_vacuum(args, config)
    return run_project_delete(args, config)


def run_retention(args, config):
    # A one-row setting: written beside a running server, whose next retention pass applies it.
    from phlite import errors, lifecycle
    from phlite.app import open_store
    from phlite.cli import _print, _project

    datadir.prepare(config.data_dir)
    store = open_store(config)
    try:
        project = _project(store, args.project)
        if args.days is not None:
            days = None if args.days.strip().lower() in ("forever", "none") else args.days
            try:
                days = lifecycle.clean_retention_days(days)
            except errors.BadRequest as e:
                raise SystemExit(f"phlite: --days: {e.detail}") from None
            project = store.update_project(project["id"], retention_days=days)
    finally:
        store.close()
    days = project["retention_days"]
    _print({"project": project["id"], "retention_days": days}, args.json,
           f"project {project['id']} keeps events " + (f"for {days} days" if days else "forever"))
    return 0


def run_project_delete(args, config):
    from phlite.app import open_app, open_store
    from phlite.cli import _print

    if not args.yes:
        print(f"phlite: this deletes project {args.id} and all its data for good; add --yes to do it", file=sys.stderr)
        return 1
    datadir.prepare(config.data_dir)
    if datadir.holder(config.data_dir):
        # A server runs: hide the project now; the server's deleter removes its rows within seconds.
        store = open_store(config)
        try:
            if not store.mark_project_deleted(args.id):
                print(f"phlite: no project with id {args.id}", file=sys.stderr)
                return 1
        finally:
            store.close()
        _print({"id": args.id, "status": "deleting"}, args.json,
               f"project {args.id} is hidden; the running server deletes its rows in the background")
        return 0
    lock = datadir.DataDirLock(config.data_dir).acquire()
    app = open_app(dataclasses.replace(config, retention_interval=0))  # no deleter thread: the work is done here
    try:
        if not app.deleter.delete_project(args.id):
            print(f"phlite: no project with id {args.id}", file=sys.stderr)
            return 1
        app.deleter.run_pending(retention=False)
        left = args.id in app.store.projects_being_deleted()
    finally:
        app.close()
        lock.release()
    _print({"id": args.id, "status": "deleting" if left else "deleted"}, args.json,
           f"project {args.id} " + ("is partly deleted; run again to finish" if left else "and all its rows deleted"))
    return 1 if left else 0


def run_vacuum(args, config):
    from phlite.app import open_store
    from phlite.cli import _print

    datadir.prepare(config.data_dir)
    lock = datadir.DataDirLock(config.data_dir).acquire()  # VACUUM holds the write lock for its whole run
    store = open_store(config)
    try:
        before = store.space()
        started = time.monotonic()
        store.vacuum_full()
        after = store.space()
    finally:
        store.close()
        lock.release()
    out = {"before": before, "after": after, "seconds": round(time.monotonic() - started, 2)}
    _print(out, args.json, f"rewrote the database in {out['seconds']} s: {before['pages'] * before['page_size']} ->"
           f" {after['pages'] * after['page_size']} bytes; auto_vacuum is {after['auto_vacuum']}")
    return 0
