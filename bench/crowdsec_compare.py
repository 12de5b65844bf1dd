"""Run CrowdSec's hub tests through apiwatch: do we alert on the attackers its maintainers expect?

For every test in `../shared/data/crowdsec_hub/tests/` whose input is an sshd (syslog), nginx or
apache2 log, parse the input with `apiwatch.formats.autodetect.parse_lines`, replay the events
in time order through an engine with the whole catalogue, and compare the source IPs alerted on
with those in the maintainers' `expected.json`. Writes `docs/crowdsec-comparison.md`.

    python bench/crowdsec_compare.py [--check]

`--check` exits 1 unless >= 90% of in-scope attacker IPs are found and the zero-alert tests
stay silent. The scope rule is `IN_SCOPE` below, explained in the document.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from apiwatch.detect import Engine, load_catalogue
from apiwatch.formats.autodetect import parse_lines

REPO = Path(__file__).resolve().parents[1]
HUB = REPO.parent / "shared" / "data" / "crowdsec_hub"
DOC = REPO / "docs" / "crowdsec-comparison.md"
GOAL = 0.9

#: CrowdSec scenarios an API monitor's behavioural catalogue should match, with the rule
#: family expected to catch them. Everything else (a CVE's or a product's request signature,
#: the hub's one-request canary scenarios, GeoIP travel) is out of scope.
IN_SCOPE = {
    "crowdsecurity/ssh-bf": "brute force per IP",
    "crowdsecurity/ssh-bf_user-enum": "brute force per IP",
    "crowdsecurity/ssh-slow-bf": "brute force per IP (slow)",
    "crowdsecurity/ssh-slow-bf_user-enum": "brute force per IP (slow)",
    "crowdsecurity/ssh-time-based-bf": "low-and-slow per IP",
    "crowdsecurity/ssh-time-based-bf_user-enum": "low-and-slow per IP",
    "lepresidente/ssh-bad-keyexchange-bf": "brute force per IP",
    "crowdsecurity/http-probing": "route probing",
    "crowdsecurity/http-dos-random-uri": "route probing",
    "crowdsecurity/http-sensitive-files": "sensitive file probing",
    "crowdsecurity/http-path-traversal-probing": "injection probing",
    "crowdsecurity/http-sqli-probbing-detection": "injection probing",
    "crowdsecurity/http-xss-probbing": "injection probing",
    "crowdsecurity/http-bf-wordpress_bf": "login route flood",
    "crowdsecurity/http-generic-bf": "brute force per IP",
    "crowdsecurity/nginx-req-limit-exceeded": "rate limit burst",
}
_SSHD = re.compile(r" sshd(?:-session)?\[\d+\]: ")
_FORMATS = {"nginx": "nginx", "apache2": "apache", "syslog": "syslog"}


@dataclass
class Result:
    """One hub test: expected attacker IPs (in and out of scope) and what apiwatch alerted on."""

    test: str
    log_type: str
    events: int
    in_scope: set[str] = field(default_factory=set)
    out_of_scope: set[str] = field(default_factory=set)
    scenarios_out: set[str] = field(default_factory=set)
    alerted: dict[str, set[str]] = field(default_factory=dict)  # IP -> rules
    other_alerts: list[str] = field(default_factory=list)  # alerts not grouped by an IP

    @property
    def expected(self) -> set[str]:
        return self.in_scope | self.out_of_scope

    @property
    def found(self) -> set[str]:
        return self.in_scope & set(self.alerted)

    @property
    def false_positives(self) -> set[str]:
        return set(self.alerted) - self.expected

    @property
    def zero_alert(self) -> bool:
        return not self.expected and not self.scenarios_out


def _tests() -> list[dict[str, str]]:
    with (HUB / "tests_index.csv").open(newline="") as fh:
        return [row for row in csv.DictReader(fh) if row["log_type"] in _FORMATS]


def run_test(row: dict[str, str], engine: Engine) -> Result | None:
    """Replay one hub test; None if it is a syslog test without sshd lines."""
    folder = HUB / "tests" / row["test"]
    lines = (folder / row["log_files"]).read_text(encoding="utf-8", errors="replace")
    events = list(parse_lines(_FORMATS[row["log_type"]], lines.splitlines()))
    if row["log_type"] == "syslog" and _SSHD.search(lines) is None:
        return None
    result = Result(row["test"], row["log_type"], len(events))
    expected_file = folder / "expected.json"
    if expected_file.exists():
        for alert in json.loads(expected_file.read_text())["alerts"]:
            sources = set(alert["sources"]) if alert.get("scope") == "Ip" else set()
            if alert["scenario"] in IN_SCOPE:
                result.in_scope |= sources
            else:
                result.out_of_scope |= sources
                result.scenarios_out.add(alert["scenario"])
    result.out_of_scope -= result.in_scope
    # A file is a batch: replay it in event-time order, as a live stream would have come.
    events.sort(key=lambda e: str(e.get("@timestamp", "")))
    alerts = [a for e in events for a in engine.process(e)]
    for alert in alerts:
        ip = alert.group.get("source.ip")
        if isinstance(ip, str):
            result.alerted.setdefault(ip, set()).add(alert.rule)
        else:
            result.other_alerts.append(f"{alert.rule} {alert.group}")
    return result


def run_all() -> list[Result]:
    """Every applicable hub test, each through a fresh engine with the whole catalogue."""
    rules = load_catalogue()
    results = []
    for row in _tests():
        result = run_test(row, Engine(rules))
        if result is not None:
            results.append(result)
    return results


def summary(results: list[Result]) -> tuple[int, int, int, list[str]]:
    """(in-scope IPs found, in-scope IPs expected, false-positive IPs, noisy zero-alert tests)."""
    found = sum(len(r.found) for r in results)
    expected = sum(len(r.in_scope) for r in results)
    fps = sum(len(r.false_positives) + len(r.other_alerts) for r in results)
    noisy = [r.test for r in results if r.zero_alert and (r.alerted or r.other_alerts)]
    return found, expected, fps, noisy


def _ips(ips: set[str]) -> str:
    return ", ".join(sorted(ips)) or "-"


def render(results: list[Result]) -> str:
    """The comparison as Markdown."""
    found, expected, fps, noisy = summary(results)
    out_found = sum(len(r.out_of_scope & set(r.alerted)) for r in results)
    out_total = sum(len(r.out_of_scope) for r in results)
    lines = [
        "# apiwatch against CrowdSec's hub tests",
        "",
        "Generated by `python bench/crowdsec_compare.py`; checked by",
        "`tests/detect/test_crowdsec_hub.py`. Do not edit by hand.",
        "",
        "Every CrowdSec hub test (`../shared/data/crowdsec_hub/tests/`, hub commit b03cb59b)",
        "whose input is an nginx or apache2 access log, or a syslog file with sshd lines, is",
        "parsed with `apiwatch.formats.autodetect.parse_lines` (year-less syslog stamps take",
        "the current year, as the maintainers' expectations assume), replayed in event-time",
        "order through a fresh engine with the whole built-in catalogue, and the source IPs",
        "apiwatch alerts on are compared with the IPs in the maintainers' `expected.json`.",
        "",
        "## Scope",
        "",
        "An expected alert is **in scope** when its CrowdSec scenario is behavioural: a volume",
        "or variety of failures, probes or attack patterns from one source over time, which",
        "an API monitor's catalogue must catch whatever the product behind the API. It is",
        "**out of scope** when the scenario matches one request's signature for a named CVE",
        "or product (Confluence, Fortinet, WordPress plugin paths, ...), is one of the hub's",
        "canary scenarios (`*-generic-test`, firing on one crafted request), or needs GeoIP",
        "(impossible travel). In-scope scenarios and the apiwatch rule family for each:",
        "",
        "| CrowdSec scenario | apiwatch rule family |",
        "|---|---|",
        *(f"| `{s}` | {fam} |" for s, fam in IN_SCOPE.items()),
        "",
        "## Result",
        "",
        f"- In-scope attacker IPs found: **{found} / {expected}**"
        f" ({found / expected:.0%}; goal >= {GOAL:.0%}).",
        f"- False positives (alerted IPs the maintainers do not expect, plus alerts not "
        f"grouped by IP): **{fps}**.",
        f"- Zero-alert tests with any apiwatch alert: **{len(noisy)}**"
        f"{' (' + ', '.join(noisy) + ')' if noisy else ''}.",
        f"- Out-of-scope attacker IPs alerted on anyway: {out_found} / {out_total}.",
        "",
        "## Per test",
        "",
        "Recall is over in-scope IPs; FP counts alerted IPs expected by no scenario.",
        "",
        "| test | log | events | in-scope IPs | found | recall | FP | apiwatch rules fired |",
        "|---|---|---:|---|---|---:|---:|---|",
    ]
    for r in sorted(results, key=lambda r: r.test):
        if not r.in_scope:
            continue
        recall = f"{len(r.found) / len(r.in_scope):.0%}"
        rules = sorted({rule for ip in r.alerted for rule in r.alerted[ip]})
        lines.append(
            f"| {r.test} | {r.log_type} | {r.events} | {_ips(r.in_scope)} | {_ips(r.found)} "
            f"| {recall} | {len(r.false_positives) + len(r.other_alerts)} "
            f"| {', '.join(rules) or '-'} |"
        )
    lines += [
        "",
        "### Zero-alert tests (the maintainers expect silence)",
        "",
        "| test | log | events | apiwatch alerts |",
        "|---|---|---:|---|",
    ]
    for r in sorted(results, key=lambda r: r.test):
        if r.zero_alert:
            noise = sorted(r.alerted) + r.other_alerts
            lines.append(f"| {r.test} | {r.log_type} | {r.events} | {', '.join(noise) or 'none'} |")
    lines += [
        "",
        "### Out of scope (reported, not counted)",
        "",
        "| test | CrowdSec scenarios | expected IPs | alerted anyway | FP |",
        "|---|---|---|---|---:|",
    ]
    for r in sorted(results, key=lambda r: r.test):
        if r.scenarios_out and not r.in_scope:
            lines.append(
                f"| {r.test} | {', '.join(sorted(r.scenarios_out))} | {_ips(r.out_of_scope)} "
                f"| {_ips(r.out_of_scope & set(r.alerted))} "
                f"| {len(r.false_positives) + len(r.other_alerts)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    """Write the document; with --check, exit 1 if the goal is missed."""
    results = run_all()
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(results), encoding="utf-8")
    found, expected, fps, noisy = summary(results)
    print(f"in-scope attacker IPs found: {found}/{expected} ({found / expected:.1%})")
    print(f"false positives: {fps}; noisy zero-alert tests: {noisy or 'none'}")
    print(f"wrote {DOC.relative_to(REPO)}")
    if "--check" in sys.argv[1:]:
        return 0 if found >= GOAL * expected and not noisy else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
