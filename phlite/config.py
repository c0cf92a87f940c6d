"""Every setting in one table, read once at startup. The only module that reads os.environ.

Precedence: default < PHLITE_<NAME> environment variable < --<name> command-line flag.
If you add a setting, add it to SETTINGS; tests/test_docs.py fails until README.md's
settings table lists it too.
"""

import dataclasses
import os
from pathlib import Path


def _bool(value):
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _path_or_none(value):
    return Path(value) if value not in (None, "") else None


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    default: object
    convert: object
    help: str


MiB = 1024 * 1024

SETTINGS = (
    Setting("host", "127.0.0.1", str, "Address to listen on."),
    Setting("port", 8000, int, "Port to listen on."),
    Setting("data_dir", "data", Path, "Directory holding phlite.db and the ingestion spool."),
    Setting("threads", 8, int, "waitress worker threads. 8 holds up better than 4 under many keep-alive connections (limits.md)."),
    Setting("connection_limit", 200, int, "Most simultaneous client connections waitress keeps open."),
    Setting("channel_timeout", 30, int, "Seconds a connection that sends nothing is kept before waitress closes it."),
    Setting("trust_proxy", False, _bool, "Take the client IP from X-Forwarded-For (only behind a proxy you run)."),
    Setting("max_body_bytes", 2 * MiB, int, "Largest request body on capture paths other than /batch."),
    Setting("max_batch_body_bytes", 20 * MiB, int, "Largest request body on /batch."),
    Setting("max_decompressed_bytes", 50 * MiB, int, "Largest body after gunzip/base64/lz64 decoding (stops compression bombs)."),
    Setting("queue_max_bytes", 32 * MiB, int, "Bytes of accepted request data not yet written to SQLite; past this capture answers 503 with Retry-After."),
    Setting("writer_batch_events", 5_000, int, "Most events the writer stores in one transaction (group commit)."),
    Setting("spool_segment_bytes", 64 * MiB, int, "Size at which the write-ahead spool starts a new segment file."),
    Setting("rate_limit", 0, int, "Per-project events per second; over it capture answers 429. 0 = off."),
    Setting("static_dir", None, _path_or_none, "Directory served at /static/ (posthog-js extensions). Unset = 404 JSON."),
    Setting("log_level", "INFO", str, "Logging level."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    threads: int = 8
    connection_limit: int = 200
    channel_timeout: int = 30
    trust_proxy: bool = False
    max_body_bytes: int = 2 * MiB
    max_batch_body_bytes: int = 20 * MiB
    max_decompressed_bytes: int = 50 * MiB
    queue_max_bytes: int = 32 * MiB
    writer_batch_events: int = 5_000
    spool_segment_bytes: int = 64 * MiB
    rate_limit: int = 0
    static_dir: Path | None = None
    log_level: str = "INFO"

    @property
    def db_path(self):
        return Path(self.data_dir) / "phlite.db"

    @property
    def spool_dir(self):
        return Path(self.data_dir) / "spool"


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
            raise SystemExit(f"phlite: bad value for {s.name} ({env_name(s.name)} / --{s.name.replace('_', '-')}): {e}")
    return Config(**values)


def environ_get(name, default=None):
    """For test and bench knobs that are not server settings (e.g. PHLITE_FUZZ_EXAMPLES)."""
    return os.environ.get(name, default)
