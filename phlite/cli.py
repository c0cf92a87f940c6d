"""The command line: `python app.py` serves; `project` and `key` subcommands script setup.

The server itself is phlite/httpserver.py (with this module, the only one that imports waitress).
Logging is configured here, once.
"""

import argparse
import json
import logging
import signal
import sys
import time

from phlite import __version__, cli_data, cli_deletion, cli_forward, config as configmod, datadir
from phlite.codec import parse_bool
from phlite.errors import StartupError

log = logging.getLogger("phlite")

# Unindented, so it runs when pasted into `python3` (after `pip install posthog`).
EXAMPLE = """\
Point posthog-python at it (pip install posthog), then in python3:

from posthog import Posthog
posthog = Posthog("{token}", host="{url}")
posthog.capture("my-event", distinct_id="user-1")
posthog.flush()
"""


def _flag(s):
    return "--" + s.name.replace("_", "-")


# Seconds between forced GIL hand-offs in a running server (CPython's default is 0.005).
SWITCH_INTERVAL = 0.001
BOOL_FLAGS = {_flag(s) for s in configmod.SETTINGS if isinstance(s.default, bool)}


def _settings_parser(exclude=()):
    parent = argparse.ArgumentParser(add_help=False)
    for s in configmod.SETTINGS:
        if s.name in exclude:
            continue
        boolean = _flag(s) in BOOL_FLAGS
        parent.add_argument(_flag(s), dest=s.name, default=argparse.SUPPRESS,
                            metavar="BOOL" if boolean else s.name.upper(),
                            help=f"{s.help} (env {configmod.env_name(s.name)}, default {s.shown}"
                                 + ("; bare flag = true" if boolean else "") + ")")
    return parent


