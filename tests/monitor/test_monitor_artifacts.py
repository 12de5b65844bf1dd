"""`apiwatch export-config` writes artifacts Prometheus, Grafana, Vector and Fluent Bit read."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from click.testing import CliRunner
from grafana_schema import DASHBOARD_SCHEMA
from prometheus_client import generate_latest

from apiwatch.capture.metrics import CaptureMetrics
from apiwatch.cli import main
from apiwatch.collector.syslog_server import ReceiverStats
from apiwatch.monitor.artifacts import PANELS, artifacts
from apiwatch.server.metrics import Metrics

SYSLOG = "127.0.0.1:6514"


def _promtool(rules_file: Path) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (see scripts/test)"
    done = subprocess.run([promtool, "check", "rules", str(rules_file)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _exposed_names() -> set[str]:
    """Every sample name the collector's and the application's registries expose."""
    metrics, red = Metrics(), CaptureMetrics()
    red.observe("/x", "GET", 200, 0.1)
    red.event("authz_fail")
    for counter in (metrics.received, metrics.accepted, metrics.refused,
                    metrics.alert_delivery_failures):
        counter.labels(*["x"] * len(counter._labelnames)).inc()
    metrics.watch_syslog("x", ReceiverStats())
    text = (generate_latest(metrics.registry) + generate_latest(red.registry)).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_cli_writes_every_artifact(tmp_path: Path) -> None:
    """export-config writes the four files and lists them."""
    result = CliRunner().invoke(main, ["export-config", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(artifacts(SYSLOG))


def test_bad_syslog_address_is_a_usage_error(tmp_path: Path) -> None:
    """A --syslog without a port exits 2."""
    result = CliRunner().invoke(main, ["export-config", "--out", str(tmp_path), "--syslog", "x"])
    assert result.exit_code == 2


def test_prometheus_rules_pass_promtool(tmp_path: Path) -> None:
    """promtool accepts the alerting rules: the five required conditions and lost syslog
    messages."""
    path = tmp_path / "rules.yml"
    path.write_text(artifacts(SYSLOG)["apiwatch-alerts.rules.yml"])
    assert "SUCCESS: 6 rules found" in _promtool(path)


def test_rules_and_dashboard_use_only_exposed_metrics() -> None:
    """Every apiwatch metric named by a rule or a panel is one the code exposes."""
    files = artifacts(SYSLOG)
    names = set(re.findall(r"apiwatch_[a-z_]+", files["apiwatch-alerts.rules.yml"]))
    names |= set(re.findall(r"apiwatch_[a-z_]+", files["apiwatch-dashboard.json"]))
    assert names - _exposed_names() == set()


def test_dashboard_queries_pass_promtool(tmp_path: Path) -> None:
    """Each dashboard query parses as PromQL (checked by promtool as a recording rule)."""
    rules = [{"record": f"apiwatch:panel{i}", "expr": expr} for i, (_, expr, _) in
             enumerate(PANELS)]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    assert f"SUCCESS: {len(PANELS)} rules found" in _promtool(path)


def test_dashboard_is_structurally_valid() -> None:
    """The dashboard has unique panel ids, each with a Prometheus datasource and a target,
    and every panel ends within the grid's 24 columns."""
    dashboard = json.loads(artifacts(SYSLOG)["apiwatch-dashboard.json"])
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) == len(PANELS)
    for panel in dashboard["panels"]:
        assert panel["type"] == "timeseries"
        assert panel["datasource"]["type"] == "prometheus"
        assert panel["targets"]
        assert all(t["expr"] and t["refId"] for t in panel["targets"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24  # beyond a schema's reach
    assert dashboard["templating"]["list"][0]["type"] == "datasource"


def _grafana_errors(dashboard: dict[str, Any]) -> list[str]:
    """Every error of the documented dashboard model (grafana_schema.py), each with its path."""
    validator = jsonschema.Draft7Validator(DASHBOARD_SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(dashboard)]


def test_dashboard_matches_grafanas_documented_json_model() -> None:
    """The dashboard has every section of Grafana's documented JSON model it needs, with the
    documented types, panel types and grid positions, and no misspelt keys."""
    jsonschema.Draft7Validator.check_schema(DASHBOARD_SCHEMA)
    assert _grafana_errors(json.loads(artifacts(SYSLOG)["apiwatch-dashboard.json"])) == []


def test_grafana_model_rejects_a_broken_dashboard() -> None:
    """The schema is strict enough to matter: misspelt keys, a panel wider than the grid, an
    unknown panel type and a missing required section are each reported."""
    dashboard = json.loads(artifacts(SYSLOG)["apiwatch-dashboard.json"])
    dashboard["panels"][0]["gridPos"]["w"] = 30
    dashboard["panels"][1]["fieldconfig"] = dashboard["panels"][1].pop("fieldConfig")
    dashboard["panels"][2]["type"] = "time-series"
    dashboard["Tags"] = ["apiwatch"]
    del dashboard["annotations"]
    errors = "\n".join(_grafana_errors(dashboard))
    assert "['panels', 0, 'gridPos', 'w']: 30 is greater than the maximum of 24" in errors
    assert "['panels', 1, 'fieldconfig']:" in errors
    assert "['panels', 2, 'type']: 'time-series' is not one of" in errors
    assert "['Tags']:" in errors
    assert "'annotations' is a required property" in errors
    assert len(errors.splitlines()) == 5


def test_vector_config_sends_syslog_over_tcp() -> None:
    """The Vector config is TOML whose socket sink sends newline-framed lines to the receiver."""
    config = tomllib.loads(artifacts(SYSLOG)["vector.toml"])
    sink = config["sinks"]["apiwatch"]
    assert (sink["type"], sink["mode"], sink["address"]) == ("socket", "tcp", SYSLOG)
    assert sink["inputs"] == ["rfc5424"]
    assert config["transforms"]["rfc5424"]["inputs"] == ["app_logs"]
    assert sink["framing"]["method"] == "newline_delimited"


def test_fluent_bit_config_uses_the_syslog_output() -> None:
    """The Fluent Bit config has an INPUT and a syslog OUTPUT in RFC 5424 over TCP."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in artifacts(SYSLOG)["fluent-bit.conf"].splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1], {}))
        elif line and not line.startswith("#"):
            key, value = line.split(None, 1)
            sections[-1][1][key] = value
    assert [name for name, _ in sections] == ["INPUT", "OUTPUT"]
    output = sections[1][1]
    assert output["Name"] == "syslog"
    assert output["Mode"] == "tcp"
    assert (output["Host"], output["Port"]) == ("127.0.0.1", "6514")
    assert output["Syslog_Format"] == "rfc5424"
