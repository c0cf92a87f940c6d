"""Bucketing hashes shared by every PostHog SDK and server (docs/flags-protocol.md "Flags: bucketing hash").

Owns the sha1 -> [0, 1] mapping for rollouts, variants and holdouts. Pure: imports only hashlib.
"""

import hashlib

# The top 15 hex digits (60 bits) of the sha1, divided by 2^60 - 1.
_SCALE = float(0xFFFFFFFFFFFFFFF)


def _hash_bytes(data: bytes) -> float:
    # Reading the first 8 digest bytes and dropping 4 bits equals int(hexdigest[:15], 16),
    # without building the 40-character hex string (this runs once per flag per request).
    return (int.from_bytes(hashlib.sha1(data).digest()[:8], "big") >> 4) / _SCALE


def hash_value(flag_key: str, bucketing_id: str, salt: str = "") -> float:
    """The rollout (salt "") or variant (salt "variant") hash of one bucketing id.

    An empty bucketing id hashes to 0.0: the server's quirk (the SDKs hash "<key>." instead),
    so such ids are always inside a rollout and get the first variant.
    """
    if bucketing_id == "":
        return 0.0
    return _hash_bytes(f"{flag_key}.{bucketing_id}{salt}".encode())


def holdout_hash(bucketing_id: str) -> float:
    """The holdout hash: "holdout-" + id, no flag key, so one person is held out of every flag.

    No empty-id shortcut here: the server hashes "holdout-" for an empty id like any other.
    """
    return _hash_bytes(f"holdout-{bucketing_id}".encode())


def prefixed_hash(prefix: bytes, bucketing_id: str, salt: bytes = b"") -> float:
    """hash_value with the flag's b"<key>." prefix encoded once at compile time."""
    if bucketing_id == "":
        return 0.0
    # _hash_bytes inlined: this is the hottest line of flag evaluation.
    digest = hashlib.sha1(prefix + bucketing_id.encode() + salt).digest()
    return (int.from_bytes(digest[:8], "big") >> 4) / _SCALE