def _bool_flags(argv):
    """`--trust-proxy` alone means true; `--trust-proxy no` / `--trust-proxy=no` give a value. The next
    word is taken as the value only if it is a boolean word (codec.parse_bool), so a bare flag before
    a subcommand (`--trust-proxy serve`) stays bare."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in BOOL_FLAGS:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt and parse_bool(nxt) is not None:
                out.append(f"{arg}={nxt}")
                i += 2
                continue
            out.append(f"{arg}=true")
        else:
            out.append(arg)
        i += 1
    return out


def build_parser():
    settings = _settings_parser()
    parser = argparse.ArgumentParser(prog="phlite", parents=[settings],
                                     description="A PostHog-compatible analytics and feature-flag server on SQLite.")
    parser.add_argument("--version", action="version", version=f"phlite {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", parents=[settings], help="Run the server (the default).")

    project = sub.add_parser("project", help="Manage projects.").add_subparsers(dest="action", required=True)
    p = project.add_parser("list", parents=[settings], help="List projects.")
    p.add_argument("--json", action="store_true")
    p = project.add_parser("create", parents=[settings], help="Create a project with its own phc_ token.")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    cli_deletion.add_parsers(sub, project, settings)

    key = sub.add_parser("key", help="Manage personal API keys.").add_subparsers(dest="action", required=True)
    p = key.add_parser("create", parents=[settings], help="Create a personal API key (shown once).")
    p.add_argument("--label", default="")
    p.add_argument("--project", type=int, action="append", dest="projects",
                   help="Limit the key to this project id (repeatable). Default: all projects.")
    p.add_argument("--json", action="store_true")
    p = key.add_parser("list", parents=[settings], help="List personal API keys (never the keys themselves).")
    p.add_argument("--json", action="store_true")
    p = key.add_parser("revoke", parents=[settings], help="Revoke a personal API key by id.")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("backup", parents=[settings],
                       help="Copy the database and the unstored spool tail to PATH while the server runs.")
    p.add_argument("path")
    p = sub.add_parser("verify", parents=[settings], help="Check a backup (or data dir): integrity and row counts.")
    p.add_argument("path")
    user = sub.add_parser("user", help="Manage console accounts.").add_subparsers(dest="action", required=True)
    p = user.add_parser("create", parents=[settings], help="Create a console account; prints a one-time link to set its password.")
    p.add_argument("email")
    p.add_argument("--admin", action="store_true", help="Make it an admin (default: member).")
    p.add_argument("--json", action="store_true")
    p = user.add_parser("list", parents=[settings], help="List console accounts.")
    p.add_argument("--json", action="store_true")
    p = user.add_parser("delete", parents=[settings], help="Delete a console account (signs it out).")
    p.add_argument("email")
    p.add_argument("--json", action="store_true")
    p = user.add_parser("reset-password", parents=[settings], help="Print a one-time link that sets a new password.")
    p.add_argument("email")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("materialize", parents=[settings],
                       help="Give an event property its own column (faster insights); backfills stored events.")
    p.add_argument("property", nargs="?", help="The property, e.g. $feature_flag or plan. Without it: list them.")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export", parents=[settings],
                       help="Write a project's events, persons, groups, flags and cohorts to files.")
    p.add_argument("--project", type=int, help="Project id (default: the only project).")
    p.add_argument("--after", help="First day or time to export (UTC unless it says), e.g. 2024-01-01.")
    p.add_argument("--before", help="Export events before this day or time (excluded).")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                   help="jsonl: gzip JSON lines (default); csv: plain CSV for spreadsheets.")
    p.add_argument("--out", default=None, help="Output directory (default: export-<project id>).")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("import", parents=[settings],
                       help="Import events from phlite, PostHog or Mixpanel export files (stop the server first).")
    p.add_argument("files", nargs="+")
    p.add_argument("--project", type=int, help="Project id (default: the only project).")
    p.add_argument("--json", action="store_true")

    # --host here is the destination, as in PostHog's own tools, so the listen-address setting is left out.
    migrate = sub.add_parser("migrate", help="Move a project into PostHog.").add_subparsers(dest="action",
                                                                                           required=True)
    p = migrate.add_parser("posthog", parents=[_settings_parser(exclude=("host",))],
                           help="Flags, cohorts and every event into a PostHog project (docs/lifecycle.md).")
    p.add_argument("--host", dest="destination", required=True, help="The PostHog URL, e.g. https://us.i.posthog.com.")
    p.add_argument("--project-api-key", required=True, help="The destination project's phc_ key.")
    p.add_argument("--personal-api-key", required=True, help="A phx_ key with flag, cohort and query access.")
    p.add_argument("--project", type=int, help="Source project id (default: the only project).")
    p.add_argument("--checkpoint", help="Checkpoint file (default: <data dir>/migrate-<project>.json).")
    p.add_argument("--batch-size", type=int, default=1000, help="Events per /batch/ request (default 1000).")
    p.add_argument("--dry-run", action="store_true", help="Say what would be sent; send nothing.")
    p.add_argument("--json", action="store_true")

    cli_forward.add_parsers(sub, settings, _settings_parser(exclude=("host",)))
    return parser


def _flags(args):
    return {s.name: getattr(args, s.name, None) for s in configmod.SETTINGS}


def _print(obj, as_json, text):
    print(json.dumps(obj) if as_json else text, flush=True)


def _base_url(config):
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    return f"http://{host}:{config.port}"


def run_user(args, config):
    from phlite.app import open_console
    from phlite.console import SignInError

    datadir.prepare(config.data_dir)
    console, store = open_console(config)
    base = _base_url(config)
    try:
        if args.action == "create":
            try:
                user, token = console.create_user(args.email, "admin" if args.admin else "member")
            except SignInError as e:
                print(f"phlite: {e.message}", file=sys.stderr)
                return 1
            link = f"{base}/console/link/{token}"
            _print({"id": user["id"], "email": user["email"], "role": user["role"], "link": link}, args.json,
                   f"created {user['role']} {user['email']}; to set the password open (once, within 24 h): {link}")
        elif args.action == "list":
            rows = [{"id": u["id"], "email": u["email"], "role": u["role"], "created_at": u["created_at"]}
                    for u in console.list_users()]
            _print(rows, args.json, "\n".join(f"{r['id']}\t{r['email']}\t{r['role']}" for r in rows))
        elif args.action == "delete":
            if not console.delete_user(args.email):
                print(f"phlite: no account {args.email}", file=sys.stderr)
                return 1
            _print({"email": args.email, "deleted": True}, args.json, f"deleted {args.email}")
        elif args.action == "reset-password":
            token = console.reset_link(args.email)
            if token is None:
                print(f"phlite: no account {args.email}", file=sys.stderr)
                return 1
            link = f"{base}/console/link/{token}"
            _print({"email": args.email, "link": link}, args.json,
                   f"to set a new password for {args.email} open (once, within 24 h): {link}")
        return 0
    finally:
        store.close()


def run_admin(args, config):
    if args.command == "user":
        return run_user(args, config)
    # Admin commands open the store alone (SQLite lets them run beside the server): no data dir lock.
    from phlite.app import open_store

    datadir.prepare(config.data_dir)
    store = open_store(config)
    try:
        if args.command == "project" and args.action == "list":
            rows = [{"id": p["id"], "name": p["name"], "api_token": p["api_token"]} for p in store.list_projects()]
            _print(rows, args.json, "\n".join(f"{r['id']}\t{r['name']}\t{r['api_token']}" for r in rows))
        elif args.command == "project" and args.action == "create":
            p = store.create_project(args.name)
            _print({"id": p["id"], "name": p["name"], "api_token": p["api_token"]}, args.json,
                   f"created project {p['id']} {p['name']!r}: {p['api_token']}")
        elif args.command == "key" and args.action == "create":
            k = store.create_personal_key(args.label, args.projects)
            _print({"personal_api_key": k["personal_api_key"]}, args.json,
                   f"personal API key (shown once): {k['personal_api_key']}")
        elif args.command == "key" and args.action == "list":
            rows = store.list_personal_keys()
            _print(rows, args.json, "\n".join(
                f"{r['id']}\t{r['prefix']}...\t{'revoked' if r['revoked'] else 'active'}\t{r['label']}" for r in rows))
        elif args.command == "materialize":
            return _materialize(store, args)
        elif args.command == "key" and args.action == "revoke":
            ok = store.revoke_personal_key(args.id)
            if not ok:
                print(f"phlite: no active key with id {args.id}", file=sys.stderr)
                return 1
            _print({"id": args.id, "revoked": True}, args.json, f"revoked key {args.id}")
        return 0
    finally:
        store.close()


def _materialize(store, args):
    """docs/insights.md "Materialized columns": safe beside a running server (short write transactions)."""
    from phlite import lifecycle

    if args.property:
        column = store.add_materialized(args.property)
        bar = lifecycle.Progress(sys.stderr, f"filling {column}", store.count_events())
        store.backfill_materialized(progress=lambda done, _total: bar.update(done))
        bar.finish()
    rows = store.list_materialized()
    _print(rows, args.json, "\n".join(f"{r['property']}\t{r['column']}\t{'ready' if r['ready'] else 'filling'}"
                                      for r in rows))
    return 0


def run_backup(args, config):
    # No lock: both read only (the backup through SQLite's online backup), beside a running server.
    from phlite import backup

    if args.command == "backup":
        out = backup.backup(config, args.path)
    else:
        out = backup.verify(args.path)
    print(json.dumps(out), flush=True)
    return 0 if out["integrity"] == "ok" else 1


def console_link(app, port):
    """While no console account exists, print a one-time link that creates the first admin."""
    token = app.console.first_start_link()
    if token:
        host = "127.0.0.1" if app.config.host in ("0.0.0.0", "::", "") else app.config.host
        print(f"Open the console and create the first account (one-time link, 24 h):"
              f" http://{host}:{port}/console/link/{token}", flush=True)


def _project(store, wanted):
    projects = store.list_projects()
    if wanted is not None:
        match = [p for p in projects if p["id"] == wanted]
        if not match:
            raise SystemExit(f"phlite: no project with id {wanted}")
        return match[0]
    if len(projects) != 1:
        raise SystemExit("phlite: say which project with --project ID"
                         f" ({len(projects)} projects: see `python app.py project list`)")
    return projects[0]


def first_start(app, url):
    """On an empty data dir: create the default project and a personal key, and say how to use them."""
    store = app.store
    if store.list_projects():
        return
    project = store.create_project("Default project")
    key = store.create_personal_key("created on first start")
    print(f"Created project 1 'Default project' with project API key {project['api_token']}", flush=True)
    print(f"Created personal API key (shown once, store it): {key['personal_api_key']}", flush=True)
    print(EXAMPLE.format(token=project["api_token"], url=url), flush=True)


def serve(config):
    datadir.prepare(config.data_dir)
    # Held until this process exits: the kernel drops it even on kill -9.
    lock = datadir.DataDirLock(config.data_dir).acquire()
    try:
        return _serve_locked(config)
    finally:
        lock.release()


def _serve_locked(config):
    from phlite import httpserver, web
    from phlite.app import open_app

    # 1 ms instead of CPython's 5 ms between GIL hand-offs: a thread that waits for the GIL (an API
    # read between 8 busy request threads) gets it back sooner (docs/design.md "HTTP server threads").
    sys.setswitchinterval(SWITCH_INTERVAL)

    # Bind before opening the data: a port in use is refused before anything is read or written.
    wsgi = _Later()
    try:
        server = httpserver.create_server(wsgi, config, lambda path: web.body_limit(path, config),
                                          web.max_body_limit(config))
    except OSError as e:
        raise StartupError(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}") from None
    try:
        app = open_app(config)
    except BaseException:
        server.close()
        raise
    wsgi.app = web.create_app(app)
    first_start(app, f"http://{config.host}:{server.effective_port}")
    return _run(server, app, config)


class _Later:
    """The WSGI app, set once the data dir is open (no request is served before server.run())."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def _run(server, app, config):
    def stop(signum, frame):
        # Once: a second Ctrl-C must not cut the drain short (kill -9 is the hard stop,
        # and loses nothing either: the spool is replayed at the next start).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # Announce readiness inside the try: a SIGTERM that arrives right after the line
        # (a supervisor or a test reacting to it) must still run the drain below.
        console_link(app, server.effective_port)
        print(f"phlite {__version__} listening on http://{config.host}:{server.effective_port}"
              f" (data in {config.data_dir})", flush=True)
        server.run()
    except SystemExit:
        pass
    finally:
        # Stop accepting, let requests in flight finish, then store everything queued.
        log.info("shutting down: draining the ingestion queue")
        server.close()
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=10)
        app.deleter.stop()  # a deletion batch in flight finishes; the rest waits for the next start
        drained = app.ingestion.stop()
        app.store.close()
        log.info("stopped%s", "" if drained else " (undrained events stay in the spool and are stored at next start)")
    return 0


