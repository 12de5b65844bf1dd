"""A peer's test suite: CrowdSec's hub tests replayed through the catalogue."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crowdsec_compare.py"


def _compare(shared_data: Path) -> ModuleType:
    assert (shared_data / "crowdsec_hub" / "tests_index.csv").is_file()
    spec = importlib.util.spec_from_file_location("crowdsec_compare", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compared(shared_data: Path) -> tuple[ModuleType, list[Any]]:
    """The comparison module and its results over every applicable hub test."""
    compare = _compare(shared_data)
    return compare, compare.run_all()


def test_finds_ninety_percent_of_in_scope_attackers(
    compared: tuple[ModuleType, list[Any]],
) -> None:
    """At least 90% of the attacker IPs the maintainers expect (in scope) are alerted on."""
    compare, results = compared
    found, expected, _fps, _noisy = compare.summary(results)
    assert expected >= 15
    assert found >= 0.9 * expected


def test_zero_alert_tests_stay_silent(compared: tuple[ModuleType, list[Any]]) -> None:
    """No apiwatch alert at all in the hub tests where the maintainers expect none."""
    _compare_module, results = compared
    silent = [r for r in results if r.zero_alert]
    assert len(silent) >= 5
    assert [(r.test, sorted(r.alerted), r.other_alerts) for r in silent
            if r.alerted or r.other_alerts] == []


def test_no_false_positive_ips(compared: tuple[ModuleType, list[Any]]) -> None:
    """apiwatch alerts on no IP that the maintainers expect no scenario to flag."""
    _compare_module, results = compared
    assert [(r.test, sorted(r.false_positives)) for r in results if r.false_positives] == []
