"""The config's ledger policies apply to an existing ledger; its origin cannot change."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiwatch.collector.runtime import Collector
from apiwatch.config import load_config
from apiwatch.errors import ConfigError
from apiwatch.ledger.layout import LedgerSettings


def _open(folder: Path, **env: str) -> Collector:
    variables = {"APIWATCH_DATA_DIR": str(folder), "APIWATCH_STORE_INDEX_PROCESS": "false"}
    return Collector.open(load_config(None, env={**variables, **env}))


def test_changed_policies_apply_on_the_next_start(tmp_path: Path) -> None:
    """Durability and checkpoint policy changed in the config take effect on an existing
    ledger and are saved with it (so `apiwatch verify` and the next start agree)."""
    _open(tmp_path, APIWATCH_LEDGER_ORIGIN="apiwatch/test").close()
    collector = _open(tmp_path, APIWATCH_LEDGER_DURABILITY="none",
                      APIWATCH_LEDGER_CHECKPOINT_EVERY_RECORDS="500")
    try:
        assert collector.ledger.settings.durable is False
        assert collector.ledger.settings.checkpoint_records == 500
        assert collector.ledger.settings.origin == "apiwatch/test"
    finally:
        collector.close()
    saved = LedgerSettings.load(tmp_path / "ledger")
    assert (saved.durable, saved.checkpoint_records) == (False, 500)


def test_a_different_origin_is_refused(tmp_path: Path) -> None:
    """The origin names every signed checkpoint: a config that renames it is an error that
    says what the ledger is called."""
    _open(tmp_path, APIWATCH_LEDGER_ORIGIN="apiwatch/first").close()
    with pytest.raises(ConfigError, match="apiwatch/first"):
        _open(tmp_path, APIWATCH_LEDGER_ORIGIN="apiwatch/second")
    _open(tmp_path).close()  # no origin in the config: the ledger's own is kept
