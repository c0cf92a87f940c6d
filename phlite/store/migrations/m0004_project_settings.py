"""Per-project settings that reads and evaluation depend on: the project's timezone (date buckets
of insights, naive dates in flag date operators) and the first day of its week (0 = Sunday, PostHog's
default; 1 = Monday)."""

VERSION = 4

STATEMENTS = [
    "ALTER TABLE project ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC'",
    "ALTER TABLE project ADD COLUMN week_start_day INTEGER NOT NULL DEFAULT 0",
]
