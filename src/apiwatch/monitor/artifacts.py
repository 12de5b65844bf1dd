"""Monitoring artifacts for the stack users already run, written by `apiwatch export-config`.

- `apiwatch-alerts.rules.yml`: Prometheus alerting rules over the collector's `/metrics`
  (`apiwatch.server.metrics`) and the application's RED metrics (`apiwatch.capture.metrics`).
- `apiwatch-dashboard.json`: a Grafana dashboard of the same metrics (Prometheus datasource).
- `vector.toml` / `fluent-bit.conf`: forwarding log files into apiwatch's syslog receiver
  (`[syslog] tcp`). Not to `POST /v1/events`: that needs an HMAC over each batch, which
  neither tool can compute.

Checked in tests/monitor: the rules and every dashboard query by `promtool`, the dashboard
against a JSON schema of Grafana's documented dashboard JSON model; the Vector and Fluent Bit
configs only for their structure and option names (Vector's `socket` sink, Fluent Bit's
`syslog` output, as their reference documentation names them): neither tool, nor a schema of
its config, is packaged for Debian, PyPI or npm.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

#: Prometheus counters are exposed with `_total` (prometheus-client adds it).
_RULES: list[dict[str, Any]] = [
    {"alert": "ApiwatchCollectorDown", "expr": 'up{job="apiwatch"} == 0', "for": "2m",
     "severity": "critical", "summary": "The apiwatch collector is not answering scrapes."},
    {"alert": "ApiwatchSourceSilent",
     "expr": "sum by (source) (increase(apiwatch_events_accepted_total[30m])) == 0"
             " and sum by (source) (increase(apiwatch_events_accepted_total[1d])) > 0",
     "for": "5m", "severity": "high", "summary": "Source {{ $labels.source }} sent nothing."},
    {"alert": "ApiwatchCheckpointStale", "expr": "apiwatch_checkpoint_age_seconds > 600",
     "for": "5m", "severity": "high",
     "summary": "No signed ledger checkpoint for over 10 minutes."},
    {"alert": "ApiwatchIngestRefusedRising",
     "expr": "sum by (reason) (rate(apiwatch_ingest_refused_total[5m])) > 0.1",
     "for": "10m", "severity": "medium",
     "summary": "Ingest refusals ({{ $labels.reason }}) above 0.1/s."},
    {"alert": "ApiwatchSyslogMessagesLost",
     "expr": "sum by (source) (increase(apiwatch_syslog_lost_messages_total[5m])) > 0",
     "for": "0m", "severity": "high",
     "summary": "Syslog messages from {{ $labels.source }} were received but not stored."},
    {"alert": "ApiwatchApiErrorRate",
     "expr": 'sum by (route) (rate(apiwatch_http_requests_total{status_class="5xx"}[5m]))'
             " / sum by (route) (rate(apiwatch_http_requests_total[5m])) > 0.05",
     "for": "10m", "severity": "high",
     "summary": "Over 5% server errors on {{ $labels.route }}."},
]

#: Dashboard panels: (title, PromQL expression, unit).
PANELS: list[tuple[str, str, str]] = [
    ("Events accepted /s", "sum by (source) (rate(apiwatch_events_accepted_total[5m]))", "ops"),
    ("Ingest refused /s", "sum by (reason) (rate(apiwatch_ingest_refused_total[5m]))", "ops"),
    ("Syslog messages stored /s",
     "sum by (source) (rate(apiwatch_syslog_messages_total[5m]))", "ops"),
    ("Ledger size", "apiwatch_ledger_size", "short"),
    ("Checkpoint age", "apiwatch_checkpoint_age_seconds", "s"),
    ("Store lag", "apiwatch_store_lag", "short"),
    ("Alert delivery failures /s",
     "sum by (channel) (rate(apiwatch_alert_delivery_failures_total[5m]))", "ops"),
    ("API requests /s by status class",
     "sum by (status_class) (rate(apiwatch_http_requests_total[5m]))", "reqps"),
    ("API p95 latency by route",
     "histogram_quantile(0.95, sum by (route, le)"
     " (rate(apiwatch_http_request_duration_seconds_bucket[5m])))", "s"),
    ("Security events /s by action",
     "sum by (action) (rate(apiwatch_security_events_total[5m]))", "ops"),
]


def prometheus_rules() -> str:
    """The alerting rules file (Prometheus rule-file YAML)."""
    rules = [
        {"alert": r["alert"], "expr": r["expr"], "for": r["for"],
         "labels": {"severity": r["severity"]}, "annotations": {"summary": r["summary"]}}
        for r in _RULES
    ]
    return yaml.safe_dump({"groups": [{"name": "apiwatch", "rules": rules}]}, sort_keys=False)


def grafana_dashboard() -> str:
    """A Grafana dashboard JSON (schemaVersion 39) with one time series panel per metric.

    It matches Grafana's documented dashboard JSON model (tests/monitor/grafana_schema.py).
    """
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    panels = [
        {"id": i + 1, "type": "timeseries", "title": title, "datasource": datasource,
         "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "targets": [{"refId": "A", "expr": expr, "datasource": datasource}]}
        for i, (title, expr, unit) in enumerate(PANELS)
    ]
    dashboard = {
        "title": "apiwatch", "uid": "apiwatch", "schemaVersion": 39, "version": 1,
        "time": {"from": "now-6h", "to": "now"}, "panels": panels,
        "annotations": {"list": []},  # a section of Grafana's documented JSON model
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
    }
    return json.dumps(dashboard, indent=2) + "\n"


def vector_config(syslog: str) -> str:
    """Vector: tail log files, frame each line as RFC 5424, send over TCP to `syslog`."""
    return f"""# Vector -> apiwatch syslog receiver ([syslog] tcp = "{syslog}").
[sources.app_logs]
type = "file"
include = ["/var/log/myapi/*.log"]

[transforms.rfc5424]
type = "remap"
inputs = ["app_logs"]
source = '''
.message = "<134>1 " + format_timestamp!(now(), "%Y-%m-%dT%H:%M:%S%.6fZ") + " " +
  get_hostname!() + " vector - - - " + string!(.message)
'''

[sinks.apiwatch]
type = "socket"
inputs = ["rfc5424"]
mode = "tcp"
address = "{syslog}"
encoding.codec = "text"
framing.method = "newline_delimited"
"""


def fluent_bit_config(syslog: str) -> str:
    """Fluent Bit: tail log files and send them with the syslog output (RFC 5424, TCP)."""
    host, _, port = syslog.rpartition(":")
    return f"""# Fluent Bit -> apiwatch syslog receiver ([syslog] tcp = "{syslog}").
[INPUT]
    Name              tail
    Path              /var/log/myapi/*.log

[OUTPUT]
    Name                 syslog
    Match                *
    Host                 {host}
    Port                 {port}
    Mode                 tcp
    Syslog_Format        rfc5424
    Syslog_Message_Key   log
    Syslog_Appname_Key   app
"""


def artifacts(syslog: str) -> dict[str, str]:
    """Every artifact by file name; `syslog` is the receiver's HOST:PORT."""
    return {
        "apiwatch-alerts.rules.yml": prometheus_rules(),
        "apiwatch-dashboard.json": grafana_dashboard(),
        "vector.toml": vector_config(syslog),
        "fluent-bit.conf": fluent_bit_config(syslog),
    }
