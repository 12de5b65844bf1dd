"""The admin's accounts page over HTTP: roles, deletion and API tokens, each an audit event,
each applied to the affected user's open sessions and tokens at once."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from dashboard_support import PASSWORD, actions, csrf_of, log_in, raise_alert

from apiwatch.collector.runtime import Collector


def _admin_post(http: httpx.Client, **form: str) -> httpx.Response:
    page = http.get("/admin/users")
    assert page.status_code == 200
    return http.post("/admin/users", data={**form, "csrf": csrf_of(page.text)})


def _issued(response: httpx.Response) -> str:
    found = re.search(r'id="new-token">([^<]+)<', response.text)
    assert found is not None, "no token on the page"
    return found.group(1)


@pytest.fixture
def admin(base_url: str) -> Iterator[httpx.Client]:
    """A client logged in as the admin."""
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        assert log_in(client, "admin").status_code == 303
        yield client


def test_role_change_applies_to_an_open_session(
        admin: httpx.Client, http: httpx.Client, collector: Collector) -> None:
    """An analyst demoted to viewer cannot acknowledge with the session they already had;
    the change is an authz_change event naming the admin, the user and both roles."""
    alert_id = raise_alert(collector)
    log_in(http, "analyst")
    page = http.get(f"/alerts/{alert_id}")
    assert _admin_post(admin, op="role", name="analyst", role="viewer").status_code == 200
    refused = http.post(f"/alerts/{alert_id}/ack", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 403
    assert "(viewer)" in http.get("/").text
    [change] = actions(collector, "authz_change")
    assert change["user.name"] == "dashboard:admin"
    assert change["user.target.name"] == "analyst"
    assert change["apiwatch.change.detail"] == "analyst -> viewer"


def test_deleting_a_user_ends_their_session_and_tokens(
        admin: httpx.Client, http: httpx.Client, collector: Collector) -> None:
    """A deleted user's session cookie goes to the login page and their API token is 401,
    on the API and the dashboard alike; the deletion is a user_deleted event."""
    token = _issued(_admin_post(admin, op="token", name="viewer"))
    bearer = {"authorization": f"Bearer {token}"}
    assert http.get("/v1/events", headers=bearer).status_code == 200
    log_in(http, "viewer")
    assert http.get("/").status_code == 200
    assert _admin_post(admin, op="delete", name="viewer").status_code == 200
    assert http.get("/").headers["location"].startswith("/login")
    assert http.get("/v1/events", headers=bearer).status_code == 401
    assert http.get("/api/alerts", headers=bearer).status_code == 401
    assert [e["user.target.name"] for e in actions(collector, "user_deleted")] == ["viewer"]
    assert log_in(http, "viewer").status_code == 401


def test_tokens_are_listed_by_id_and_revoked(
        admin: httpx.Client, collector: Collector) -> None:
    """The page lists a token by id, never its secret; revoking it makes it 401; issuing and
    revoking are authn_token_created and authn_token_revoked events."""
    token = _issued(_admin_post(admin, op="token", name="analyst"))
    page = admin.get("/admin/users").text
    assert token not in page
    found = re.search(r'data-token="([0-9a-f]{16})"', page)
    assert found is not None
    token_id = found.group(1)
    bearer = {"authorization": f"Bearer {token}"}
    assert admin.get("/v1/sources", headers=bearer).status_code == 200
    assert _admin_post(admin, op="revoke", token=token_id).status_code == 200
    assert token_id not in admin.get("/admin/users").text
    assert admin.get("/v1/sources", headers=bearer).status_code == 401
    [created] = actions(collector, "authn_token_created")
    [revoked] = actions(collector, "authn_token_revoked")
    assert created["apiwatch.change.detail"] == revoked["apiwatch.change.detail"] == token_id
    assert token not in str(created)


def test_the_last_admin_cannot_be_demoted_or_deleted(admin: httpx.Client) -> None:
    """Removing the only admin is a 400 with a reason: someone must manage accounts."""
    for form in ({"op": "role", "name": "admin", "role": "viewer"},
                 {"op": "delete", "name": "admin"}):
        response = _admin_post(admin, **form)
        assert response.status_code == 400
        assert "last admin" in response.text
    assert admin.get("/admin/users").status_code == 200


def test_user_names_on_the_page_are_escaped(admin: httpx.Client) -> None:
    """A refused hostile user name is shown as text in the page's message."""
    response = _admin_post(admin, op="add", name="<script>x</script>", role="viewer",
                           password=PASSWORD)
    assert response.status_code == 400
    assert "<script>x</script>" not in response.text
    assert "&lt;script&gt;x&lt;/script&gt;" in response.text
