"""Local accounts of the dashboard and the HTTP API: users, roles, API tokens and sessions.

Kept in `<data>/users.sqlite3` (WAL, so `apiwatch users` works beside a running collector).
Passwords are hashed with Argon2id (RFC 9106, argon2-cffi's defaults); API tokens and session
ids are 256-bit random values stored only as SHA-256 digests, so a copy of the file yields no
credential. A token is named by its id, the first hex digits of its digest: listing and
revoking tokens never needs the secret. Roles are ranked: a viewer reads, an analyst also works
alerts and dashboards, an admin also manages users, tokens, sources and rules.

Every change of an account (created, role changed, deleted, password changed, token issued or
revoked) is written to the `changes` table in the same transaction as the change itself; the
collector copies those rows into its ledger as security events (`apiwatch.server.account_audit`),
so a change made with `apiwatch users` beside a running collector (or while it is stopped) is
recorded too, and none is lost between the change and its record.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from apiwatch.errors import ApiwatchError
from apiwatch.sqlite_file import SqliteFile

FILE_NAME = "users.sqlite3"
Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
TOKEN_PREFIX = "awu_"  # noqa: S105 -- a prefix that marks user tokens in leaks, no secret
#: The actor of changes made by apiwatch itself (the demo, tests), not by a person.
SYSTEM = "apiwatch"
#: Hex digits of a token's SHA-256 digest that name it (64 bits: ids do not collide).
TOKEN_ID_DIGITS = 16
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
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, detail TEXT NOT NULL, recorded INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS changes_pending ON changes (id) WHERE recorded = 0;
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
class Token:
    """An API token as listed: its id, owner and creation time (never the secret)."""

    id: str
    user: str
    created: float


@dataclass(frozen=True)
class Change:
    """A change of an account, waiting to be recorded as a security event.

    `action` is an OWASP vocabulary name (`user_created`, `authz_change`, `user_deleted`,
    `authn_password_change`, `authn_token_created`, `authn_token_revoked`); `actor` is who
    made it (`dashboard:NAME`, `cli:LOGIN`), `target` the account, `detail` a role or token id.
    """

    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: str


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


class Accounts(SqliteFile):
    """The users database; every method is safe to call from any thread."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        super().__init__(path, _SCHEMA, "foreign_keys=ON")
        self.hasher = hasher or PasswordHasher()
        # Verified against when the user is unknown, so that the answer takes as long.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    @staticmethod
    def _log(db: sqlite3.Connection, actor: str, action: str, target: str,
             detail: str = "") -> None:
        db.execute("INSERT INTO changes (at, actor, action, target, detail) "
                   "VALUES (?, ?, ?, ?, ?)", (time.time(), actor, action, target, detail))

    @staticmethod
    def _exists(db: sqlite3.Connection, name: str) -> str:
        """The role of `name`, or UserError if there is no such user."""
        row = db.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UserError(f"no user {name!r}")
        role: str = row[0]
        return role

    @staticmethod
    def _keep_an_admin(db: sqlite3.Connection, name: str) -> None:
        """Refuse to demote or delete the last admin (nobody could manage accounts then)."""
        others = db.execute("SELECT count(*) FROM users WHERE role = 'admin' AND name != ?",
                            (name,)).fetchone()[0]
        if not others:
            raise UserError(f"{name!r} is the last admin; make another admin first")

    # --- accounts ------------------------------------------------------------------------

    def add(self, name: str, role: str, password: str, *, actor: str = SYSTEM) -> User:
        """Create a user; UserError if the name is taken or invalid, or the password short."""
        if not _NAME.fullmatch(name):
            raise UserError(f"user name {name!r} must be 1-64 of A-Z a-z 0-9 . _ @ -")
        user = User(name, check_role(role))
        check_password(password)
        hashed = self.hasher.hash(password)
        try:
            with self._tx() as db:
                db.execute("INSERT INTO users VALUES (?, ?, ?, ?)",
                           (name, role, hashed, time.time()))
                self._log(db, actor, "user_created", name, role)
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} already exists") from None
        return user

    def get(self, name: str) -> User | None:
        """The user called `name`, or None."""
        rows = self._query("SELECT name, role FROM users WHERE name = ?", (name,))
        return User(rows[0][0], rows[0][1]) if rows else None

    def users(self) -> list[User]:
        """All users by name."""
        return [User(n, r) for n, r in self._query("SELECT name, role FROM users ORDER BY name")]

    def set_password(self, name: str, password: str, *, actor: str = SYSTEM) -> None:
        """Change a password; the user's sessions end (a stolen cookie dies with it)."""
        check_password(password)
        hashed = self.hasher.hash(password)
        with self._tx() as db:
            self._exists(db, name)
            db.execute("UPDATE users SET password = ? WHERE name = ?", (hashed, name))
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            self._log(db, actor, "authn_password_change", name)

    def set_role(self, name: str, role: str, *, actor: str = SYSTEM) -> str:
        """Give `name` another role, effective on their next request (sessions and tokens
        look the role up each time); the old role. The last admin stays an admin."""
        check_role(role)
        with self._tx() as db:
            old = self._exists(db, name)
            if old == role:
                return old
            if old == "admin":
                self._keep_an_admin(db, name)
            db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
            self._log(db, actor, "authz_change", name, f"{old} -> {role}")
        return old

    def delete(self, name: str, *, actor: str = SYSTEM) -> None:
        """Delete a user; their sessions and API tokens go with them. Not the last admin."""
        with self._tx() as db:
            if self._exists(db, name) == "admin":
                self._keep_an_admin(db, name)
            db.execute("DELETE FROM users WHERE name = ?", (name,))  # cascades (foreign keys)
            self._log(db, actor, "user_deleted", name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if `password` is theirs, else None (in about the same time either way)."""
        rows = self._query("SELECT role, password FROM users WHERE name = ?", (name,))
        stored = rows[0][1] if rows else self._dummy
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if not rows:
            return None
        if self.hasher.check_needs_rehash(stored):
            self._query("UPDATE users SET password = ? WHERE name = ?",
                      (self.hasher.hash(password), name))
        return User(name, rows[0][0])

    # --- API tokens ----------------------------------------------------------------------

    def issue_token(self, name: str, *, actor: str = SYSTEM) -> str:
        """A new API token for `name` (shown once; only its digest is kept)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(token)
        with self._tx() as db:
            self._exists(db, name)
            db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (digest, name, time.time()))
            self._log(db, actor, "authn_token_created", name, digest[:TOKEN_ID_DIGITS])
        return token

    def tokens(self, name: str | None = None) -> list[Token]:
        """The API tokens (of `name`, or all) by user and age, as ids: never the secret."""
        rows = self._query(
            "SELECT substr(digest, 1, ?), user, created FROM tokens "
            "WHERE ? IS NULL OR user = ? ORDER BY user, created", (TOKEN_ID_DIGITS, name, name))
        return [Token(*row) for row in rows]

    def revoke_token(self, token_id: str, *, actor: str = SYSTEM) -> str:
        """Revoke the token whose id is `token_id`; its owner's name. UserError if unknown."""
        if len(token_id) != TOKEN_ID_DIGITS:
            raise UserError(f"a token id has {TOKEN_ID_DIGITS} hex digits")
        with self._tx() as db:
            row = db.execute("SELECT digest, user FROM tokens WHERE substr(digest, 1, ?) = ?",
                             (TOKEN_ID_DIGITS, token_id.lower())).fetchone()
            if row is None:
                raise UserError(f"no token {token_id!r}")
            db.execute("DELETE FROM tokens WHERE digest = ?", (row[0],))
            self._log(db, actor, "authn_token_revoked", row[1], token_id.lower())
        owner: str = row[1]
        return owner

    def identify_token(self, token: str) -> User | None:
        """The owner of an API token, or None. A lookup by digest: the digest of a guess says
        nothing about a stored token, so the comparison need not be constant-time."""
        rows = self._query("SELECT u.name, u.role FROM tokens t JOIN users u ON u.name = t.user "
                         "WHERE t.digest = ?", (_digest(token),))
        return User(rows[0][0], rows[0][1]) if rows else None

    # --- sessions ------------------------------------------------------------------------

    def start_session(self, user: User) -> tuple[str, str]:
        """A new session for `user`: (session id for the cookie, CSRF token)."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        self._query("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                  (_digest(session_id), user.name, csrf, now, now))
        return session_id, csrf

    def session(self, session_id: str, now: float | None = None) -> Session | None:
        """The live session of a cookie value, or None (unknown, ended or expired)."""
        now = time.time() if now is None else now
        key = _digest(session_id)
        rows = self._query(
            "SELECT u.name, u.role, s.csrf, s.created, s.last_seen FROM sessions s "
            "JOIN users u ON u.name = s.user WHERE s.digest = ?", (key,))
        if not rows:
            return None
        name, role, csrf, created, last_seen = rows[0]
        if now - created > SESSION_SECONDS or now - last_seen > IDLE_SECONDS:
            self._query("DELETE FROM sessions WHERE digest = ?", (key,))
            return None
        if now - last_seen > _TOUCH_SECONDS:
            self._query("UPDATE sessions SET last_seen = ? WHERE digest = ?", (now, key))
        return Session(User(name, role), csrf)

    def end_session(self, session_id: str) -> None:
        """Log out: the cookie value no longer names a session."""
        self._query("DELETE FROM sessions WHERE digest = ?", (_digest(session_id),))

    # --- the audit trail -----------------------------------------------------------------

    def pending_changes(self, limit: int = 500) -> list[Change]:
        """Changes not yet marked recorded, oldest first."""
        rows = self._query("SELECT id, at, actor, action, target, detail FROM changes "
                         "WHERE recorded = 0 ORDER BY id LIMIT ?", (limit,))
        return [Change(*row) for row in rows]

    def mark_recorded(self, ids: list[int]) -> None:
        """Mark changes as recorded in the ledger."""
        with self._tx() as db:
            db.executemany("UPDATE changes SET recorded = 1 WHERE id = ?", [(i,) for i in ids])
