"""`apiwatch users`: add (password from stdin), list, passwd, token; exit codes."""

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