class _EveryFewSeconds:
    """Wraps a logger's `warning` to let a call through at most once per `seconds`, saying
    how many it held back. (A logging.Filter would run only after the LogRecord is built,
    and building it was the cost: ~7 us, ~10% of the GIL time of a /capture request.)"""

    def __init__(self, warning, seconds):
        self.warning = warning
        self.seconds = seconds
        self.next = 0.0
        self.held = 0

    def __call__(self, msg, *args, **kwargs):
        now = time.monotonic()
        if now < self.next:
            self.held += 1
            return
        if self.held:
            msg = f"{msg} ({self.held} similar warnings in the last {self.seconds:g} s not shown)"
        self.next, self.held = now + self.seconds, 0
        self.warning(msg, *args, **kwargs)


def configure_logging(config):
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # waitress warns "Task queue depth is N" on *every* request queued behind busy threads, which is
    # every request under a steady load of more connections than threads: formatting and writing
    # those lines took ~16% of the I/O thread in the /capture benchmark (bench/README.md).
    queue_log = logging.getLogger("waitress.queue")
    if not isinstance(queue_log.warning, _EveryFewSeconds):
        queue_log.warning = _EveryFewSeconds(queue_log.warning, 10)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(_bool_flags(argv))
    try:
        config = configmod.load(_flags(args))
        configure_logging(config)
        if args.command in (None, "serve"):
            sys.exit(serve(config))
        if args.command in ("backup", "verify"):
            sys.exit(run_backup(args, config))
        if args.command == "export":
            sys.exit(cli_data.run_export(args, config))
        if args.command == "import":
            sys.exit(cli_data.run_import(args, config))
        if args.command == "migrate":
            sys.exit(cli_data.run_migrate(args, config))
        if args.command == "forward":
            sys.exit(cli_forward.run(args, config))
        if cli_deletion.handles(args):
            sys.exit(cli_deletion.run(args, config))
        sys.exit(run_admin(args, config))
    except StartupError as e:
        # One line, no traceback: these are the operator's to fix (docs/reliability.md "Operator mistakes").
        print(f"phlite: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
