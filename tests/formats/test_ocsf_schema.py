"""OCSF output validates against the OCSF 1.8.0 schema files for every vocabulary action."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fmt_samples import full_fields

from apiwatch.events import VOCABULARY, make_event
from apiwatch.formats import encode_ocsf

_BASE: dict[str, type | tuple[type, ...]] = {
    "string_t": str, "integer_t": int, "long_t": int, "boolean_t": bool, "float_t": (int, float),
}


class Schema:
    """The compiled OCSF schema, the API-security digest and the raw object files."""

    def __init__(self, root: Path) -> None:
        self.compiled = json.loads((root / "ocsf_1.8.0_compiled.json").read_text())
        digest = json.loads((root / "ocsf_1.8.0_api_security_classes.json").read_text())
        self.core_required = {c["uid"]: set(c["core_required"]) for c in digest["classes"].values()}
        self.raw = root / "ocsf-schema-1.8.0"
        self.classes = {c["uid"]: c for c in self.compiled["classes"].values()}
        self.types = self.compiled["types"]
        self.objects = self.compiled["objects"]

    @cache  # noqa: B019 - one Schema per test module
    def object_constraints(self, name: str) -> dict[str, list[str]] | None:
        """Constraints from the raw files (ocsf-lib mislabels some when compiling)."""
        path = self.raw / "objects" / f"{name}.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        if "constraints" in raw:
            constraints: dict[str, list[str]] = raw["constraints"]
            return constraints
        parent = raw.get("extends")
        return self.object_constraints(parent) if isinstance(parent, str) else None

    def check_scalar(self, type_name: str, value: Any, where: str) -> None:
        base = type_name
        while base not in _BASE:
            base = self.types[base]["type"]
        assert isinstance(value, _BASE[base]), f"{where}={value!r} is not {type_name}"
        assert base == "boolean_t" or not isinstance(value, bool), f"{where} is a boolean"
        spec: dict[str, Any] = self.types.get(type_name, {})
        if spec.get("regex"):
            assert re.search(str(spec["regex"]), str(value)), f"{where}={value!r} fails {type_name}"
        if spec.get("range"):
            low, high = spec["range"]
            assert low <= value <= high, f"{where}={value!r} out of {spec['range']}"

    def check(self, obj: dict[str, Any], attrs: dict[str, Any], where: str,
              required: set[str], constraints: dict[str, list[str]] | None) -> None:
        for name in required:
            assert name in obj, f"{where}: required {name} missing"
        if constraints and "at_least_one" in constraints:
            assert any(k in obj for k in constraints["at_least_one"]), f"{where}: {constraints}"
        for name, value in obj.items():
            assert name in attrs, f"{where}.{name} is not an attribute"
            spec = attrs[name]
            kind = spec["type"]
            items = value if spec["is_array"] else [value]
            if spec["is_array"]:
                assert isinstance(value, list), f"{where}.{name} must be an array"
            for item in items:
                if kind in ("object", "json_t"):
                    continue
                if kind in self.objects:
                    assert isinstance(item, dict), f"{where}.{name} must be an object"
                    self.check_object(kind, item, f"{where}.{name}")
                else:
                    self.check_scalar(kind, item, f"{where}.{name}")
                    if spec.get("enum") and kind == "integer_t":
                        assert str(item) in spec["enum"], f"{where}.{name}={item} not in enum"

    def check_object(self, name: str, obj: dict[str, Any], where: str) -> None:
        attrs = self.objects[name]["attributes"]
        required = {a for a, s in attrs.items()
                    if s["requirement"] == "required" and not s["profile"]}
        constraints = self.object_constraints(name) or self.objects[name].get("constraints")
        self.check(obj, attrs, where, required, constraints)


@pytest.fixture(scope="module")
def schema(shared_data: Path) -> Schema:
    return Schema(shared_data / "schemas" / "ocsf")


def _validate(schema: Schema, event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(encode_ocsf(event))
    cls = schema.classes[out["class_uid"]]
    attrs = cls["attributes"]
    required = {a for a, s in attrs.items() if s["requirement"] == "required" and not s["profile"]}
    required |= schema.core_required.get(out["class_uid"], set())
    schema.check(out, attrs, cls["name"], required, cls.get("constraints"))
    assert out["type_uid"] == out["class_uid"] * 100 + out["activity_id"]
    assert list(attrs["category_uid"]["enum"]) == [str(out["category_uid"])]
    assert list(attrs["class_uid"]["enum"]) == [str(out["class_uid"])]
    assert out["metadata"]["version"] == schema.compiled["version"]
    return out


@pytest.mark.parametrize("action", sorted(VOCABULARY))
def test_every_action_gives_a_valid_ocsf_event(action: str, schema: Schema) -> None:
    """Full events: attributes exist with their types, enums valid, required ones present."""
    _validate(schema, make_event(action, full_fields()))


@pytest.mark.parametrize("action", sorted(VOCABULARY))
def test_bare_events_still_have_every_required_attribute(action: str, schema: Schema) -> None:
    """An event with only the vocabulary's fields still fills what its class requires."""
    _validate(schema, make_event(action))


def test_activity_follows_the_http_method_where_the_class_says_so(schema: Schema) -> None:
    """HTTP Activity takes its activity from the verb (POST is 6)."""
    out = _validate(schema, make_event("http_request", {"http.request.method": "POST"}))
    assert (out["class_uid"], out["activity_id"]) == (4002, 6)


def test_unmapped_fields_keep_their_ecs_names(schema: Schema) -> None:
    """apiwatch and label fields go to `unmapped` under their dotted names."""
    out = _validate(schema, make_event("authn_login_fail", {"apiwatch.route": "/v1/x",
                                                            "labels.team": "a"}))
    assert out["unmapped"]["apiwatch.route"] == "/v1/x"
    assert out["unmapped"]["labels.team"] == "a"
