"""Every setting in one table, read once at startup. The only module that reads os.environ.

Each setting is written once, in SETTINGS: its name, its default, the converter that reads it
from text and its help (shown by `--help` and, word for word, in README.md's settings table:
tests/test_docs.py checks both). `Config` is built from the same table.

Precedence: default < PHLITE_<NAME> environment variable < --<name> command-line flag.
"""

import dataclasses
import os
from pathlib import Path

from phlite.codec import parse_bool
from phlite.errors import StartupError


def _bool(value):
    parsed = parse_bool(value)
    if parsed is None:
        raise ValueError(f"expected a boolean, got {value!r}")
    return parsed


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value):
    level = str(value).strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)} (any case), got {value!r}")
    return level


FSYNC_MODES = ("off", "batch")


def _fsync_mode(value):
    mode = str(value).strip().lower()
    if mode not in FSYNC_MODES:
        raise ValueError(f"expected off or batch, got {value!r}")
    return mode


def _path_or_none(value):
    return Path(value) if value not in (None, "") else None


def _text_or_none(value):
    return str(value) if value not in (None, "") else None


MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    default: object
    convert: object
    help: str

    @property
    def shown(self):
        """The default as --help and the README show it."""
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if isinstance(self.default, int) and self.default >= MiB and self.default % MiB == 0:
            return f"{self.default // MiB} MiB"
        return str(self.default)


SETTINGS = (
    Setting("host", "127.0.0.1", str, "Address to listen on."),
    Setting("port", 8000, int, "Port to listen on (0 picks a free one)."),
    Setting("data_dir", "data", Path, "Directory holding `phlite.db` and the ingestion spool."),
    # 8 holds up better than 4 under many keep-alive connections (docs/design.md "HTTP server threads").
    Setting("threads", 8, int, "waitress worker threads."),
    Setting("connection_limit", 200, int, "Most simultaneous client connections."),
    Setting("channel_timeout", 30, int, "Seconds a connection that sends nothing is kept before it is closed."),
    Setting("trust_proxy", False, _bool, "Take the client IP from `X-Forwarded-For` (only behind your own proxy)."),
    Setting("max_body_bytes", 2 * MiB, int, "Largest body on capture paths other than `/batch`."),
    Setting("max_batch_body_bytes", 20 * MiB, int, "Largest body on `/batch`."),
    Setting("max_decompressed_bytes", 50 * MiB, int,
            "Largest body after decompression/decoding (stops compression bombs)."),
    # ~50-150 bytes each once parsed: 1,000,000 keeps a request's parsed body near 2x the 50 MiB
    # decompression cap (docs/reliability.md "Memory bombs").
    Setting("max_json_values", 1_000_000, int,
            "Most JSON values (objects, arrays, items, keys) one request body may hold; bounds its parsed memory."),
    Setting("max_request_events", 50_000, int, "Most events one capture request may hold (413 past it)."),
    Setting("queue_max_bytes", 32 * MiB, int, "Accepted data not yet in SQLite; past it capture answers 503."),
    Setting("writer_batch_events", 5_000, int, "Most requests stored in one group commit."),
    Setting("writer_commit_events", 5_000, int,
            "Most events stored in one group commit; a larger request is split over several."),
    Setting("writer_commit_seconds", 1.0, float,
            "Seconds a group commit may run before it commits what it has, so a flag edit never waits long for SQLite."),
    Setting("spool_segment_bytes", 64 * MiB, int, "Size at which the spool starts a new file."),
    # docs/reliability.md "Power loss": what each mode survives, and what batch costs.
    Setting("fsync", "off", _fsync_mode,
            "`off`: a 200 survives a crash of phlite; `batch`: also a power cut (a group fsync before the 200)."),
    Setting("rate_limit", 0, int, "Per-project events per second, then 429. 0 = off."),
    # PostHog's published limit for one query is 10 s of execution.
    Setting("query_timeout", 10.0, float, "Seconds one `/query/` request may run before it is stopped (400)."),
    # PostHog asks migrations to stay under a few thousand events/s (docs/lifecycle.md "Migrate to PostHog").
    Setting("migrate_rate_limit", 1000, int, "Events per second `migrate posthog` sends at most. 0 = no limit."),
    # Retention is by the day: an hourly pass keeps the database within an hour of the setting.
    Setting("retention_interval", 3600.0, float,
            "Seconds between background deletion passes (retention, then giving space back). 0 = never."),
    # A token of its own, not a personal key: a scraper's config then holds no key that reads data
    # (docs/operations.md "Metrics").
    Setting("metrics_token", None, _text_or_none,
            "Bearer token `GET /metrics` requires; unset: `/metrics` is off (404). Set it in the environment."),
    Setting("health_min_free_bytes", 256 * MiB, int,
            "Free space on the data dir's disk below which `/healthz` answers 503. 0 = no check."),
    Setting("forward_batch_events", 1000, int,
            "Most events in one `/batch/` request when forwarding a project to PostHog."),
    Setting("static_dir", None, _path_or_none, "Directory served at `/static/`."),
    Setting("log_level", "INFO", _log_level, "Logging level."),
)

_TYPES = {str: str, int: int, float: float, Path: Path, _bool: bool, _path_or_none: Path | None, _log_level: str,
          _text_or_none: str | None, _fsync_mode: str}


class _ConfigBase:
    @property
    def db_path(self):
        return Path(self.data_dir) / "phlite.db"

    @property
    def spool_dir(self):
        return Path(self.data_dir) / "spool"


# The settings of one running phlite: Config(port=0, data_dir=...) in tests, load() in the CLI.
Config = dataclasses.make_dataclass(
    "Config",
    [(s.name, _TYPES[s.convert], dataclasses.field(default=None if s.default is None else s.convert(s.default)))
     for s in SETTINGS],
    bases=(_ConfigBase,),
    frozen=True,
)


def env_name(name):
    return "PHLITE_" + name.upper()


def load(flags=None, environ=None):
    """Build a Config from defaults, the environment and parsed flags (a dict; None = not given)."""
    environ = os.environ if environ is None else environ
    flags = flags or {}
    values = {}
    for s in SETTINGS:
        if flags.get(s.name) is not None:
            raw = flags[s.name]
        elif env_name(s.name) in environ:
            raw = environ[env_name(s.name)]
        else:
            continue
        try:
            values[s.name] = s.convert(raw)
        except (TypeError, ValueError) as e:
            raise StartupError(f"bad value for {s.name} ({env_name(s.name)} / --{s.name.replace('_', '-')}): {e}") from None
    return Config(**values)


def environ_get(name, default=None):
    """For test and bench knobs that are not server settings (e.g. PHLITE_FUZZ_EXAMPLES)."""
    return os.environ.get(name, default)
