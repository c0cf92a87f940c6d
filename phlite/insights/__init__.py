"""Saved insights and dashboards, PostHog's REST shapes over phlite's store (docs/insights.md "Saved insights
and dashboards"). The face: InsightService (built in phlite/app.py) and the pure helpers the console may use.
"""

from phlite.insights.service import InsightService, refresh_mode
from phlite.insights.shapes import WRAPPERS, query_source

__all__ = ["WRAPPERS", "InsightService", "query_source", "refresh_mode"]
