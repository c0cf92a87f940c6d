"""The data-lifecycle commands: `export`, `import` and `migrate posthog` (docs/lifecycle.md).

Their parsers stay in phlite/cli.py with the others; the work is phlite/lifecycle's.
"""

import json
import sys
from pathlib import Path

from phlite import config as configmod, datadir


def _helpers():
    from phlite.cli import _print, _project  # imported late: phlite.cli imports this module
    return _print, _project


def run_export(args, config):
    _print, _project = _helpers()
    from phlite import lifecycle
    from phlite.app import open_store

    store = open_store(config)
    try:
        project = _project(store, args.project)
        after = lifecycle.parse_when(args.after) if args.after else None
        before = lifecycle.parse_when(args.before) if args.before else None
        out = Path(args.out or f"export-{project['id']}")
        bar = lifecycle.Progress(sys.stderr, "exporting events",
                                 store.count_events_between(project["id"], after, before))
        written = lifecycle.export(store, project["id"], out, after=after, before=before, fmt=args.format,
                                   progress=bar.update)
        bar.finish()
    finally:
        store.close()
    _print({"directory": str(out), "files": written}, args.json,
           "\n".join(f"{out / name}\t{n} rows" for name, n in written.items()))
    return 0


def run_import(args, config):
    _print, _project = _helpers()
    from phlite import lifecycle
    from phlite.app import open_app

    paths = [Path(f) for f in args.files]
    for p in paths:
        if not p.is_file():
            raise SystemExit(f"phlite: no such file: {p}")
    # Import runs a writer over the data dir's spool, as the server does: never both at once.
    datadir.prepare(config.data_dir)
    lock = datadir.DataDirLock(config.data_dir).acquire()
    app = open_app(config)
    try:
        project = _project(app.store, args.project)
        bar = lifecycle.Progress(sys.stderr, "importing", sum(p.stat().st_size for p in paths), " B")
        summary = lifecycle.import_files(app.ingestion, project, paths, progress=bar.update)
        bar.finish()
    finally:
        app.close()
        lock.release()
    dropped = ", ".join(f"{k}: {v}" for k, v in summary["dropped"].items()) or "none"
    _print(summary, args.json, f"read {summary['read']} objects: stored {summary['stored']},"
           f" deduplicated {summary['deduplicated']} (already stored), dropped {sum(summary['dropped'].values())}"
           f" ({dropped})")
    return 0


def run_migrate(args, config):
    _project = _helpers()[1]
    from phlite import lifecycle
    from phlite.app import open_store

    store = open_store(config)
    try:
        project = _project(store, args.project)
        path = Path(args.checkpoint or Path(config.data_dir) / f"migrate-{project['id']}.json")
        summary = lifecycle.migrate_posthog(
            store, project["id"], args.destination, args.project_api_key, args.personal_api_key,
            checkpoint_path=path, dry_run=args.dry_run, rate=config.migrate_rate_limit, batch_events=args.batch_size,
            progress_stream=sys.stderr, log=(lambda m: None) if args.json else print,
            kill_after_batches=configmod.environ_get("PHLITE_MIGRATE_KILL_AFTER_BATCHES"))
    except lifecycle.MigrationError as e:
        print(f"phlite: migration stopped: {e} (run the same command again to resume)", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0 if summary.get("dry_run") or summary["verification"]["ok"] else 1
