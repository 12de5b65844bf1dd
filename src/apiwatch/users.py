"""Local accounts of the dashboard and the HTTP API: users, roles, API tokens and sessions.

Kept in `<data>/users.sqlite3` (WAL, so `apiwatch users` works beside a running collector).
Passwords are hashed with Argon2id (RFC 9106, argon2-cffi's defaults); API tokens and session
ids are 256-bit random values stored only as SHA-256 digests, so a copy of the file yields no
credential. Roles are ranked: a viewer reads, an analyst also works alerts and dashboards, an
admin also manages users, tokens, sources and rules.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from apiwatch.errors import ApiwatchError

FILE_NAME = "users.sqlite3"
Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
TOKEN_PREFIX = "awu_"  # noqa: S105 -- a prefix that marks user tokens in leaks, no secret
#: A session ends this long after login, or after this long unused.
SESSION_SECONDS = 12 * 3600.0
IDLE_SECONDS = 30 * 60.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
#: last_seen is written at most this often per session (a page view must not be a write).
_TOUCH_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL, created REAL NOT NULL, last_seen REAL NOT NULL);
"""


class UserError(ApiwatchError):
    """A bad user name, role or password, or a user that does not exist (or already does)."""


@dataclass(frozen=True)
class User:
    """An account: its name and role."""

    name: str
    role: Role

    def can(self, needed: Role) -> bool:
        """Whether this user's role ranks at least `needed`."""
        return ROLES.index(self.role) >= ROLES.index(needed)


@dataclass(frozen=True)
class Session:
    """A logged-in browser: the user and the session's CSRF token."""

    user: User
    csrf: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_role(role: str) -> Role:
    """`role` if it is one of ROLES, else UserError."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_password(password: str) -> None:
    """Refuse passwords shorter than MIN_PASSWORD or longer than MAX_PASSWORD characters."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(
            f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")


class Accounts:
    """The users database; every method is safe to call from any thread."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = path
        self.hasher = hasher or PasswordHasher()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                     timeout=10)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
        # Verified against when the user is unknown, so that the answer takes as long.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # --- accounts ------------------------------------------------------------------------

    def add(self, name: str, role: str, password: str) -> User:
        """Create a user; UserError if the name is taken or invalid, or the password short."""
        if not _NAME.fullmatch(name):
            raise UserError(f"user name {name!r} must be 1-64 of A-Z a-z 0-9 . _ @ -")
        user = User(name, check_role(role))
        check_password(password)
        try:
            self._run("INSERT INTO users VALUES (?, ?, ?, ?)",
                      (name, role, self.hasher.hash(password), time.time()))
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} already exists") from None
        return user

    def get(self, name: str) -> User | None:
        """The user called `name`, or None."""
        rows = self._run("SELECT name, role FROM users WHERE name = ?", (name,))
        return User(rows[0][0], rows[0][1]) if rows else None

    def users(self) -> list[User]:
        """All users by name."""
        return [User(n, r) for n, r in self._run("SELECT name, role FROM users ORDER BY name")]

    def set_password(self, name: str, password: str) -> None:
        """Change a password; the user's sessions end (a stolen cookie dies with it)."""
        check_password(password)
        if self.get(name) is None:
            raise UserError(f"no user {name!r}")
        self._run("UPDATE users SET password = ? WHERE name = ?",
                  (self.hasher.hash(password), name))
        self._run("DELETE FROM sessions WHERE user = ?", (name,))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if `password` is theirs, else None (in about the same time either way)."""
        rows = self._run("SELECT role, password FROM users WHERE name = ?", (name,))
        stored = rows[0][1] if rows else self._dummy
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if not rows:
            return None
        if self.hasher.check_needs_rehash(stored):
            self._run("UPDATE users SET password = ? WHERE name = ?",
                      (self.hasher.hash(password), name))
        return User(name, rows[0][0])

    # --- API tokens ----------------------------------------------------------------------

    def issue_token(self, name: str) -> str:
        """A new API token for `name` (shown once; only its digest is kept)."""
        if self.get(name) is None:
            raise UserError(f"no user {name!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._run("INSERT INTO tokens VALUES (?, ?, ?)", (_digest(token), name, time.time()))
        return token

    def identify_token(self, token: str) -> User | None:
        """The owner of an API token, or None. A lookup by digest: the digest of a guess says
        nothing about a stored token, so the comparison need not be constant-time."""
        rows = self._run("SELECT u.name, u.role FROM tokens t JOIN users u ON u.name = t.user "
                         "WHERE t.digest = ?", (_digest(token),))
        return User(rows[0][0], rows[0][1]) if rows else None

    # --- sessions ------------------------------------------------------------------------

    def start_session(self, user: User) -> tuple[str, str]:
        """A new session for `user`: (session id for the cookie, CSRF token)."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        self._run("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                  (_digest(session_id), user.name, csrf, now, now))
        return session_id, csrf

    def session(self, session_id: str, now: float | None = None) -> Session | None:
        """The live session of a cookie value, or None (unknown, ended or expired)."""
        now = time.time() if now is None else now
        key = _digest(session_id)
        rows = self._run(
            "SELECT u.name, u.role, s.csrf, s.created, s.last_seen FROM sessions s "
            "JOIN users u ON u.name = s.user WHERE s.digest = ?", (key,))
        if not rows:
            return None
        name, role, csrf, created, last_seen = rows[0]
        if now - created > SESSION_SECONDS or now - last_seen > IDLE_SECONDS:
            self._run("DELETE FROM sessions WHERE digest = ?", (key,))
            return None
        if now - last_seen > _TOUCH_SECONDS:
            self._run("UPDATE sessions SET last_seen = ? WHERE digest = ?", (now, key))
        return Session(User(name, role), csrf)

    def end_session(self, session_id: str) -> None:
        """Log out: the cookie value no longer names a session."""
        self._run("DELETE FROM sessions WHERE digest = ?", (_digest(session_id),))
