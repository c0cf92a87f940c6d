"""A change history entry as a reader wants it: each changed leaf with its path
(`filters.groups[0].rollout_percentage: 50 -> 100`), not two whole JSON documents. Pure."""

import orjson

_MISSING = object()
MAX_LINES = 40  # per entry; a rewrite of a large flag says "and N more"


def _leaves(value, path, out):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _leaves(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            _leaves(v, f"{path}[{i}]", out)
    else:
        out[path] = value
    return out


def _text(value):
    if value is _MISSING:
        return "(none)"
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def leaf_changes(changes: list[dict]) -> tuple[list[tuple[str, str, str]], int]:
    """([(path, before, after)], how many more were left out) of activity detail.changes."""
    lines = []
    for ch in changes:
        before = _leaves(ch.get("before"), ch.get("field", ""), {})
        after = _leaves(ch.get("after"), ch.get("field", ""), {})
        for path in dict.fromkeys([*before, *after]):
            b, a = before.get(path, _MISSING), after.get(path, _MISSING)
            if b != a:
                lines.append((path, _text(b), _text(a)))
    return lines[:MAX_LINES], max(0, len(lines) - MAX_LINES)
