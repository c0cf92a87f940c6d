"""A project's data in and out: export to files, import from files, migrate to PostHog; retention and deletion.

    formats.py    the file formats (pure): PostHog's batch-export schema out, PostHog/Mixpanel shapes in
    exporter.py   export: streamed pages of the store into gzip JSONL or CSV files (or a download's chunks)
    importer.py   import: files -> raw events -> Ingestion (spool, writer, dedupe by uuid)
    migrate.py    migrate posthog: flags, cohorts, events into a PostHog-compatible destination
    client.py     that destination over HTTP (retries, 429 and Retry-After)
    progress.py   the progress line of long commands
    deletion.py   retention, deleting events by filter and projects, in batches through the writer

What each command does and the formats: docs/lifecycle.md.
"""

from phlite.lifecycle.deletion import Deleter, clean_filter, clean_retention_days
from phlite.lifecycle.exporter import CSV_FIELDS, TABLES, export, stream
from phlite.lifecycle.formats import parse_when
from phlite.lifecycle.importer import import_files
from phlite.lifecycle.migrate import MigrationError, migrate_posthog
from phlite.lifecycle.progress import Progress

from phlite.lifecycle.deletion import Deleter, clean_filter, clean_retention_days
from phlite.lifecycle.exporter import CSV_FIELDS, TABLES, export, stream
