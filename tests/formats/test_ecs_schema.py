"""ECS output validates against the real ECS 9.4.0 definitions for every vocabulary action."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fmt_samples import full_fields

from apiwatch.events import VOCABULARY, make_event
from apiwatch.formats import encode_ecs

_STRING_TYPES = {"keyword", "constant_keyword", "wildcard", "text", "match_only_text"}
_INT_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}


@pytest.fixture(scope="module")
def ecs_flat(shared_data: Path) -> dict[str, Any]:
    with (shared_data / "schemas" / "ecs" / "ecs_flat.yml").open("rb") as f:
        loaded: dict[str, Any] = yaml.load(f, Loader=yaml.CSafeLoader)
    return loaded


@pytest.fixture(scope="module")
def allowed(shared_data: Path) -> dict[str, dict[str, set[str]]]:
    data = json.loads((shared_data / "schemas" / "ecs" / "event_allowed_values.json").read_text())
    return {
        field: {v["name"]: set(v.get("expected_event_types", ())) for v in values}
        for field, values in data.items()
    }


def _matches(ecs_type: str, value: Any) -> bool:
    if ecs_type in _STRING_TYPES:
        return isinstance(value, str)
    if ecs_type in _INT_TYPES:
        return isinstance(value, int) and not isinstance(value, bool)
    if ecs_type in {"float", "scaled_float", "double"}:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ecs_type == "boolean":
        return isinstance(value, bool)
    if ecs_type == "date":
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    if ecs_type == "ip":
        return isinstance(value, str) and bool(ipaddress.ip_address(value))
    return False


@pytest.mark.parametrize("action", sorted(VOCABULARY))
def test_every_field_exists_in_ecs_with_its_type(
    action: str, ecs_flat: dict[str, Any], allowed: dict[str, dict[str, set[str]]]
) -> None:
    """Every non-custom field is an ECS field of the right type; event.* values are allowed."""
    line = json.loads(encode_ecs(make_event(action, full_fields())))
    assert list(line)[:3] == ["@timestamp", "log.level", "message"]
    for name, value in line.items():
        if name.startswith(("apiwatch.", "labels.")):
            continue
        assert name in ecs_flat, f"{name} is not an ECS field"
        spec = ecs_flat[name]
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list):
            assert "array" in spec.get("normalize", ()), f"{name} is not an array in ECS"
        for item in values:
            assert _matches(spec["type"], item), f"{name}={item!r} is not {spec['type']}"
    assert line["event.kind"] in allowed["event.kind"]
    assert line["event.outcome"] in allowed["event.outcome"]
    for category in line["event.category"]:
        assert category in allowed["event.category"]
    for type_ in line["event.type"]:
        assert type_ in allowed["event.type"]
        expected = set().union(*(allowed["event.category"][c] for c in line["event.category"]))
        assert not line["event.category"] or type_ in expected


def test_fields_are_put_in_spec_order() -> None:
    """An event built in another order still starts with @timestamp, log.level, message."""
    event = dict(reversed(list(make_event("authn_login_fail").items())))
    assert list(json.loads(encode_ecs(event)))[:3] == ["@timestamp", "log.level", "message"]
