"""`apiwatch users`: local accounts of the dashboard and the HTTP API.

`users add NAME --role admin` creates the first admin; the password comes from a prompt (typed
twice) or, with `--password-stdin`, from the first line of standard input, never from the
command line (where `ps` and shell history would keep it). `users role`, `users delete`,
`users token`, `users tokens` and `users revoke` manage roles and API tokens (a token is printed
once, when issued; `tokens` lists ids only). Works beside a running collector: each change is
kept with `cli:<local user>` as actor and recorded in the ledger by the collector's next tick.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._collector import data_options, load
from apiwatch.cli._exit import fail
from apiwatch.events import format_timestamp
from apiwatch.users import FILE_NAME, ROLES, Accounts, UserError


def _accounts(config_path: Path | None, data: Path | None) -> Accounts:
    directory = load(config_path, data).data_dir
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Accounts(directory / FILE_NAME)
    except OSError as exc:
        fail(f"cannot open {directory / FILE_NAME}: {exc.strerror}")


@contextmanager
def _open(config_path: Path | None, data: Path | None) -> Iterator[Accounts]:
    """The accounts database, closed after; a UserError is a one-line reason and exit 2."""
    accounts = _accounts(config_path, data)
    try:
        yield accounts
    except UserError as exc:
        fail(str(exc))
    finally:
        accounts.close()


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _change(action: Callable[[Accounts], object], config_path: Path | None,
            data: Path | None) -> None:
    with _open(config_path, data) as accounts:
        action(accounts)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    text: str = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                             err=True)
    return text


@main.group()
def users() -> None:
    """Manage dashboard and API accounts (roles: viewer, analyst, admin)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@data_options
def add(name: str, role: str, password_stdin: bool, config_path: Path | None,
        data: Path | None) -> None:
    """Create user NAME with a password."""
    password = _password(password_stdin)
    _change(lambda a: a.add(name, role, password, actor=_actor()), config_path, data)
    click.echo(f"user {name} ({role}) created", err=True)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@data_options
def list_users(as_json: bool, config_path: Path | None, data: Path | None) -> None:
    """List users and their roles."""
    with _open(config_path, data) as accounts:
        for user in accounts.users():
            if as_json:
                click.echo(json.dumps({"name": user.name, "role": user.role}))
            else:
                click.echo(f"{user.name}\t{user.role}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@data_options
def passwd(name: str, password_stdin: bool, config_path: Path | None,
           data: Path | None) -> None:
    """Set NAME's password (and end their sessions)."""
    password = _password(password_stdin)
    _change(lambda a: a.set_password(name, password, actor=_actor()), config_path, data)
    click.echo(f"password of {name} changed; their sessions ended", err=True)


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@data_options
def role(name: str, role: str, config_path: Path | None, data: Path | None) -> None:
    """Give NAME the role ROLE (applies to their sessions and tokens at once)."""
    _change(lambda a: a.set_role(name, role, actor=_actor()), config_path, data)
    click.echo(f"{name} is now {role}", err=True)


@users.command("delete")
@click.argument("name")
@data_options
def delete(name: str, config_path: Path | None, data: Path | None) -> None:
    """Delete NAME with their sessions and API tokens."""
    _change(lambda a: a.delete(name, actor=_actor()), config_path, data)
    click.echo(f"user {name} deleted; their sessions and tokens ended", err=True)


@users.command("token")
@click.argument("name")
@data_options
def token(name: str, config_path: Path | None, data: Path | None) -> None:
    """Issue an API token for NAME (printed once; send it as a Bearer token)."""
    _change(lambda a: click.echo(a.issue_token(name, actor=_actor())), config_path, data)


@users.command("tokens")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@data_options
def tokens(name: str | None, as_json: bool, config_path: Path | None,
           data: Path | None) -> None:
    """List API tokens (of NAME, or all) by id, owner and issue time; never the secrets."""
    with _open(config_path, data) as accounts:
        for item in accounts.tokens(name):
            issued = format_timestamp(int(item.created * 1e9))
            if as_json:
                click.echo(json.dumps({"id": item.id, "user": item.user, "issued": issued}))
            else:
                click.echo(f"{item.id}\t{item.user}\t{issued}")


@users.command("revoke")
@click.argument("token_id")
@data_options
def revoke(token_id: str, config_path: Path | None, data: Path | None) -> None:
    """Revoke the API token TOKEN_ID (an id from `users tokens`)."""
    _change(lambda a: a.revoke_token(token_id, actor=_actor()), config_path, data)
    click.echo(f"token {token_id} revoked", err=True)
