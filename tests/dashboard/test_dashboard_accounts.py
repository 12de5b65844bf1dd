"""Accounts: argon2 passwords, hashed API tokens, server-side sessions, the login throttle."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from apiwatch.server.dashboard.security import LoginThrottle
from apiwatch.users import IDLE_SECONDS, Accounts, User, UserError

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    """An accounts database with a cheap hasher (the algorithm is the same)."""
    return Accounts(tmp_path / "users.sqlite3", FAST)


class TestAccounts:
    def test_password_is_stored_as_argon2id_only(self, accounts: Accounts) -> None:
        """The database holds an Argon2id hash, never the password."""
        accounts.add("alice", "analyst", PASSWORD)
        raw = sqlite3.connect(accounts.path).execute("SELECT password FROM users").fetchone()
        assert raw[0].startswith("$argon2id$")
        assert PASSWORD not in raw[0]

    def test_authenticate_checks_the_password(self, accounts: Accounts) -> None:
        """The right password yields the user and role; a wrong one or unknown user None."""
        accounts.add("alice", "analyst", PASSWORD)
        assert accounts.authenticate("alice", PASSWORD) == User("alice", "analyst")
        assert accounts.authenticate("alice", PASSWORD + "x") is None
        assert accounts.authenticate("bob", PASSWORD) is None

    @pytest.mark.parametrize(("name", "role", "password"), [
        ("alice", "root", PASSWORD), ("al ice", "viewer", PASSWORD),
        ("<script>", "viewer", PASSWORD), ("alice", "viewer", "short")])
    def test_bad_names_roles_and_short_passwords_are_refused(
            self, accounts: Accounts, name: str, role: str, password: str) -> None:
        """Invalid names, unknown roles and passwords under 12 characters are UserErrors."""
        with pytest.raises(UserError):
            accounts.add(name, role, password)

    def test_roles_are_ranked(self) -> None:
        """An admin can do what an analyst can; a viewer cannot."""
        assert User("a", "admin").can("analyst")
        assert not User("v", "viewer").can("analyst")

    def test_tokens_are_stored_hashed_and_identify_their_user(
            self, accounts: Accounts) -> None:
        """A token names its user; the database keeps only its digest."""
        accounts.add("alice", "viewer", PASSWORD)
        token = accounts.issue_token("alice")
        assert accounts.identify_token(token) == User("alice", "viewer")
        assert accounts.identify_token(token + "x") is None
        dump = "\n".join(sqlite3.connect(accounts.path).iterdump())
        assert token not in dump

    def test_logout_and_password_change_end_sessions(self, accounts: Accounts) -> None:
        """An ended session id, or any after a password change, no longer resolves."""
        user = accounts.add("alice", "viewer", PASSWORD)
        first, _ = accounts.start_session(user)
        second, csrf = accounts.start_session(user)
        session = accounts.session(second)
        assert session is not None
        assert session.csrf == csrf
        accounts.end_session(first)
        assert accounts.session(first) is None
        accounts.set_password("alice", PASSWORD + "!")
        assert accounts.session(second) is None

    def test_role_change_shows_in_open_sessions_and_tokens(self, accounts: Accounts) -> None:
        """Sessions and tokens look the role up: a new role applies to both at once."""
        user = accounts.add("alice", "analyst", PASSWORD)
        session_id, _ = accounts.start_session(user)
        token = accounts.issue_token("alice")
        assert accounts.set_role("alice", "viewer", actor="cli:root") == "analyst"
        session = accounts.session(session_id)
        assert session is not None
        assert session.user == User("alice", "viewer")
        assert accounts.identify_token(token) == User("alice", "viewer")

    def test_delete_ends_sessions_and_tokens(self, accounts: Accounts) -> None:
        """A deleted user's sessions and tokens no longer resolve, and no row of them stays."""
        accounts.add("root", "admin", PASSWORD)
        user = accounts.add("alice", "viewer", PASSWORD)
        session_id, _ = accounts.start_session(user)
        token = accounts.issue_token("alice")
        accounts.delete("alice", actor="cli:root")
        assert accounts.session(session_id) is None
        assert accounts.identify_token(token) is None
        assert accounts.tokens() == []
        with pytest.raises(UserError):
            accounts.delete("alice")

    def test_the_last_admin_stays(self, accounts: Accounts) -> None:
        """The only admin can be neither demoted nor deleted; with a second one, both can."""
        accounts.add("root", "admin", PASSWORD)
        with pytest.raises(UserError, match="last admin"):
            accounts.set_role("root", "viewer")
        with pytest.raises(UserError, match="last admin"):
            accounts.delete("root")
        accounts.add("second", "admin", PASSWORD)
        accounts.set_role("root", "viewer")
        assert accounts.get("root") == User("root", "viewer")

    def test_tokens_are_listed_and_revoked_by_id(self, accounts: Accounts) -> None:
        """A token's id is a prefix of its digest: listed without the secret, revoked by it."""
        accounts.add("alice", "viewer", PASSWORD)
        token = accounts.issue_token("alice")
        [listed] = accounts.tokens("alice")
        assert listed.user == "alice"
        assert listed.id not in token
        assert accounts.tokens("bob") == []
        assert accounts.revoke_token(listed.id) == "alice"
        assert accounts.identify_token(token) is None
        with pytest.raises(UserError):
            accounts.revoke_token(listed.id)

    def test_every_change_is_kept_for_the_ledger(self, accounts: Accounts) -> None:
        """Each change leaves one pending audit row with its actor, until marked recorded;
        a refused change leaves none."""
        accounts.add("root", "admin", PASSWORD, actor="cli:ops")
        accounts.add("alice", "viewer", PASSWORD, actor="dashboard:root")
        accounts.set_role("alice", "analyst", actor="dashboard:root")
        accounts.set_password("alice", PASSWORD + "!", actor="dashboard:root")
        accounts.issue_token("alice", actor="dashboard:root")
        token_id = accounts.tokens("alice")[0].id
        accounts.revoke_token(token_id, actor="dashboard:root")
        accounts.delete("alice", actor="dashboard:root")
        with pytest.raises(UserError):
            accounts.delete("root", actor="dashboard:root")
        pending = accounts.pending_changes()
        assert [(c.actor, c.action, c.target) for c in pending] == [
            ("cli:ops", "user_created", "root"),
            ("dashboard:root", "user_created", "alice"),
            ("dashboard:root", "authz_change", "alice"),
            ("dashboard:root", "authn_password_change", "alice"),
            ("dashboard:root", "authn_token_created", "alice"),
            ("dashboard:root", "authn_token_revoked", "alice"),
            ("dashboard:root", "user_deleted", "alice"),
        ]
        accounts.mark_recorded([c.id for c in pending[:3]])
        assert len(accounts.pending_changes()) == 4

    def test_idle_sessions_expire(self, accounts: Accounts) -> None:
        """A session unused for longer than the idle limit is gone."""
        session_id, _ = accounts.start_session(accounts.add("alice", "viewer", PASSWORD))
        assert accounts.session(session_id, time.time() + IDLE_SECONDS + 1) is None
        assert accounts.session(session_id) is None


