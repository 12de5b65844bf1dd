"""Detection: a streaming engine over event time, apiwatch's YAML rules and the catalogue.

Framework-free: imports `apiwatch.events`, the standard library and PyYAML only.
"""

from apiwatch.detect.alert import SEVERITIES, Alert
from apiwatch.detect.engine import Engine, EngineStats, RuleStats
from apiwatch.detect.filters import FilterError, compile_filter
from apiwatch.detect.hll import HyperLogLog
from apiwatch.detect.rules import (
    Rule,
    RuleError,
    RuleTest,
    load_catalogue,
    load_rules,
    parse_rules_text,
)

__all__ = [
    "SEVERITIES",
    "Alert",
    "Engine",
    "EngineStats",
    "FilterError",
    "HyperLogLog",
    "Rule",
    "RuleError",
    "RuleStats",
    "RuleTest",
    "compile_filter",
    "load_catalogue",
    "load_rules",
    "parse_rules_text",
]
