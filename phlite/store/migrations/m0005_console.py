"""The console's accounts: users (admin or member, scrypt password hashes), their sessions, and
one-time sign-in links (the first start's link, `user reset-password`), and which console user made a
flag or cohort change (activity_log.user_id; key_id stays the personal key of API changes). Session and link tokens are
stored only as SHA-256 hashes, so a copy of the database does not sign anyone in."""

VERSION = 5

STATEMENTS = [
    """CREATE TABLE console_user (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT,
        role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        created_at INTEGER NOT NULL
    )""",
    """CREATE TABLE console_session (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    )""",
    "CREATE INDEX console_session_user ON console_session (user_id)",
    # user_id NULL: the first start's link, which creates the first admin.
    """CREATE TABLE console_link (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    )""",
    "ALTER TABLE activity_log ADD COLUMN user_id INTEGER",
]
