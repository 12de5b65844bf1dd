"""The OWASP Logging Vocabulary table against the sheet and the ECS and OCSF schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apiwatch.errors import UnknownActionError
from apiwatch.events import make_event
from apiwatch.events.vocabulary import (
    ECS_EXPECTED_TYPES,
    VOCABULARY,
    Action,
    VocabularyError,
    http_outcome,
    lookup,
    register,
)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sheet(shared_data: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = _load(
        shared_data / "schemas" / "owasp_logging_vocabulary.json"
    )["events"]
    return events


@pytest.fixture(scope="module")
def ecs(shared_data: Path) -> dict[str, Any]:
    allowed: dict[str, Any] = _load(shared_data / "schemas" / "ecs" / "event_allowed_values.json")
    return allowed


@pytest.fixture(scope="module")
def ocsf_classes(shared_data: Path) -> dict[int, set[int]]:
    """OCSF 1.8.0 class uid -> the activity ids it defines."""
    compiled = _load(shared_data / "schemas" / "ocsf" / "ocsf_1.8.0_compiled.json")
    classes = {
        c["uid"]: {int(k) for k in c["attributes"]["activity_id"]["enum"]}
        for c in compiled["classes"].values()
    }
    classes[0] = {0}  # Base Event: no activities of its own
    return classes


def _names(ecs: dict[str, Any], field: str) -> set[str]:
    return {v["name"] for v in ecs[field]}


class TestSheet:
    def test_every_sheet_event_is_defined(self, sheet: list[dict[str, Any]]) -> None:
        """All 57 events of the sheet are in the vocabulary, marked as OWASP's."""
        assert len(sheet) == 57
        missing = [e["name"] for e in sheet if e["name"] not in VOCABULARY]
        assert missing == []
        assert all(VOCABULARY[e["name"]].origin == "owasp" for e in sheet)

    def test_levels_match_the_sheet(self, sheet: list[dict[str, Any]]) -> None:
        """Each action's level (and failure level) are the levels the sheet gives the event."""
        for entry in sheet:
            action = lookup(entry["name"])
            levels = {action.level, action.failure_level or action.level}
            assert levels == set(entry["levels"]), entry["name"]

    def test_param_counts_match_the_sheet(self, sheet: list[dict[str, Any]]) -> None:
        """Each action lists as many parameters as the sheet's heading, in the same order."""
        for entry in sheet:
            assert len(lookup(entry["name"]).params) == len(entry["params"]), entry["name"]

    def test_only_sheet_names_are_marked_owasp(self, sheet: list[dict[str, Any]]) -> None:
        """apiwatch's own actions are kept apart from the sheet's names."""
        sheet_names = {e["name"] for e in sheet}
        owasp = {a.name for a in VOCABULARY.values() if a.origin == "owasp"}
        assert owasp == sheet_names
        own = {a.name for a in VOCABULARY.values() if a.origin == "apiwatch"}
        assert {"http_request", "ingest_refused", "source_sequence_gap", "parse_failure",
                "data_access", "probe_result", "authn_token_invalid"} <= own


class TestEcs:
    def test_expected_types_table_matches_ecs(self, ecs: dict[str, Any]) -> None:
        """The embedded ECS category -> expected types table is the schema's."""
        schema = {c["name"]: frozenset(c["expected_event_types"]) for c in ecs["event.category"]}
        assert dict(ECS_EXPECTED_TYPES) == schema

    @pytest.mark.parametrize("name", sorted(VOCABULARY))
    def test_values_are_allowed_by_ecs(self, name: str, ecs: dict[str, Any]) -> None:
        """Kind, categories, types and outcome are ECS allowed values; each type is expected for
        at least one of the action's categories."""
        action = VOCABULARY[name]
        expected = {c["name"]: set(c["expected_event_types"]) for c in ecs["event.category"]}
        assert action.kind in _names(ecs, "event.kind")
        assert set(action.category) <= _names(ecs, "event.category")
        assert set(action.type) <= _names(ecs, "event.type")
        assert action.outcome in _names(ecs, "event.outcome")
        for type_ in action.type:
            assert any(type_ in expected[c] for c in action.category), type_
        assert bool(action.category) == (action.kind != "pipeline_error")


