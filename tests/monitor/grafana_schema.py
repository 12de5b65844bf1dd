"""Grafana's classic dashboard JSON model as a draft-07 JSON schema, written here from
Grafana's documentation (no schema file of Grafana's is copied or vendored).

Sources:
- Dashboard JSON model: the top-level fields, panels, `gridPos` (`w` 1-24 of 24 columns),
  `timepicker`, `templating`.
  https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/
- Visualizations (the built-in panel types):
  https://grafana.com/docs/grafana/latest/panels-visualizations/visualizations/
- Variable types: https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/
  and their JSON ids: https://grafana.com/docs/grafana/v9.0/packages_api/data/variabletype/
- Panel queries (`targets`): https://grafana.com/docs/grafana/v8.5/packages_api/data/dataquery/
- `fieldConfig`: https://grafana.com/docs/grafana/v8.5/packages_api/data/fieldconfigsource/
- Annotation queries: https://grafana.com/docs/grafana/v8.5/packages_api/data/annotationquery/
  and the data source reference (`type`, `uid`):
  https://grafana.com/docs/grafana/v12.1/observability-as-code/schema-v2/annotations-schema/

The JSON model page lists the fields a new dashboard starts with, not every field Grafana
accepts (exports also carry e.g. `fiscalYearStartMonth`, `liveNow`), and panels have
type-specific fields, so unknown keys stay allowed; a misspelt key is caught when it differs
from a documented key only in letter case (`fieldconfig`, `Tags`), the usual camelCase slip.
"""

from __future__ import annotations

import re
from typing import Any

#: The JSON `type` ids of the built-in visualizations the visualizations page lists, plus `row`
#: (a collapsible row of panels). A panel plugin's id would have to be added here.
PANEL_TYPES = [
    "timeseries", "state-timeline", "status-history", "barchart", "histogram", "heatmap",
    "piechart", "candlestick", "gauge", "trend", "xychart", "stat", "bargauge", "table", "logs",
    "nodeGraph", "traces", "flamegraph", "canvas", "geomap", "dashlist", "alertlist", "annolist",
    "text", "news", "row",
]
VARIABLE_TYPES = ["query", "custom", "textbox", "constant", "datasource", "interval", "adhoc",
                  "system"]


def _no_case_variants(keys: list[str]) -> dict[str, Any]:
    """`patternProperties` rejecting every spelling of `keys` that differs only in case."""
    def ignoring_case(key: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in key)
    return {f"^(?!{re.escape(key)}$){ignoring_case(key)}$":
            {"not": {"$comment": f"a misspelling of {key}"}} for key in keys}


def _object(properties: dict[str, Any], required: list[str] | None = None,
            closed: bool = False) -> dict[str, Any]:
    """An object schema; `closed` when the documentation lists all of its keys."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": required or []}
    if closed:
        schema["additionalProperties"] = False
    else:
        schema["patternProperties"] = _no_case_variants(list(properties))
    return schema


_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_DATASOURCE = {"anyOf": [{"type": "null"}, _object({"type": _STRING, "uid": _STRING})]}

_GRID_POS = _object({
    "h": {"type": "integer", "minimum": 1},
    "w": {"type": "integer", "minimum": 1, "maximum": 24},
    "x": {"type": "integer", "minimum": 0, "maximum": 23},
    "y": {"type": "integer", "minimum": 0},
}, required=["h", "w", "x", "y"], closed=True)

_TARGET = _object({"refId": _STRING, "hide": _BOOL, "queryType": _STRING,
                   "datasource": _DATASOURCE}, required=["refId"])

_PANEL = _object({
    "id": {"type": "integer"},
    "type": {"enum": PANEL_TYPES},
    "title": _STRING,
    "description": _STRING,
    "gridPos": _GRID_POS,
    "datasource": _DATASOURCE,
    "targets": {"type": "array", "items": _TARGET},
    "fieldConfig": _object({"defaults": {"type": "object"}, "overrides": {"type": "array"}},
                           required=["defaults", "overrides"]),
    "options": {"type": "object"},
    "transparent": _BOOL,
}, required=["id", "type", "gridPos"])

_VARIABLE = _object({
    "name": _STRING, "type": {"enum": VARIABLE_TYPES}, "label": _STRING,
    "query": {"type": ["string", "object"]}, "datasource": _DATASOURCE,
    "current": {"type": "object"}, "options": {"type": "array"}, "includeAll": _BOOL,
    "multi": _BOOL, "regex": _STRING,
}, required=["name", "type"])

_ANNOTATION = _object({
    "name": _STRING, "enable": _BOOL, "iconColor": _STRING, "hide": _BOOL,
    "builtIn": {"type": ["integer", "boolean"]}, "datasource": _DATASOURCE, "type": _STRING,
}, required=["name", "enable", "iconColor"])

#: The whole dashboard. Required: the sections that hold its content and time range, and
#: `schemaVersion`, by which Grafana decides how to migrate an imported dashboard; `id` and
#: `version` are assigned by Grafana on save, the rest have defaults in its settings page.
DASHBOARD_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Grafana dashboard (classic JSON model)",
    **_object({
        "id": {"type": ["integer", "null"]},
        "uid": {"type": "string", "minLength": 8, "maxLength": 40},
        "title": {"type": "string", "minLength": 1},
        "tags": {"type": "array", "items": _STRING},
        "style": {"enum": ["dark", "light"]},
        "timezone": _STRING,
        "editable": _BOOL,
        "graphTooltip": {"enum": [0, 1, 2]},
        "time": _object({"from": _STRING, "to": _STRING}, required=["from", "to"]),
        "timepicker": _object({"collapse": _BOOL, "enable": _BOOL, "notice": _BOOL,
                               "now": _BOOL, "status": _STRING, "type": _STRING,
                               "refresh_intervals": {"type": "array", "items": _STRING}}),
        "templating": _object({"enable": _BOOL,
                               "list": {"type": "array", "items": _VARIABLE}},
                              required=["list"]),
        "annotations": _object({"list": {"type": "array", "items": _ANNOTATION}},
                               required=["list"]),
        "refresh": {"type": ["string", "boolean"]},
        "schemaVersion": {"type": "integer", "minimum": 0},
        "version": {"type": "integer", "minimum": 0},
        "panels": {"type": "array", "items": _PANEL},
        "links": {"type": "array", "items": {"type": "object"}},
    }, required=["title", "schemaVersion", "time", "panels", "templating", "annotations"]),
}
