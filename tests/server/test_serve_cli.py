"""`apiwatch serve`: --init, a first start with no config at all, --listen, TLS."""

from __future__ import annotations

import stat
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner
from collector_harness import Collector, free_port, ndjson, shut, token_of, write_config

from apiwatch.cli import main
from apiwatch.cli.serve import split_listen
from apiwatch.config import load_config
from apiwatch.signing import sign_batch
from tls_support import self_signed


def test_init_writes_a_private_config_once(tmp_path: Path) -> None:
    """--init writes a 0600 config, prints its source token, and never overwrites it."""
    path = tmp_path / "apiwatch.toml"
    result = CliRunner().invoke(main, ["serve", "--init", "--config", str(path)])
    assert result.exit_code == 0, result.output
    config = load_config(path, env={})
    assert config.sources["default"].token in result.output
    assert config.server.read_token in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again = CliRunner().invoke(main, ["serve", "--init", "--config", str(path)])
    assert again.exit_code == 2
    assert path.read_bytes() == before


def test_first_start_without_any_config(tmp_path: Path) -> None:
    """With no config the collector starts, creates ./apiwatch-data, refuses ingest, stops clean."""
    port = free_port()
    collector = Collector(tmp_path, port, ["--listen", f"127.0.0.1:{port}"])
    collector.start()
    try:
        body = ndjson([1])
        answer = httpx.post(collector.url + "/v1/events", content=body,
                            headers=sign_batch("anything", body))
        assert answer.json()["error"] == "unknown_token"
    finally:
        assert collector.stop() == 0
    assert "apiwatch serve --init" in collector.log.read_text()
    assert (tmp_path / "apiwatch-data" / "ledger" / "ledger.json").is_file()
    assert (tmp_path / "apiwatch-data" / "ledger" / "checkpoints" / "latest").is_file()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8765", ("127.0.0.1", 8765)), ("[::1]:80", ("::1", 80)),
     ("0.0.0.0:0", ("0.0.0.0", 0))],
)
def test_listen_address_is_split(text: str, expected: tuple[str, int]) -> None:
    """HOST:PORT and [IPv6]:PORT are understood."""
    assert split_listen(text) == expected


@pytest.mark.parametrize("text", ["8765", "host:", ":80", "h:99999", "h:x"])
def test_bad_listen_address_is_refused(text: str) -> None:
    """Anything but HOST:PORT with a port in range is a usage error."""
    with pytest.raises(click.BadParameter):
        split_listen(text)


def test_tls_when_certificate_and_key_are_configured(tmp_path: Path) -> None:
    """With tls_cert and tls_key set the collector speaks HTTPS only."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = write_config(tmp_path / "apiwatch.toml", port, ["app"],
                          {"tls_cert": str(cert), "tls_key": str(key)}, "durable")
    collector = Collector(tmp_path, port, ["--config", str(config)], tls_ca=cert)
    collector.start()
    try:
        body = ndjson([1])
        answer = httpx.post(collector.url + "/v1/events", content=body, verify=collector.verify,
                            headers=sign_batch(token_of("app"), body))
        assert answer.json() == {"accepted": 1, "duplicates": 0}
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        shut(collector)
