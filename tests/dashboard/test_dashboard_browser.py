"""The dashboard in Debian's Chromium (Playwright), against `apiwatch serve` with traffic.

One browser session walks the acceptance path: log in, the overview fills, a credential-
stuffing alert appears live without a reload, it is opened and acknowledged, the attacker's
timeline is one click away, a two-panel dashboard survives a reload; hostile strings from
the shared payload file are shown as text on every page that shows them, no script of theirs
runs and no element of theirs is created. Screenshots go to tests/artifacts/ (gitignored).
Playwright never downloads a browser here: it drives /usr/bin/chromium.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dashboard_support import ARGS, ARTIFACTS, CHROMIUM, PASSWORD, hostile_events, payloads
from playwright import sync_api

from apiwatch.events import Event, make_event
from apiwatch.formats.ecs import encode_ecs
from apiwatch.signing import sign_batch

TOKEN = "tok-app-0123456789abcdef"
ATTACKER = "203.0.113.9"
HOSTILE = "198.51.100.66"
CLI = [sys.executable, "-c", "from apiwatch.cli import main; main()"]


def _post(url: str, events: list[Event]) -> None:
    body = b"".join(encode_ecs(e) for e in events)
    answer = httpx.post(url + "/v1/events", content=body, headers=sign_batch(TOKEN, body))
    assert answer.status_code == 200, answer.text


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`apiwatch serve` on a free port with an admin created by `apiwatch users add`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "apiwatch.toml"
    config.write_text("\n".join([
        'data_dir = "data"', "[server]", f'listen = "127.0.0.1:{port}"',
        "[ledger]", 'origin = "apiwatch/test"', 'durability = "none"',
        "[sources.app]", f'token = "{TOKEN}"', ""]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIWATCH_")}
    subprocess.run([*CLI, "users", "add", "admin", "--role", "admin", "--password-stdin",
                    "--config", str(config)], input=PASSWORD + "\n", text=True, check=True,
                   env=env, capture_output=True)
    log = (tmp_path / "serve.log").open("ab")
    proc = subprocess.Popen([*CLI, "serve", "--config", str(config)], stdout=log, stderr=log,
                            env=env, cwd=tmp_path)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "apiwatch serve did not come up"
            time.sleep(0.05)
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def _traffic() -> list[Event]:
    ok = [make_event("authn_login_success", {
        "source.ip": f"192.0.2.{i}", "user.name": f"user{i}", "url.path": "/api/login",
        "http.request.method": "POST", "http.response.status_code": 200}) for i in range(30)]
    reads = [make_event("data_access", {
        "source.ip": "192.0.2.1", "user.name": "user1", "url.path": f"/api/orders/{i}",
        "apiwatch.object.type": "order", "apiwatch.object.ids": [str(i)]}) for i in range(20)]
    return ok + reads


def _stuffing() -> list[Event]:
    return [make_event("authn_login_fail", {
        "source.ip": ATTACKER, "user.name": f"victim{i}@example.com", "url.path": "/api/login",
        "http.request.method": "POST", "http.response.status_code": 401})
        for i in range(20)]


def test_dashboard_in_chromium(served: str, shared_data: Path, tmp_path: Path) -> None:
    """The acceptance walk in one browser session; no hostile string ever runs."""
    ARTIFACTS.mkdir(exist_ok=True)
    texts = payloads(shared_data)
    _post(served, _traffic() + hostile_events(texts, HOSTILE))
    dialogs: list[str] = []
    csp_errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()

            def on_dialog(dialog: sync_api.Dialog) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            def on_console(message: sync_api.ConsoleMessage) -> None:
                if "Content Security Policy" in message.text:
                    csp_errors.append(message.text)

            page.on("dialog", on_dialog)
            page.on("console", on_console)

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)

            def clean(where: str) -> None:
                assert page.evaluate("typeof window.__xss") == "undefined", where
                injected = page.evaluate(
                    "document.querySelectorAll('svg, iframe, img, object, embed').length")
                assert injected == 0, where
                assert page.evaluate("document.scripts.length") == 2, where
                assert not dialogs, (where, dialogs)

            page.goto(served + "/")
            assert "/login" in page.url
            shot("login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#chart-outcomes canvas")
            assert int(page.inner_text("#total-events")) >= 50
            clean("overview")
            shot("overview")

            page.goto(served + "/alerts")
            page.evaluate("window.__stay = 1")
            _post(served, _stuffing())
            row = f"#alerts tr:has-text('Credential stuffing'):has-text('{ATTACKER}')"
            assert page.locator(row).count() == 0
            page.wait_for_selector(row, timeout=20_000)
            assert page.evaluate("window.__stay") == 1, "the page was reloaded"
            clean("alerts")
            shot("alerts-live")

            page.click(row + " a")
            page.wait_for_selector("#alert-status")
            assert page.inner_text("#alert-status") == "open"
            shot("alert")
            page.click("#do-ack")
            page.wait_for_selector("#alert-status:has-text('acknowledged')")
            shot("alert-acknowledged")

            page.click(f".actor-link a:has-text('{ATTACKER}')")
            page.wait_for_selector("#actor-value")
            assert page.inner_text("#actor-value") == ATTACKER
            assert "Credential stuffing" in page.inner_text("#actor-alerts")
            shot("actor")

            page.goto(served + "/dashboards")
            page.fill("#new-board-name", "Attack board")
            page.click("#create-board")
            for title, kind, extra in (("Failures", "timeseries", {}),
                                       ("Top users", "top", {"field": "user.name"})):
                page.fill("#add-panel input[name=title]", title)
                page.select_option("#add-panel select[name=kind]", kind)
                page.fill("#add-panel input[name=query]", "event.outcome:failure")
                for name, value in extra.items():
                    page.select_option(f"#add-panel select[name={name}]", value)
                page.click("#add-panel button[type=submit]")
                page.wait_for_selector(f".board-panel h2:has-text('{title}')")
            page.reload()
            assert page.locator(".board-panel").count() == 2
            page.wait_for_selector(".board-panel .chart canvas")
            shot("dashboard")

            for path in (f"/events?q=source.ip:{HOSTILE}&limit=500",
                         f"/actor?kind=ip&value={HOSTILE}", "/", "/alerts"):
                page.goto(served + path)
                page.wait_for_load_state("load")
                clean(path)
            page.goto(served + f"/events?q=source.ip:{HOSTILE}&limit=500")
            shown = page.inner_text("table.events")
            assert "<script>window.__xss=1</script>" in shown
            assert '<svg onload="window.__xss=1">' in shown
            assert "{{7*7}}" in shown
            shot("events-hostile")
            assert not csp_errors, csp_errors
        finally:
            browser.close()
