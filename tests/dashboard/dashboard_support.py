"""Test helpers (not tests): logging in, reading CSRF tokens, events with XSS payloads."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx

from apiwatch.collector.runtime import Collector
from apiwatch.detect import Alert
from apiwatch.events import Event, make_event
from apiwatch.store import Query

#: Playwright drives Debian's Chromium; it never downloads a browser of its own.
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Screenshots of the browser tests (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "correct horse battery"
ROLES = ("viewer", "analyst", "admin")
#: The config's `[server] read_token` (a service token with the analyst role).
SERVICE_TOKEN = "svc-read-0123456789abcdef"
#: A user YAML rule whose title would run script if a page did not escape it.
HOSTILE_TITLE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'
HOSTILE_RULE = f"""\
id: hostile_title
title: '{HOSTILE_TITLE}'
severity: low
filter: {{event.action: upload_delete}}
group_by: [source.ip]
window: {{type: count, threshold: 1000, within: 1m}}
"""
#: Payloads beyond the shared file's viewer-side class; each would set window.__xss if run.
EXTRA_PAYLOADS = (
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1">',
    "javascript:window.__xss=1",
    '<svg onload="window.__xss=1">',
    "{{7*7}}",
    "{% raw %}{{ config }}{% endraw %}",
    "' onmouseover='window.__xss=1",
)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def log_in(http: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    """Log `http` in as `name` through the form; the response to the POST."""
    page = http.get("/login")
    return http.post("/login", data={
        "csrf": csrf_of(page.text), "username": name, "password": password, "next": "/"})


def payloads(shared_data: Path) -> list[str]:
    """Every payload of the shared injection file, plus EXTRA_PAYLOADS."""
    data = json.loads((shared_data / "payloads" / "injection_payloads.json").read_text())
    found = [p["payload"] for p in data["payloads"] if isinstance(p.get("payload"), str)]
    return [*found, *EXTRA_PAYLOADS]


def hostile_events(texts: list[str], ip: str = "198.51.100.66") -> list[Event]:
    """Failed-login events carrying each text as user agent, user name, path and query."""
    return [make_event("authn_login_fail", {
        "source.ip": ip, "user.name": text, "url.path": "/login/" + text,
        "url.query": "q=" + text, "user_agent.original": text,
        "http.request.method": "POST", "http.response.status_code": 401,
    }) for text in texts]


def actions(collector: Collector, action: str) -> list[dict[str, object]]:
    """The stored events of one `event.action`, newest first."""
    page = collector.store.query(Query.parse(f"event.action:{action}", limit=100))
    return [s.event for s in page.events]


def raise_alert(collector: Collector) -> str:
    """Raise an open credential-stuffing alert for 198.51.100.66 (or find the one the
    catalogue already raised for the same address from the test's traffic); its id."""
    alert = Alert(rule="credential_stuffing_source", title="Credential stuffing",
                  severity="high", group={"source.ip": "198.51.100.66"},
                  first_seen=time.time() - 60, last_seen=time.time(), count=20,
                  reason="20 users from one address")
    collector.detection.raise_alert(alert)  # folds into an open episode of the same slot
    return alert.id
