"""OCSF JSON-lines files rotated by size, and the `[[forward]]` config list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from forward_support import collector, record, wait_for

from apiwatch.config import load_config
from apiwatch.errors import ConfigError
from apiwatch.formats.ocsf import encode_ocsf
from apiwatch.forward import parse_destinations
from apiwatch.forward.senders import CURRENT_FILE


def test_ocsf_files_rotate_by_size_and_hold_every_event_in_order(tmp_path: Path) -> None:
    """Every event lands once, in ledger order, as an OCSF line; files beyond the size limit
    are closed under a timestamped name and a new current file is started."""
    out = tmp_path / "ocsf"
    with collector(tmp_path / "data", {"name": "lake", "type": "ocsf_file",
                                       "directory": str(out), "max_file_bytes": 1500,
                                       "batch_size": 2}) as c:
        record(c, 9)
        ledger = c.pipeline.ledger
        wait_for(lambda: c.forwarder.positions["lake"] == ledger.size, "the files")
        expected = [encode_ocsf(json.loads(r)) for r in ledger.read_range(0, ledger.size)]
    rotated = sorted(p for p in out.iterdir() if p.name != CURRENT_FILE)
    assert len(rotated) >= 2
    assert all(p.name.endswith(".ocsf.jsonl") and p.stat().st_size >= 1500 for p in rotated)
    files = [*rotated, out / CURRENT_FILE] if (out / CURRENT_FILE).exists() else rotated
    lines = [line for p in files for line in p.read_bytes().splitlines(keepends=True)]
    assert lines == expected


def test_forward_tables_load_and_validate(tmp_path: Path) -> None:
    """`[[forward]]` tables are read from the config file and validated into destinations."""
    path = tmp_path / "apiwatch.toml"
    path.write_text('[[forward]]\nname = "siem"\ntype = "cef"\nhost = "10.0.0.5"\nport = 514\n'
                    'tls = true\n\n[[forward]]\nname = "es"\ntype = "elasticsearch"\n'
                    'url = "https://es:9200"\nbatch_size = 1000\n')
    siem, es = parse_destinations(load_config(path, env={}).forward)
    assert (siem.type, siem.host, siem.port, siem.tls) == ("cef", "10.0.0.5", 514, True)
    assert (es.url, es.batch_size, es.index) == ("https://es:9200", 1000, "apiwatch-events")


@pytest.mark.parametrize(("tables", "message"), [
    ([{"name": "a", "type": "kafka"}], "type"),
    ([{"name": "a", "type": "cef", "host": "h"}], "needs port"),
    ([{"name": "a", "type": "splunk_hec", "url": "http://h", "token": "t", "colour": 1}],
     "unknown key"),
    ([{"name": "a", "type": "cef", "host": "h", "port": "514"}], "expected int"),
    ([{"name": "a", "type": "ocsf_file", "directory": "d", "batch_size": 0}], "positive"),
    ([{"name": "a", "type": "ocsf_file", "directory": "d"}] * 2, "unique"),
])
def test_bad_forward_tables_are_config_errors(tables: list[dict[str, object]],
                                              message: str) -> None:
    """A bad `[[forward]]` table is a ConfigError naming what is wrong."""
    with pytest.raises(ConfigError, match=message):
        parse_destinations(tables)


def test_forward_keys_are_overridden_by_position_from_the_environment(tmp_path: Path) -> None:
    """`APIWATCH_FORWARD_<N>_<KEY>` sets a key of the N-th `[[forward]]` table (a secret kept
    out of the file, say), typed like the key; N one past the last table adds a destination."""
    path = tmp_path / "apiwatch.toml"
    path.write_text('[[forward]]\nname = "splunk"\ntype = "splunk_hec"\n'
                    'url = "https://splunk:8088"\ntoken = "placeholder"\n')
    env = {"APIWATCH_FORWARD_0_TOKEN": "real-secret", "APIWATCH_FORWARD_0_BATCH_SIZE": "50",
           "APIWATCH_FORWARD_1_NAME": "siem", "APIWATCH_FORWARD_1_TYPE": "cef",
           "APIWATCH_FORWARD_1_HOST": "siem.example", "APIWATCH_FORWARD_1_PORT": "6514",
           "APIWATCH_FORWARD_1_TLS": "true"}
    splunk, siem = parse_destinations(load_config(path, env=env).forward)
    assert (splunk.url, splunk.token, splunk.batch_size) == (
        "https://splunk:8088", "real-secret", 50)
    assert (siem.name, siem.type, siem.host, siem.port, siem.tls) == (
        "siem", "cef", "siem.example", 6514, True)


@pytest.mark.parametrize(("env", "message"), [
    ({"APIWATCH_FORWARD_1_NAME": "x"}, "next index is 0"),
    ({"APIWATCH_FORWARD_0_COLOUR": "red"}, "APIWATCH_FORWARD_<INDEX>_<KEY>"),
    ({"APIWATCH_FORWARD_FIRST_URL": "http://h"}, "APIWATCH_FORWARD_<INDEX>_<KEY>"),
    ({"APIWATCH_FORWARD_0_PORT": "six"}, "APIWATCH_FORWARD_0_PORT: 'six' is not a valid int"),
])
def test_bad_forward_variables_are_config_errors(env: dict[str, str], message: str) -> None:
    """A variable naming no table, no key, or holding a value of the wrong type is a
    ConfigError that names the variable."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, env=env)
