"""`apiwatch demo`: the attacks in its traffic raise their alerts, its customers raise none."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from apiwatch.cli import main
from apiwatch.demo.runner import Demo, demo_rules

#: The catalogue rules each attack of the demo must raise.
EXPECTED = {"distributed_credential_stuffing", "bola_enumeration", "api_key_new_network"}
#: `--speed` of the demo under test.
SPEED = 30


def _all_fired(alerts: list[dict[str, Any]]) -> bool:
    """Every expected rule fired, the new-network one for both keys (stolen and leaked)."""
    rules = [a["rule"] for a in alerts]
    return set(rules) >= EXPECTED and rules.count("api_key_new_network") >= 2


@pytest.fixture(scope="module")
def finished_demo() -> Iterator[tuple[Demo, list[dict[str, Any]]]]:
    """The default scenario at 30 times its speed (7 s of wall clock instead of 3.5 min),
    run until the expected alerts fired (40 s at most)."""
    run = Demo(speed=SPEED)
    run.start()
    try:
        deadline = time.monotonic() + 40
        alerts = run.alerts()
        while not _all_fired(alerts) and time.monotonic() < deadline:
            time.sleep(0.5)
            alerts = run.alerts()
        yield run, alerts
    finally:
        run.stop()


def test_attacks_raise_their_alerts(finished_demo: tuple[Demo, list[dict[str, Any]]]) -> None:
    """Stuffing, the BOLA walk and the leaked key (two new networks) each raise their rule."""
    _, alerts = finished_demo
    rules = [a["rule"] for a in alerts]
    assert set(rules) >= EXPECTED
    # The stolen key and the leaked robot key each show up from a new network.
    assert rules.count("api_key_new_network") == 2


def test_customers_raise_no_alert(finished_demo: tuple[Demo, list[dict[str, Any]]]) -> None:
    """No alert is grouped on a well-behaved customer's address, name or key."""
    run, alerts = finished_demo
    normal = run.normal_principals()
    assert len(normal) == 12  # four customers: address, name and key fingerprint each
    for alert in alerts:
        assert not normal & {str(v) for v in alert["group"].values()}, alert


def test_stop_deletes_the_data(finished_demo: tuple[Demo, list[dict[str, Any]]]) -> None:
    """After the run nothing is left of the demo's temporary folder."""
    run, _ = finished_demo
    run.stop()
    assert not run.folder.exists()


def test_demo_rules_only_shorten_learning(tmp_path: Path) -> None:
    """The demo's catalogue copy differs from the catalogue only in first-seen learning."""
    folder = demo_rules(tmp_path / "rules", 2.5)
    docs = yaml.safe_load_all((folder / "api_keys.yaml").read_text())
    windows = {d["id"]: d["window"] for d in docs}
    assert windows["api_key_new_network"]["learn"] == "2.5s"
    assert windows["api_key_multi_ip"] == {"type": "distinct", "fields": {"source.ip": 3},
                                           "within": "5m"}


def test_command_prints_login_and_stops() -> None:
    """`apiwatch demo --duration` prints the dashboard URL and admin login, then exits 0;
    `--speed 2` halves the warm-up and the whole story, and says so."""
    result = CliRunner().invoke(main, ["demo", "--speed", "2", "--duration", "1"])
    assert result.exit_code == 0, result.output
    assert "dashboard: http://127.0.0.1:" in result.output
    assert "login: admin / " in result.output
    assert "attacks start in 30 s and are over after 105 s" in result.output
    assert "0 alerts" in result.output


def test_speed_must_be_positive() -> None:
    """`--speed 0` is a usage error (exit 2), not a demo that never attacks."""
    result = CliRunner().invoke(main, ["demo", "--speed", "0"])
    assert result.exit_code == 2


def test_command_without_fastapi_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without FastAPI the command exits 2 naming the `demo` extra."""
    for name in [m for m in sys.modules if m == "fastapi" or m.startswith("apiwatch.demo")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(main, ["demo", "--duration", "0"])
    assert result.exit_code == 2
    assert "pip install 'apiwatch[demo]'" in result.output
