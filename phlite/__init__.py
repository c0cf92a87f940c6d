"""phlite: PostHog's capture and feature-flag APIs on one SQLite file."""

__version__ = "0.1.0"
