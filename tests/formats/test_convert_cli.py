"""`apiwatch convert`: bad lines reported, good ones converted, secrets never written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from fmt_samples import STRING_FIELDS, parse_cef, parse_syslog, unframe

from apiwatch.cli import main
from apiwatch.events import make_event

FORMATS = ("ecs", "ocsf", "cef", "syslog")


def _run(args: list[str], stdin: bytes) -> Any:
    return CliRunner().invoke(main, ["convert", *args], input=stdin)


def _line(**fields: Any) -> bytes:
    event = make_event("authn_login_fail", fields)
    return orjson.dumps(event) + b"\n"


def _records(fmt: str, out: bytes) -> list[Any]:
    """Parse the output of one format into its records (asserting each parses)."""
    if fmt == "syslog":
        return [parse_syslog(m) for m in unframe(out)]
    lines = out.decode("utf-8").splitlines(keepends=True)
    if fmt == "cef":
        return [parse_cef(line) for line in lines]
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_lines_are_reported_and_the_rest_converted(fmt: str) -> None:
    """Line numbers of bad lines go to stderr, good lines to stdout, and the exit code is 1."""
    stdin = _line() + b"not json\n" + _line(**{"source.ip": "nope"}) + _line()
    result = _run(["--to", fmt], stdin)
    assert result.exit_code == 1
    assert "<stdin>: line 2" in result.stderr
    assert "<stdin>: line 3, field 'source.ip'" in (
        result.stderr
    )
    assert len(_records(fmt, result.stdout_bytes)) == 2


def test_clean_input_exits_0_and_files_are_named(tmp_path: Path) -> None:
    """All-good input exits 0; errors in files name the file."""
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_bytes(_line() * 3)
    bad.write_bytes(b"{}\n")
    assert _run(["--to", "ecs", str(good)], b"").exit_code == 0
    result = _run(["--to", "ecs", str(good), str(bad)], b"")
    assert result.exit_code == 1
    assert f"{bad}: line 1" in result.stderr
    assert len(result.stdout_bytes.splitlines()) == 3


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    """An unknown format, a missing file or an unreadable config exits 2."""
    assert _run(["--to", "xml"], b"").exit_code == 2
    assert _run(["--to", "ecs", str(tmp_path / "missing")], b"").exit_code == 2
    config = tmp_path / "c.toml"
    config.write_text("[sanitize\n")
    assert _run(["--to", "ecs", "--config", str(config)], b"").exit_code == 2


def test_syslog_newline_framing_gives_one_message_per_line() -> None:
    """`--framing newline` writes each message on its own line."""
    result = _run(["--to", "syslog", "--framing", "newline"], _line() * 2)
    lines = result.stdout_bytes.splitlines()
    assert len(lines) == 2
    assert all(parse_syslog(line) for line in lines)


def test_every_payload_through_convert_gives_one_record_per_good_line(shared_data: Path) -> None:
    """Injection payloads in every string field, through the CLI: one record per valid line."""
    data = json.loads((shared_data / "payloads" / "injection_payloads.json").read_text())
    lines = []
    for entry in data["payloads"]:
        payload = entry["payload"]
        if isinstance(payload, str):
            # json.dumps keeps lone surrogates as escapes; the decoder must refuse those lines.
            fields = dict.fromkeys(STRING_FIELDS, payload)
            lines.append(json.dumps(make_event("authn_login_fail", fields)).encode() + b"\n")
        elif isinstance(payload, dict):  # field injection: keys merged at the top level
            event = make_event("authn_login_fail") | payload
            lines.append(json.dumps(event).encode() + b"\n")
        elif payload is None:  # raw bytes that are not UTF-8, placed in a string value
            raw = bytes.fromhex(entry["payload_bytes_hex"])
            lines.append(_line()[:-2] + b',"user.name":"' + raw + b'"}\n')
        else:  # deep nesting where a string belongs
            lines.append(_line()[:-2] + b',"user.name":' + json.dumps(payload).encode() + b"}\n")
    for fmt in FORMATS:
        result = _run(["--to", fmt], b"".join(lines))
        bad = result.stderr.count("<stdin>: line ")
        assert len(_records(fmt, result.stdout_bytes)) == len(lines) - bad
        assert 0 < bad < len(lines) / 2


def _secret_lines(shared_data: Path) -> tuple[list[str], bytes]:
    data = json.loads((shared_data / "payloads" / "secret_samples.json").read_text())
    secrets, lines = [], []
    for sample in data["samples"]:
        context, value = sample["context"], sample["value"]
        secrets.append(value)
        query = context.split("?", 1)[1] if "?" in context else context
        try:
            body = context if isinstance(json.loads(context), dict) else None
        except ValueError:
            body = None
        placements: list[dict[str, Any]] = [
            {"user_agent.original": context, "labels.x": context},
            {"url.query": query, "url.path": "/v1/login"},
            {"message": body or json.dumps({"user": "alice", "data": context})},
            {"message": f"request from alice failed: {context}"},
        ]
        lines += [_line(**fields) for fields in placements]
    return secrets, b"".join(lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_secrets_never_reach_the_output(fmt: str, shared_data: Path) -> None:
    """Every sample secret, in headers, query, JSON body or free text, is absent from output."""
    secrets, stdin = _secret_lines(shared_data)
    result = _run(["--to", fmt], stdin)
    assert result.exit_code == 0, result.stderr
    out = result.stdout_bytes.decode("utf-8")
    leaked = [s for s in secrets if s in out or json.dumps(s)[1:-1] in out]
    assert not leaked
