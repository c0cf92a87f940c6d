"""A project's data in and out: export to files, import from files.

    formats.py    the file formats (pure): PostHog's batch-export schema out, PostHog/Mixpanel shapes in
    exporter.py   export: streamed pages of the store into gzip JSONL or CSV files
    importer.py   import: files -> raw events -> Ingestion (spool, writer, dedupe by uuid)
    progress.py   the progress line of long commands

What each command does and the formats: docs/lifecycle.md.
"""

from phlite.lifecycle.exporter import export
from phlite.lifecycle.formats import parse_when
from phlite.lifecycle.importer import import_files
from phlite.lifecycle.progress import Progress

__all__ = ["Progress", "export", "import_files", "parse_when"]
