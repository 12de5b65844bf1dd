"""Single-event Sigma rules: translation to apiwatch filters, matching, refusals, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from apiwatch.cli import main
from apiwatch.detect import Engine, RuleError
from apiwatch.detect.sigma import SigmaRuleError
from apiwatch.detect.sigma_load import is_sigma, load_any, parse_sigma_text

WEB = "rules/sigma-rules/rules/web/webserver_generic"
PROXY = "rules/sigma-rules/rules/web/proxy_generic"


def _event(**fields: Any) -> dict[str, Any]:
    base = {"@timestamp": "2026-01-01T00:00:00.000000Z", "event.action": "http_request",
            "source.ip": "203.0.113.7", "http.request.method": "GET",
            "http.response.status_code": 200, "url.original": "/api/items?id=1"}
    base.update({k.replace("__", "."): v for k, v in fields.items()})
    return base


def _fires(rules_text: str, event: dict[str, Any]) -> bool:
    return bool(Engine(parse_sigma_text(rules_text)).process(event))


class TestShippedRules:
    def test_sigmahq_rules_load_except_the_pipe_syntax(self, shared_data: Path) -> None:
        """Every shipped SigmaHQ rule loads, except the two written in the deprecated pipe
        (`| count() by`) syntax, which are refused naming that syntax."""
        loaded, refused = [], []
        for file in sorted((shared_data / "rules/sigma-rules").rglob("*.yml")):
            try:
                loaded += load_any(file)
            except SigmaRuleError as exc:
                refused.append((file.name, str(exc)))
        assert len(loaded) == 27
        assert [name for name, _ in refused] == [
            "generic_brute_force.yml", "web_multiple_susp_resp_codes_single_source.yml"]
        assert all("pipe syntax" in msg and "unsupported" in msg for _, msg in refused)

    def test_sql_injection_in_the_url_fires(self, shared_data: Path) -> None:
        """SigmaHQ's SQL injection rule fires on a GET with `UNION SELECT` in the URL, grouped
        by the client address, and names the rule."""
        rules = load_any(shared_data / WEB / "web_sql_injection_in_access_logs.yml")
        alerts = Engine(rules).process(
            _event(url__original="/api/items?id=1%20UNION%20SELECT%20password%20FROM%20users"))
        assert len(alerts) == 1
        assert alerts[0].group == {"source.ip": "203.0.113.7"}
        assert alerts[0].severity == "high"
        assert "SQL Injection" in alerts[0].reason

    @pytest.mark.parametrize("change", [
        {"http.response.status_code": 404},  # the rule's filter: not found is not a hit
        {"http.request.method": "POST"},  # the rule looks at GET only
        {"url.original": "/api/items?id=1&order=asc"},  # no attack string
    ])
    def test_sql_injection_rule_stays_quiet(self, shared_data: Path,
                                            change: dict[str, Any]) -> None:
        """The SQL injection rule does not fire on a 404, a POST, or a clean URL."""
        rules = load_any(shared_data / WEB / "web_sql_injection_in_access_logs.yml")
        event = _event(url__original="/x?q=1%20UNION%20SELECT%201")
        event.update(change)
        assert Engine(rules).process(event) == []

    def test_hacktool_user_agent_matches_case_insensitively(self, shared_data: Path) -> None:
        """`|contains` values match anywhere in the field, ignoring case, as Sigma says."""
        rules = load_any(shared_data / PROXY / "proxy_ua_hacktool.yml")
        assert Engine(rules).process(_event(user_agent__original="Mozilla (DirBuster 1.0)"))
        assert not Engine(rules).process(_event(user_agent__original="Mozilla/5.0 Firefox"))

    def test_path_traversal_maps_cs_uri_query_to_the_request_target(
            self, shared_data: Path) -> None:
        """`cs-uri-query` is read from `url.original` (path and query)."""
        rules = load_any(shared_data / WEB / "web_path_traversal_exploitation_attempt.yml")
        assert Engine(rules).process(_event(url__original="/static/../../../etc/passwd"))

    def test_keywords_match_the_raw_log_line(self, shared_data: Path) -> None:
        """A keyword rule (no field) matches a substring of `event.original`."""
        rules = load_any(shared_data / "rules/sigma-rules/rules/linux/builtin/sshd"
                         / "lnx_sshd_susp_ssh.yml")
        line = "sshd[42]: error: Corrupted MAC on input. [preauth]"
        assert Engine(rules).process({"@timestamp": "2026-01-01T00:00:00Z",
                                      "event.original": line})
        assert not Engine(rules).process({"@timestamp": "2026-01-01T00:00:00Z",
                                          "event.original": "sshd[42]: Accepted key"})


CRAFTED = """
title: Crafted
id: 11111111-1111-4111-8111-111111111111
level: critical
logsource: {category: webserver}
detection:
  sel_uri:
    c-uri|contains|all: [union, select]
  sel_agent:
    c-useragent|startswith: curl/
    c-useragent|endswith: '*x'
  net:
    c-ip|cidr: 198.51.100.0/24
  slow:
    sc-status|gte: 500
  token:
    cs-uri-query|base64|contains: secret
  regex:
    c-uri|re|i: '/ADMIN/\\d+$'
  filter:
    cs-method: OPTIONS
  condition: (1 of sel_* or all of net or token or regex or slow) and not filter
