"""A small FastAPI "shop" instrumented with apiwatch: users, API keys and orders.

`POST /login` checks a password and records `authn_login_success|fail` with `capture.log`;
`GET /orders/{id}` needs the owner's API key in `X-API-Key` (403 for another user's order,
404 for none), `GET /products` is public. The middleware logs every request (access-log mode),
which the API-key rules need to learn where each key is used from.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

from apiwatch.capture.api import LoginFailure
from apiwatch.capture.asgi import ApiwatchMiddleware
from apiwatch.capture.config import Capture

#: Orders are numbered from here; each account owns ORDERS_PER_USER consecutive ones.
FIRST_ORDER = 1000
ORDERS_PER_USER = 5


@dataclass(frozen=True)
class Account:
    """A shop customer: login name, password and API key (all generated)."""

    name: str
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    api_key: str = field(default_factory=lambda: "shop_" + secrets.token_urlsafe(24))


class Login(BaseModel):
    """The body of POST /login."""

    user: str
    password: str


def order_ids(accounts: list[Account], name: str) -> list[int]:
    """The order numbers that belong to the account `name`."""
    index = [a.name for a in accounts].index(name)
    start = FIRST_ORDER + index * ORDERS_PER_USER
    return list(range(start, start + ORDERS_PER_USER))


def build_shop(accounts: list[Account], capture: Capture) -> FastAPI:
    """The shop app over `accounts`, shipping its security events through `capture`."""
    app = FastAPI(title="apiwatch demo shop", openapi_url=None)
    app.add_middleware(ApiwatchMiddleware, capture=capture)
    passwords = {a.name: a.password for a in accounts}
    owners = {a.api_key: a.name for a in accounts}
    orders = {n: a.name for a in accounts for n in order_ids(accounts, a.name)}

    @app.post("/login")
    def login(body: Login) -> dict[str, str]:
        expected = passwords.get(body.user)
        if expected is None or not secrets.compare_digest(expected, body.password):
            reason: LoginFailure = "unknown_user" if expected is None else "bad_password"
            capture.log.login_failure(body.user, reason=reason)
            raise HTTPException(401, "bad credentials")
        capture.log.login_success(body.user)
        return {"user": body.user}

    @app.get("/products")
    def products() -> list[dict[str, object]]:
        return [{"id": 1, "name": "teapot", "price": 18}, {"id": 2, "name": "mug", "price": 6}]

    @app.get("/orders/{order_id}")
    def order(order_id: int, x_api_key: str = Header(default="")) -> dict[str, object]:
        caller = owners.get(x_api_key)
        if caller is None:
            raise HTTPException(401, "an API key is required")
        owner = orders.get(order_id)
        if owner is None:
            raise HTTPException(404, "no such order")
        if owner != caller:
            raise HTTPException(403, "not your order")
        capture.log.data_access("order", [order_id], user=caller)
        return {"id": order_id, "owner": owner}

    return app
