"""Passwords, tokens and the sign-in throttle. Pure: no I/O; time is passed in.

Passwords are hashed with scrypt (memory-hard, in the standard library): n=2**14, r=8 takes 16 MiB and
tens of milliseconds per try, which makes offline guessing of a stolen hash expensive. Session and
link tokens are random 32-byte values; only their SHA-256 is stored (they are high-entropy, so a fast
hash suffices).
"""

import hashlib
import hmac
import secrets

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 << 20)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        name, n, r, p, salt, digest = stored.split("$")
        n, r, p = int(n), int(r), int(p)
    except ValueError:
        return False
    if name != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=n, r=r, p=p, maxmem=64 << 20)
    return hmac.compare_digest(got.hex(), digest)


# Checked against nothing, so that an unknown email costs the same time as a wrong password.
DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 64


def password_problem(password: str) -> str | None:
    """Why this password cannot be used, or None."""
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > 1024:
        return "Use at most 1024 characters."
    return None


def email_problem(email: str) -> str | None:
    if not email or "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        return "Enter an email address."
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Throttle:
    """At most `limit` failed sign-ins per key (an IP, an email) within `window` seconds.

    In memory: a restart forgets it, which costs an attacker a restart they cannot cause. Bounded:
    past `max_keys` keys the oldest windows are dropped.
    """

    def __init__(self, limit=5, window=900.0, max_keys=10_000):
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._fails: dict[str, list[float]] = {}

    def blocked_for(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: it may)."""
        fails = [t for t in self._fails.get(key, ()) if t > now - self.window]
        if fails:
            self._fails[key] = fails
        else:
            self._fails.pop(key, None)
        return max(0.0, fails[0] + self.window - now) if len(fails) >= self.limit else 0.0

    def failed(self, key: str, now: float):
        if len(self._fails) >= self.max_keys and key not in self._fails:
            for old in list(self._fails)[: self.max_keys // 10]:
                del self._fails[old]
        self._fails.setdefault(key, []).append(now)

    def succeeded(self, key: str):
        self._fails.pop(key, None)