class TestOcsf:
    @pytest.mark.parametrize("name", sorted(VOCABULARY))
    def test_class_and_activity_exist_in_ocsf(
        self, name: str, ocsf_classes: dict[int, set[int]]
    ) -> None:
        """The OCSF hint names a class of OCSF 1.8.0 and one of that class's activities."""
        action = VOCABULARY[name]
        assert action.ocsf_activity in ocsf_classes[action.ocsf_class]

    @pytest.mark.parametrize("name", sorted(VOCABULARY))
    def test_ecs_alerts_are_ocsf_findings(self, name: str) -> None:
        """An action of ECS kind `alert` is an OCSF Detection Finding, unless it is an access
        denial, which OCSF records as Web Resource Access Activity."""
        action = VOCABULARY[name]
        if action.ocsf_class == 2004:
            assert action.kind == "alert"
        if action.kind == "alert":
            assert action.ocsf_class in {2004, 6004}


class TestLookupAndRegister:
    def test_unknown_action_is_refused_by_name(self) -> None:
        """Looking up an unknown action raises UnknownActionError naming it."""
        with pytest.raises(UnknownActionError, match="authn_nope"):
            lookup("authn_nope")

    def test_register_adds_a_user_action(self) -> None:
        """A registered action can be looked up and used by make_event."""
        action = register(Action("billing_refund_issued", "WARN", ("api",), ("change",),
                                 "success", "A refund was issued.", ("userid", "amount")))
        assert lookup("billing_refund_issued") is action
        assert action.origin == "user"
        assert make_event("billing_refund_issued")["log.level"] == "warn"

    @pytest.mark.parametrize("name", ["authn_login_fail", "http_request"])
    def test_register_refuses_redefinition(self, name: str) -> None:
        """An existing name, the sheet's or apiwatch's, cannot be redefined."""
        with pytest.raises(VocabularyError, match="already defined"):
            register(Action(name, "INFO", ("web",), ("access",), "success", "x"))
        assert lookup(name).origin != "user"

    @pytest.mark.parametrize(
        ("action", "match"),
        [
            (Action("Bad-Name", "INFO", ("web",), ("access",), "success", "x"), "snake_case"),
            (Action("app_x_done", "DEBUG", ("web",), ("access",), "success", "x"),  # type: ignore[arg-type]
             "level"),
            (Action("app_x_done", "INFO", ("web",), ("access",), "ok", "x"),  # type: ignore[arg-type]
             "outcome"),
            (Action("app_x_done", "INFO", ("webs",), ("access",), "success", "x"), "category"),
            (Action("app_x_done", "INFO", ("web",), ("denied",), "success", "x"), "not expected"),
        ],
    )
    def test_register_refuses_values_ecs_does_not_allow(self, action: Action, match: str) -> None:
        """A user's action with a bad name, level, outcome, category or type is refused."""
        with pytest.raises(VocabularyError, match=match):
            register(action)
        assert "app_x_done" not in VOCABULARY

    def test_vocabulary_is_read_only(self) -> None:
        """VOCABULARY is a view: actions are added through register() only."""
        with pytest.raises(TypeError):
            VOCABULARY["x_y"] = lookup("authz_fail")  # type: ignore[index]


class TestLevels:
    def test_failure_level_applies_on_failure(self) -> None:
        """upload_validation is INFO when passed and CRITICAL when it failed, as the sheet says."""
        assert make_event("upload_validation", outcome="success")["log.level"] == "info"
        failed = make_event("upload_validation", outcome="failure")
        assert (failed["log.level"], failed["event.severity"]) == ("critical", 2)

    @pytest.mark.parametrize(("status", "outcome"), [(200, "success"), (304, "success"),
                                                     (399, "success"), (400, "failure"),
                                                     (404, "failure"), (503, "failure")])
    def test_http_outcome_from_status(self, status: int, outcome: str) -> None:
        """HTTP statuses from 400 on are failures, below are successes."""
        assert http_outcome(status) == outcome
