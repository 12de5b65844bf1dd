"""`apiwatch users`: local accounts of the dashboard and the HTTP API.

`users add NAME --role admin` creates the first admin; the password comes from a prompt (typed
twice) or, with `--password-stdin`, from the first line of standard input, never from the
command line (where `ps` and shell history would keep it). Works beside a running collector.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from apiwatch.cli import main
from apiwatch.cli._collector import data_options, load
from apiwatch.cli._exit import fail
from apiwatch.users import FILE_NAME, ROLES, Accounts, UserError


def _accounts(config_path: Path | None, data: Path | None) -> Accounts:
    directory = load(config_path, data).data_dir
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Accounts(directory / FILE_NAME)
    except OSError as exc:
        fail(f"cannot open {directory / FILE_NAME}: {exc.strerror}")


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
    accounts = _accounts(config_path, data)
    try:
        accounts.add(name, role, _password(password_stdin))
    except UserError as exc:
        fail(str(exc))
    finally:
        accounts.close()
    click.echo(f"user {name} ({role}) created", err=True)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@data_options
def list_users(as_json: bool, config_path: Path | None, data: Path | None) -> None:
    """List users and their roles."""
    accounts = _accounts(config_path, data)
    try:
        for user in accounts.users():
            if as_json:
                click.echo(json.dumps({"name": user.name, "role": user.role}))
            else:
                click.echo(f"{user.name}\t{user.role}")
    finally:
        accounts.close()


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@data_options
def passwd(name: str, password_stdin: bool, config_path: Path | None,
           data: Path | None) -> None:
    """Set NAME's password (and end their sessions)."""
    accounts = _accounts(config_path, data)
    try:
        accounts.set_password(name, _password(password_stdin))
    except UserError as exc:
        fail(str(exc))
    finally:
        accounts.close()
    click.echo(f"password of {name} changed; their sessions ended", err=True)


@users.command("token")
@click.argument("name")
@data_options
def token(name: str, config_path: Path | None, data: Path | None) -> None:
    """Issue an API token for NAME (printed once; send it as a Bearer token)."""
    accounts = _accounts(config_path, data)
    try:
        click.echo(accounts.issue_token(name))
    except UserError as exc:
        fail(str(exc))
    finally:
        accounts.close()
