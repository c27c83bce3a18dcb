"""Engine contract: purity, process = evaluate + apply, ordering, regions, windows from rule data."""

from __future__ import annotations

import ast
import copy
import pathlib
import shutil

import orjson
import pytest

from services.rules import state as st
from services.rules.engine import DEFAULT_DATA, Engine

RULES_PKG = pathlib.Path(__file__).resolve().parents[2] / "services" / "rules"
SCHEMAS = DEFAULT_DATA  # the packaged rule base: kb/, rules/
FORBIDDEN = {"faust", "fastapi", "aiokafka", "requests", "httpx", "socket", "urllib"}


def test_rules_package_is_pure() -> None:
    for path in RULES_PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def _event(**kw) -> dict:
    ev = {
        "event_id": "e-1", "scene": 2, "occurred_at": "2026-03-10T09:00:00+08:00",
        "institution": {"id": "H1", "level": 3, "region": "110100"},
        "patient": {"id": "P-eng", "gender": "F", "birth_date": "1990-01-01"},
        "encounter": {"id": "v1", "type": "outpatient"},
        "diagnoses": [{"code": "N40.x00", "main": True}],
        "items": [
            {"line_id": "10", "code": "XC10AAR117A001010100561", "kind": "drug", "quantity": 28.0, "days_supply": 28, "amount": 5.6},
            {"line_id": "2", "code": "XC10AAA067A001010104321", "kind": "drug", "quantity": 28.0, "days_supply": 28, "amount": 3.6},
            {"line_id": "3", "code": "001109000010000", "kind": "service", "quantity": 1.0, "unit_price": 80.0},
        ],
    }
    ev.update(kw)
    return ev


def test_alerts_sorted_by_rule_then_first_line(engine: Engine) -> None:
    alerts = engine.evaluate(None, _event())
    keys = [(a["rule_id"], a["line_ids"]) for a in alerts]
    assert ("R03", []) in keys and ("R20", ["10", "2"]) in keys and ("R09", ["3"]) in keys
    assert [a["rule_id"] for a in alerts] == sorted(a["rule_id"] for a in alerts)
    r09 = [a for a in alerts if a["rule_id"] == "R09"]
    assert r09[0]["region"] == "default"


def test_region_falls_back_to_institution(engine: Engine) -> None:
    history = _event(items=[{"line_id": "1", "code": "XC10AAA067A001010101234", "kind": "drug", "quantity": 30.0, "days_supply": 30}], diagnoses=[])
    state, _ = engine.process(None, history)
    later = _event(event_id="e-2", occurred_at="2026-03-25T09:00:00+08:00", encounter={"id": "v2", "type": "outpatient"}, diagnoses=[],
                   items=[{"line_id": "1", "code": "XC10AAA067A001010104321", "kind": "drug", "quantity": 30.0, "days_supply": 30}])
    alerts = engine.evaluate(state, later)  # 15 days remain of 30: fires at 1/3 (default), not at 1/2 (110100)
    assert not [a for a in alerts if a["rule_id"] == "R19"]
    later["institution"] = {"id": "H1", "level": 3}
    r19 = [a for a in engine.evaluate(state, later) if a["rule_id"] == "R19"]
    assert r19 and r19[0]["region"] == "default"


def test_process_equals_evaluate_then_apply(engine: Engine) -> None:
    history = _event(event_id="h", occurred_at="2026-03-01T09:00:00+08:00", encounter={"id": "v0", "type": "outpatient"})
    base, _ = engine.process(None, history)
    ev = _event()
    alerts = engine.evaluate(copy.deepcopy(base), ev)
    applied = engine.apply(copy.deepcopy(base), ev)
    state, alerts2 = engine.process(copy.deepcopy(base), ev)
    assert alerts == alerts2 and state == applied
    assert st.loads(st.dumps(state)) == state


def test_evaluate_does_not_touch_the_state(engine: Engine) -> None:
    state, _ = engine.process(None, _event(event_id="h", occurred_at="2026-03-01T09:00:00+08:00"))
    before = st.dumps(state)
    engine.evaluate(state, _event())
    assert st.dumps(state) == before


def test_event_is_not_mutated(engine: Engine) -> None:
    ev = _event()
    snapshot = orjson.dumps(ev)
    engine.process(None, ev)
    assert orjson.dumps(ev) == snapshot


def test_load_missing_dir_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="rule data directory not found"):
        Engine.load(tmp_path / "nope")


def test_windows_follow_the_widest_rule_parameter(tmp_path: pathlib.Path) -> None:
    shutil.copytree(SCHEMAS, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "rules" / "R24.json"
    doc = orjson.loads(path.read_bytes())
    doc["rule"]["region_overrides"] = {"320100": {"window_days": 60}}
    path.write_bytes(orjson.dumps(doc))
    assert Engine.load().windows.visits == 30
    assert Engine.load(tmp_path).windows.visits == 60


def test_retired_rule_stops_firing(tmp_path: pathlib.Path) -> None:
    shutil.copytree(SCHEMAS, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "rules" / "R03.json"
    doc = orjson.loads(path.read_bytes())
    doc["rule"]["effective_to"] = "2026-03-09"
    path.write_bytes(orjson.dumps(doc))
    engine = Engine.load(tmp_path)
    assert "R03" not in {a["rule_id"] for a in engine.evaluate(None, _event())}
    assert "R03" in {a["rule_id"] for a in engine.evaluate(None, _event(occurred_at="2026-03-09T09:00:00+08:00"))}


def test_unchecked_lines_name_each_line_no_catalogue_rule_could_judge(engine: Engine) -> None:
    from services.rules import decision as dec

    event = {
        "event_id": "unchecked-1", "scene": 7, "occurred_at": "2026-03-05T10:00:00+08:00",
        "institution": {"id": "H1", "level": 3},
        "patient": {"id": "P-unchecked", "gender": "F", "birth_date": "2020-02-01", "insurance_type": "310"},
        "encounter": {"id": "unchecked-enc", "type": "outpatient"}, "diagnoses": [{"code": "J06.9", "main": True}],
        "items": [
            {"line_id": "1", "code": "XC08CAH001A001010100137", "kind": "drug", "quantity": 28, "amount": 5.6},
            {"line_id": "2", "code": "XN02BEB067D001010102024", "kind": "drug", "quantity": 6, "amount": 12.0},
            {"line_id": "3", "code": "YN-ZJ-00871", "kind": "drug", "quantity": 1, "amount": 18.0},
            {"line_id": "4", "code": "002503020100000", "kind": "service", "quantity": 1, "amount": 100.0,
             "started_at": "2023-12-31T09:00:00+08:00"},
        ],
    }
    _, alerts, unchecked = engine.decide(None, event)
    assert [(u["line_id"], u["reason"], u["left_catalogue_after"]) for u in unchecked] == [
        ("2", "retired", "2025-06-30"), ("3", "unmapped", None), ("4", "not_yet_listed", None)]
    assert unchecked[2]["service_date"] == "2023-12-31" and "2024-01-01" in unchecked[2]["detail"]
    assert engine.unchecked_lines(event) == unchecked  # the same answer without a context (retries)
    assert {(a["rule_id"], a["line_ids"][0]) for a in alerts if a["rule_id"] in ("R38", "R39")} == {
        ("R38", "2"), ("R39", "3"), ("R38", "4")}
    blob, outcome = dec.handle_event(engine, None, event)
    assert outcome["unchecked_lines"] == unchecked
    _, again = dec.handle_event(engine, blob, event)
    assert again["replayed"] and again["unchecked_lines"] == unchecked
