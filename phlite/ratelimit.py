"""Optional per-project rate limit on capture: a token bucket of events per second.

Off unless the `rate_limit` setting is above 0. Each project's bucket holds at most one
second of events and refills continuously. A request is let through when the bucket holds
at least its event count (or is full, so one batch larger than a second's worth still
passes, then leaves the bucket in debt); otherwise it is refused with 429 and a
`Retry-After` of the whole seconds until it would pass. A batch of more than MAX_BATCH_SECONDS
seconds' worth is refused with 429 whatever the bucket holds, so the debt one batch leaves is
at most a few seconds (one 200,000-event batch at 100/s would otherwise block the project for
1,998 s). Imports nothing but phlite.errors.
"""

import math
import threading
import time

from phlite import errors

MAX_BATCH_SECONDS = 5  # the largest batch accepted is 5 s of events: at most 4 s of debt after it


class RateLimiter:
    def __init__(self, events_per_second: float, clock=time.time):
        if events_per_second <= 0:
            raise ValueError("events_per_second must be above 0")
        self.rate = float(events_per_second)
        self.capacity = float(events_per_second)
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets = {}  # project id -> [tokens, last refill time]

    def check(self, project_id: int, n_events: int) -> None:
        """Take n_events from the project's bucket, or raise errors.TooManyRequests."""
        if n_events > MAX_BATCH_SECONDS * self.rate:
            raise errors.TooManyRequests(
                f"This batch has {n_events} events; with this project's rate limit of {self.rate:g} events per"
                f" second a request may hold at most {int(MAX_BATCH_SECONDS * self.rate)}: send smaller batches.",
                retry_after=MAX_BATCH_SECONDS, code="batch_over_rate_limit")
        now = self.clock()
        need = min(float(n_events), self.capacity)
        with self._lock:
            tokens, last = self._buckets.get(project_id, (self.capacity, now))
            # max(0, ...): a wall clock stepping back must not drain the bucket.
            tokens = min(self.capacity, tokens + max(0.0, now - last) * self.rate)
            if tokens < need:
                self._buckets[project_id] = (tokens, now)
                wait = max(1, math.ceil((need - tokens) / self.rate))
                raise errors.TooManyRequests(
                    f"This project is over its rate limit of {self.rate:g} events per second; retry in {wait} s.",
                    retry_after=wait,
                )
            self._buckets[project_id] = (tokens - n_events, now)