"""


class TestModifiers:
    @pytest.mark.parametrize(("fields", "expected"), [
        ({"url.original": "/a?q=UNION+ALL+SELECT"}, True),  # contains|all, any case
        ({"url.original": "/a?q=union"}, False),  # only one of the |all values
        ({"user_agent.original": "curl/8 x"}, True),  # startswith and endswith
        ({"user_agent.original": "wget curl/8 x"}, False),
        ({"source.ip": "198.51.100.9"}, True),  # cidr
        ({"http.response.status_code": 503}, True),  # gte
        ({"http.response.status_code": "502"}, False),  # a number's text is not a number
        ({"url.original": "/?t=c2VjcmV0"}, True),  # base64 of 'secret'
        ({"url.original": "/admin/12"}, True),  # re with the i flag
        ({"url.original": "/admin/12", "http.request.method": "OPTIONS"}, False),  # not filter
    ])
    def test_modifiers_and_conditions(self, fields: dict[str, Any], expected: bool) -> None:
        """contains, all, startswith, endswith, cidr, gte, base64, re|i, `1 of`, `all of` and
        `not` behave as the Sigma specification says."""
        event = _event(**{"url.original": "/plain", **fields})
        assert _fires(CRAFTED, event) is expected

    def test_null_means_absent_and_numbers_match_their_text(self) -> None:
        """`field: null` matches an absent field; `sc-status: 404` matches 404 and '404'."""
        rule = """
title: n
logsource: {category: webserver}
detection:
  sel: {cs-referrer: null, sc-status: 404}
  condition: sel
"""
        assert _fires(rule, _event(http__response__status_code="404"))
        assert not _fires(rule, _event(http__response__status_code=404,
                                       http__request__referrer="https://x"))

    def test_cased_compares_exactly(self) -> None:
        """`|cased` turns off Sigma's case-insensitive comparison."""
        rule = """
title: c
logsource: {category: webserver}
detection:
  sel: {cs-method|cased: Post}
  condition: sel
"""
        assert _fires(rule, _event(http__request__method="Post"))
        assert not _fires(rule, _event(http__request__method="POST"))


class TestRefusals:
    @pytest.mark.parametrize(("detection", "feature"), [
        ("sel: {c-uri|fieldref: cs-host}\n  condition: sel", "fieldref"),
        ("sel: {c-uri|expand: '%admin_paths%'}\n  condition: sel", "placeholder"),
        ("sel: {c-uri|minute: 5}\n  condition: sel", "modifier"),
        ("sel: {c-uri: x}\n  condition: sel | count() by c-ip > 5", "pipe syntax"),
        ("sel: {c-uri|nosuch: x}\n  condition: sel", "nosuch"),
    ])
    def test_unsupported_features_are_refused_naming_rule_and_feature(
            self, detection: str, feature: str) -> None:
        """A rule using a feature apiwatch cannot evaluate is refused, never half-loaded."""
        text = ("title: Odd rule\nid: 22222222-2222-4222-8222-222222222222\n"
                f"logsource: {{category: webserver}}\ndetection:\n  {detection}\n")
        with pytest.raises(SigmaRuleError) as info:
            parse_sigma_text(text, "odd.yml")
        message = str(info.value)
        assert "odd.yml" in message
        assert "Odd rule" in message
        assert feature in message

    def test_collection_actions_are_refused(self) -> None:
        """`action: global` documents (old Sigma collections) are refused, not ignored."""
        text = "action: global\ntitle: g\nlogsource: {category: webserver}\n"
        with pytest.raises(SigmaRuleError, match="collection action 'global'"):
            parse_sigma_text(text, "g.yml")


class TestFiles:
    def test_is_sigma_tells_the_formats_apart(self) -> None:
        """Sigma documents are told from apiwatch rules by `detection`/`logsource`/
        `correlation`."""
        assert is_sigma({"title": "x", "detection": {}})
        assert is_sigma({"title": "x", "correlation": {}})
        assert not is_sigma({"id": "x", "filter": {}, "window": {"type": "each"}})

    def test_load_any_reads_both_formats(self, tmp_path: Path, shared_data: Path) -> None:
        """A directory with an apiwatch rule and a Sigma rule loads both."""
        (tmp_path / "own.yaml").write_text(
            "id: own\nfilter: {event.action: authz_fail}\nwindow: {type: each}\n")
        (tmp_path / "sigma.yml").write_text(
            (shared_data / PROXY / "proxy_ua_empty.yml").read_text())
        assert sorted(r.title for r in load_any(tmp_path)) == [
            "HTTP Request With Empty User Agent", "own"]

    def test_duplicate_ids_across_formats_are_an_error(self, tmp_path: Path) -> None:
        """Two Sigma files with the same id are an error naming both files."""
        for name in ("a.yml", "b.yml"):
            (tmp_path / name).write_text(CRAFTED)
        with pytest.raises(RuleError, match="also defined in"):
            load_any(tmp_path)

    def test_cli_lint_and_test_accept_sigma(self, tmp_path: Path, shared_data: Path) -> None:
        """`rules lint` accepts a Sigma file and reports a refused one; `rules test` shows
        what a Sigma rule raises."""
        good = shared_data / WEB / "web_sql_injection_in_access_logs.yml"
        bad = shared_data / "rules/sigma-rules/unsupported/web"
        result = CliRunner().invoke(main, ["rules", "lint", str(good), str(bad), "--json"])
        assert result.exit_code == 1
        report = json.loads(result.output)
        assert report[0]["rules"] == 1
        assert report[0]["error"] is None
        assert "pipe syntax" in report[1]["error"]
        events = tmp_path / "e.jsonl"
        events.write_text(json.dumps(_event(url__original="/?q=UNION%20SELECT%201")) + "\n")
        result = CliRunner().invoke(main, ["rules", "test", str(good), str(events), "--json"])
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.output)["alerts"]) == 1
