"""The rules page in Debian's Chromium (Playwright): an admin switches a rule off and the
page shows it off; a user rule's hostile title is text, and no script of it runs."""

from __future__ import annotations

from dashboard_support import ARGS, ARTIFACTS, CHROMIUM, HOSTILE_TITLE, PASSWORD
from playwright import sync_api

from apiwatch.collector.runtime import Collector

RULE = "brute_force_ip_fast"


def test_admin_disables_a_rule_in_the_rules_page(base_url: str, collector: Collector) -> None:
    """Log in as admin, open Rules, press Disable on a rule: after the page reloads the row
    says disabled and offers Enable, and the running engine has the rule off."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(base_url + "/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("header nav")
            page.click("nav a:has-text('Rules')")
            row = page.locator(f"#rules tr[data-rule='{RULE}']")
            assert row.locator("td.state").inner_text() == "enabled"
            row.locator("button:has-text('Disable')").click()
            page.wait_for_selector(f"#rules tr[data-rule='{RULE}'].off")
            assert row.locator("td.state").inner_text() == "disabled"
            assert row.locator("button").inner_text() == "Enable"
            assert RULE in collector.detection.engine.disabled
            hostile = page.locator("#rules tr[data-rule='hostile_title'] td").nth(1)
            assert hostile.inner_text() == HOSTILE_TITLE
            assert page.evaluate("typeof window.__xss") == "undefined"
            assert page.evaluate("document.querySelectorAll('main img').length") == 0
            page.screenshot(path=str(ARTIFACTS / "dashboard-rules.png"), full_page=True)
        finally:
            browser.close()
