"""A bounded cache of /flags evaluations (docs/flags-protocol.md "Flags endpoint: answer cache").

Browsers ask /flags on every page load with the same distinct id and properties, and the answer
only changes when what it was computed from changes. An entry is keyed on all of that: the
project's definitions generation (flag and cohort writes, the project timezone), the store's
persons generation (every committed person, distinct id, group or group type write), and the
normalised request (every field evaluation reads, plus runtime and the query options). A hit skips
the person and group lookups and the evaluation. Not cached: answers with errors, answers that
resolved a relative date (they move with the clock), and projects with experience-continuity
flags (evaluating them writes hash keys). Thread-safe; least recently used entries go first.
"""

import threading
from collections import OrderedDict

import orjson

# Entries kept (an entry is a few KB: one evaluation's results, shared with the flags' memo).
MAX_ENTRIES = 4096
# Requests whose key is longer are not cached, so the cache stays under ~MAX_ENTRIES * 8 KB of keys.
MAX_KEY_BYTES = 8192


def request_key(req, runtime, survey_only, stored_person) -> bytes | None:
    """Everything of a request its evaluation depends on, as bytes; None if it cannot be keyed."""
    try:
        key = orjson.dumps(
            [req.distinct_id, req.person_properties, req.groups, req.group_properties, req.anon_distinct_id,
             req.device_id, req.disable_flags, req.flag_keys, req.evaluation_contexts, runtime, survey_only,
             stored_person],
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        )
    except (TypeError, orjson.JSONEncodeError):
        return None
    return key if len(key) <= MAX_KEY_BYTES else None


class AnswerCache:
    def __init__(self, max_entries: int = MAX_ENTRIES):
        self._max = max_entries
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self):
        return len(self._entries)
