"""One progress line for long commands: redrawn on a terminal, silent when piped or redirected."""

import time


class Progress:
    def __init__(self, stream, label, total=None, unit="", clock=time.monotonic):
        self.stream = stream
        self.label = label
        self.total = total
        self.unit = unit
        self.clock = clock
        self.started = clock()
        self.shown_at = 0.0
        self.done = 0
        self.live = bool(getattr(stream, "isatty", lambda: False)())

    def update(self, done):
        self.done = done
        now = self.clock()
        if self.live and now - self.shown_at >= 0.2:  # a few redraws per second, not one per row
            self.shown_at = now
            self._draw(now)

    def _draw(self, now):
        rate = self.done / max(now - self.started, 1e-9)
        if self.total:
            pct = min(100.0, 100.0 * self.done / self.total)
            text = f"{self.label}: {self.done:,}/{self.total:,}{self.unit} ({pct:.0f}%), {rate:,.0f}{self.unit}/s"
        else:
            text = f"{self.label}: {self.done:,}{self.unit}, {rate:,.0f}{self.unit}/s"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()

    def finish(self):
        if self.live:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
