"""What the writer's queue holds, and how much memory it may: records kept parsed or left in the spool,
functions to run in the writer thread, and the byte bounds of both (phlite/ingest/writer.py owns the queue)."""

import threading

from phlite import errors

# A group commit takes queued records up to this many bytes (and events up to the
# configured writer_batch_events): big enough to amortise the commit (1 MB is ~2,500
# posthog-python events), small enough to keep a transaction short. The records are
# parsed all at once, so this also bounds the writer's memory: 4 MB cost ~45 MB more
# peak RSS under /batch load for no measurable throughput (bench/README.md).
BATCH_BYTES = 1024 * 1024
# Queued records are kept in memory, as the events submit() was handed (already parsed by the
# request thread, so the writer does not parse them again), up to about this many bytes of
# memory; past it a queued record is only in the spool file (submit() has just written it
# there, so it is in the page cache) and the writer reads it back. queue_max_bytes bounds what
# is accepted and not yet stored; this bounds the memory it takes: under /batch overload the
# full 32 MB queue cost ~50 MB of peak RSS (bench/README.md).
MEMORY_BYTES = 1024 * 1024
# Parsed events take about 3.8x the bytes of their JSON (posthog-python events, tracemalloc):
# a record kept parsed counts this many times its spooled length against MEMORY_BYTES.
PARSED_WEIGHT = 4


class InSpool:
    """A queued record kept only in the spool; it has a length, like the bytes it stands for."""

    __slots__ = ("length",)

    def __init__(self, length):
        self.length = length

    def __len__(self):
        return self.length


class Parsed:
    """A queued record kept in memory as submit() built it; its length is its spooled length."""

    __slots__ = ("record", "length")

    def __init__(self, rec, length):
        self.record = rec
        self.length = length

    def __len__(self):
        return self.length

    @property
    def weight(self):
        return self.length * PARSED_WEIGHT


def memory_weight(item):
    """Memory a queued item holds, as counted against MEMORY_BYTES."""
    if isinstance(item, Parsed):
        return item.weight
    return len(item) if isinstance(item, bytes) else 0


def queue_full():
    return errors.Unavailable("Ingestion queue is full; retry shortly.", retry_after=1)



class Call:
    """A function to run in the writer thread (Writer.call), and its outcome."""

    def __init__(self, fn):
        self.fn = fn
        self.done = threading.Event()
        self.result = None
        self.error = None
        self.state = "queued"  # -> "running" -> done, or "cancelled" (changed under the writer's cond)
