"""Guessing a log file's format from its first lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiwatch.errors import ApiwatchError
from apiwatch.formats.autodetect import detect_format, parse_lines


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("logs/loghub/OpenSSH/OpenSSH_2k.log", "sshd"),
        ("logs/elastic_integrations/test-auth.log", "sshd"),
        ("logs/loghub/Linux/Linux_2k.log", "sshd"),  # its first 50 lines are mostly sshd
        ("crowdsec_hub/tests/CVE-2023-4911/CVE-2023-4911.log", "syslog"),
        ("logs/elastic_integrations/nginx-test-access.log", "nginx"),
        ("crowdsec_hub/tests/apache2-logs/apache2-logs.log", "apache"),
        ("crowdsec_hub/tests/endlessh-syslogs/endlessh-logs.log", "syslog"),
    ],
)
def test_real_files_are_recognised(shared_data: Path, path: str, expected: str) -> None:
    """Real sshd, syslog, nginx and Apache files are told apart by their first lines."""
    lines = (shared_data / path).read_text(encoding="utf-8", errors="replace").splitlines()
    assert detect_format(lines, name=Path(path).name) == expected


def test_json_lines_and_unknown_text() -> None:
    """ECS JSON lines are `jsonl`; text in no known format is None."""
    assert detect_format(['{"@timestamp": "2024-01-01T00:00:00Z"}']) == "jsonl"
    assert detect_format(["hello", "", "world"]) is None


def test_syslog_json_events_go_to_the_given_decoder() -> None:
    """In a syslog stream, an apiwatch JSON event is decoded by the caller's decoder, and
    without one it is a parse_failure rather than dropped."""
    line = '<14>1 2024-01-01T00:00:00Z h apiwatch - - - {"event.action": "authz_fail"}'
    [decoded] = parse_lines("syslog", [line], decode_json=lambda body: {"body": body})
    assert decoded == {"body": '{"event.action": "authz_fail"}'}
    [failure] = parse_lines("syslog", [line])
    assert failure["event.action"] == "parse_failure"


def test_jsonl_is_not_parsed_here() -> None:
    """Asking for `jsonl` line parsing points to the JSON lines decoder."""
    with pytest.raises(ApiwatchError, match=r"formats\.jsonl"):
        list(parse_lines("jsonl", []))
