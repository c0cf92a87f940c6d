"""A project's data in and out: export to files, import from files, migrate and forward to PostHog; retention
and deletion.

    formats.py    the file formats (pure): PostHog's batch-export schema out, PostHog/Mixpanel shapes in
    exporter.py   export: streamed pages of the store into gzip JSONL or CSV files (or a download's chunks)
    importer.py   import: files -> raw events -> Ingestion (spool, writer, dedupe by uuid)
    migrate.py    migrate posthog: flags, cohorts, events into a PostHog-compatible destination
    client.py     that destination over HTTP (retries, 429 and Retry-After)
    forward.py    forwarding: the thread that sends each stored event on to a PostHog, from the outbox
    progress.py   the progress line of long commands
    deletion.py   retention, deleting events by filter and projects, in batches through the writer

What each command does and the formats: docs/lifecycle.md.
"""

from phlite.lifecycle.deletion import Deleter, clean_filter, clean_retention_days
from phlite.lifecycle.exporter import CSV_FIELDS, TABLES, export, stream
from phlite.lifecycle.formats import parse_when
from phlite.lifecycle.forward import Forwarder, ForwardSettingError, ForwardStatus, check_destination
from phlite.lifecycle.importer import import_files
from phlite.lifecycle.migrate import MigrationError, migrate_posthog
from phlite.lifecycle.progress import Progress

__all__ = ["CSV_FIELDS", "Deleter", "ForwardSettingError", "ForwardStatus", "Forwarder", "MigrationError", "Progress",
           "TABLES", "check_destination", "clean_filter", "clean_retention_days", "export", "import_files",
           "migrate_posthog", "parse_when", "stream"]
