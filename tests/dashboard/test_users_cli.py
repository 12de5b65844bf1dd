"""`apiwatch users`: add (password from stdin), list, passwd, role, delete, token, tokens,
revoke; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from apiwatch.cli import main
from apiwatch.users import FILE_NAME, Accounts, User

PASSWORD = "correct horse battery"


def _run(data: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--data", str(data)], input=stdin)
    return result.exit_code, result.output


def test_add_list_passwd_and_token(tmp_path: Path) -> None:
    """The first admin is created from stdin; list shows it; a token identifies it."""
    data = tmp_path / "data"
    assert _run(data, "users", "add", "root", "--role", "admin", "--password-stdin",
                stdin=PASSWORD + "\n")[0] == 0
    code, out = _run(data, "users", "list", "--json")
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1]) == {"name": "root", "role": "admin"}
    assert _run(data, "users", "passwd", "root", "--password-stdin",
                stdin=PASSWORD + "2\n")[0] == 0
    code, out = _run(data, "users", "token", "root")
    token = out.strip().splitlines()[-1]
    accounts = Accounts(data / FILE_NAME)
    try:
        assert accounts.identify_token(token) == User("root", "admin")
        assert accounts.authenticate("root", PASSWORD + "2") is not None
    finally:
        accounts.close()


@pytest.mark.parametrize("args", [
    ("users", "add", "x", "--password-stdin"),
    ("users", "token", "nobody"),
    ("users", "passwd", "nobody", "--password-stdin")])
def test_errors_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A short password or an unknown user is a one-line reason and exit code 2."""
    code, out = _run(tmp_path / "data", *args, stdin="short\n")
    assert code == 2
    assert "apiwatch:" in out


def test_role_delete_tokens_and_revoke(tmp_path: Path) -> None:
    """An admin's day: change a role, list tokens by id (no secret), revoke one, delete a
    user; each change is kept for the ledger with `cli:<login>` as actor."""
    data = tmp_path / "data"
    for name, role in (("root", "admin"), ("alice", "viewer")):
        assert _run(data, "users", "add", name, "--role", role, "--password-stdin",
                    stdin=PASSWORD + "\n")[0] == 0
    assert _run(data, "users", "role", "alice", "analyst")[0] == 0
    token = _run(data, "users", "token", "alice")[1].strip().splitlines()[-1]
    code, out = _run(data, "users", "tokens", "--json")
    assert code == 0
    [listed] = [json.loads(line) for line in out.strip().splitlines()]
    assert listed["user"] == "alice"
    assert token not in out
    assert _run(data, "users", "revoke", listed["id"])[0] == 0
    assert _run(data, "users", "tokens")[1].strip() == ""
    assert _run(data, "users", "delete", "alice")[0] == 0
    accounts = Accounts(data / FILE_NAME)
    try:
        assert accounts.identify_token(token) is None
        assert accounts.users() == [User("root", "admin")]
        changes = accounts.pending_changes()
        assert [c.action for c in changes] == [
            "user_created", "user_created", "authz_change", "authn_token_created",
            "authn_token_revoked", "user_deleted"]
        assert all(c.actor.startswith("cli:") for c in changes)
    finally:
        accounts.close()


@pytest.mark.parametrize("args", [
    ("users", "role", "root", "viewer"),
    ("users", "delete", "root"),
    ("users", "revoke", "0123456789abcdef"),
    ("users", "role", "nobody", "viewer")])
def test_refused_changes_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Demoting or deleting the last admin, an unknown token or user: exit 2 and a reason."""
    data = tmp_path / "data"
    _run(data, "users", "add", "root", "--role", "admin", "--password-stdin",
         stdin=PASSWORD + "\n")
    code, out = _run(data, *args)
    assert code == 2
    assert "apiwatch:" in out
