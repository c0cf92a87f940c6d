"""Semantic-version parsing and ranges for the semver_* operators, as the flags server does them.

The server normalises with its own rules (strip one leading "v", trim, strip leading zeros, pad to
MAJOR.MINOR.PATCH) and then uses Rust's `semver` crate: pre-release and build metadata take part in
ordering, and ranges never admit a pre-release unless the bound names the same version with one.
"""

import re

from .values import json_text

_IDENT = re.compile(r"[0-9A-Za-z-]+")
_WILDCARDS = ("*", "x", "X")


def _normalise(text: str) -> str:
    return (text[1:] if text.startswith("v") else text).strip()


def _strip_zeros(part: str) -> str:
    if part and part.isascii() and part.isdigit():
        return part.lstrip("0") or "0"
    return part


def _split_suffix(text: str) -> tuple[str, str]:
    cut = min((i for i in (text.find("-"), text.find("+")) if i >= 0), default=len(text))
    return text[:cut], text[cut:]


def _canonical(text: str) -> str:
    core, suffix = _split_suffix(text)
    parts = [_strip_zeros(p) for p in core.split(".")]
    parts += ["0"] * (3 - len(parts))
    return ".".join(parts) + suffix


def _number(part: str) -> int | None:
    if not part or not part.isascii() or not part.isdigit() or (len(part) > 1 and part[0] == "0"):
        return None
    if len(part) > 20:
        return None  # beyond u64 anyway (and beyond int()'s digit limit for huge text)
    value = int(part)
    return value if value < 2**64 else None


def _identifiers(text: str, prerelease: bool) -> tuple | None:
    """Sort key of a dot-separated pre-release/build list: numbers sort numerically, before words."""
    key = []
    for ident in text.split("."):
        if not _IDENT.fullmatch(ident):
            return None
        if ident.isdigit():
            if prerelease and len(ident) > 1 and ident[0] == "0":
                return None
            key.append((0, int(ident[-4000:]), len(ident)))
        else:
            key.append((1, ident))
    return tuple(key)


def _suffix(suffix: str) -> tuple[tuple, tuple] | None:
    """(pre-release key, build key); a version without pre-release sorts after any with one."""
    pre, build = "", ""
    if suffix.startswith("-"):
        pre, _, build = suffix[1:].partition("+")
        if not pre:
            return None
    elif suffix.startswith("+"):
        build = suffix[1:]
    pre_key = _identifiers(pre, True) if pre else ()
    build_key = _identifiers(build, False) if build or "+" in suffix else ()
    if pre_key is None or build_key is None:
        return None
    return ((0, pre_key) if pre else (1,)), build_key


def _strict(text: str) -> tuple | None:
    core, suffix = _split_suffix(text)
    parts = core.split(".")
    if len(parts) != 3:
        return None
    numbers = [_number(p) for p in parts]
    tail = _suffix(suffix)
    if None in numbers or tail is None:
        return None
    return (numbers[0], numbers[1], numbers[2], tail[0], tail[1])


def parse_version(value) -> tuple | None:
    """(major, minor, patch, pre_key, build_key), ordered like semver::Version, or None."""
    return _strict(_canonical(_normalise(json_text(value))))


class Requirement:
    """One semver comparator (`~1.2.3`, `^1.2`, `1.x`): the only shapes the flag operators build."""

    __slots__ = ("op", "major", "minor", "patch", "pre")

    def __init__(self, op, major, minor, patch, pre):
        self.op, self.major, self.minor, self.patch, self.pre = op, major, minor, patch, pre

    def matches(self, v: tuple) -> bool:
        major, minor, patch, pre = v[0], v[1], v[2], v[3]
        if self.major is None:  # "*": every release, no pre-release
            return pre == (1,)
        if not self._matches_core(major, minor, patch, pre):
            return False
        # A pre-release only satisfies a bound that names the same version with a pre-release.
        return pre == (1,) or (
            self.pre != (1,) and (self.major, self.minor, self.patch) == (major, minor, patch)
        )

    def _matches_core(self, major, minor, patch, pre) -> bool:
        if major != self.major:
            return False
        if self.op == "wildcard":
            return (self.minor is None or minor == self.minor) and (
                self.patch is None or patch == self.patch
            )
        if self.minor is None:
            return True
        if self.op == "tilde":
            if minor != self.minor:
                return False
            if self.patch is None:
                return True
            return patch > self.patch if patch != self.patch else pre >= self.pre
        # caret
        if self.patch is None:
            return minor >= self.minor if self.major > 0 else minor == self.minor
        if self.major > 0:
            if minor != self.minor:
                return minor > self.minor
        elif self.minor > 0:
            if minor != self.minor:
                return False
        elif minor != self.minor or patch != self.patch:
            return False
        if patch != self.patch:
            return patch > self.patch
        return pre >= self.pre


def _requirement(op: str, text: str) -> Requirement | None:
    core, suffix = _split_suffix(text)
    parts = core.split(".")
    if len(parts) > 3:
        return None
    numbers: list[int | None] = []
    for part in parts:
        if part in _WILDCARDS:
            numbers.append(None)
        elif numbers and numbers[-1] is None:
            return None  # "1.*.3": nothing may follow a wildcard
        else:
            number = _number(part)
            if number is None:
                return None
            numbers.append(number)
    if numbers[0] is None:
        if op != "wildcard" or suffix:
            return None
        return Requirement(op, None, None, None, (1,))
    if None not in numbers and op == "wildcard":
        op = "caret"  # a requirement without a wildcard and without an operator means ^
    numbers += [None] * (3 - len(numbers))
    pre = (1,)
    if suffix:
        tail = _suffix(suffix)
        if tail is None or numbers[2] is None:
            return None
        pre = tail[0]
    return Requirement(op, numbers[0], numbers[1], numbers[2], pre)


def parse_requirement(operator: str, value) -> Requirement | None:
    """The range of semver_tilde / semver_caret / semver_wildcard for a filter value, or None."""
    text = _normalise(json_text(value))
    if operator == "semver_wildcard":
        return _requirement("wildcard", ".".join(_strip_zeros(p) for p in text.split(".")))
    op = "tilde" if operator == "semver_tilde" else "caret"
    return _requirement(op, _canonical(text))