class TestLoginThrottle:
    def test_refuses_after_the_limit_until_the_window_passes(self) -> None:
        """Three failures within the window lock the key until the first leaves it."""
        throttle = LoginThrottle(limit=3, window=60)
        for at in (0.0, 10.0, 20.0):
            assert throttle.retry_after(["ip:a"], at) == 0
            throttle.failed(["ip:a"], at)
        assert throttle.retry_after(["ip:a"], 30.0) == 30
        assert throttle.retry_after(["ip:b"], 30.0) == 0
        assert throttle.retry_after(["ip:a"], 61.0) == 0

    def test_success_forgets_failures(self) -> None:
        """A successful login clears its key's failures."""
        throttle = LoginThrottle(limit=1, window=60)
        throttle.failed(["user:a"], 0.0)
        throttle.succeeded(["user:a"])
        assert throttle.retry_after(["user:a"], 1.0) == 0

    def test_keys_are_bounded(self) -> None:
        """Past max_keys the oldest keys are forgotten."""
        throttle = LoginThrottle(limit=1, window=60, max_keys=2)
        for key in ("a", "b", "c"):
            throttle.failed([key], 0.0)
        assert throttle.retry_after(["a"], 1.0) == 0
        assert throttle.retry_after(["c"], 1.0) > 0
