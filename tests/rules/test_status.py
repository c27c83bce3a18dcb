"""Insured-status updates: the ingress model and the fold into the patient state."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.contracts.status import PatientStatus
from services.rules import state as st
from services.rules.engine import Engine
from services.rules.timeutil import day_of_date


def _status(**kw):
    base = {"patient_id": "P1", "status": "suspended", "effective_from": "2026-03-01", "updated_at": "2026-02-28T09:00:00+08:00"}
    base.update(kw)
    return PatientStatus.model_validate(base).to_wire()


def test_model_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        _status(status="alive")
    with pytest.raises(ValidationError, match="before effective_from"):
        _status(effective_to="2026-02-01")
    with pytest.raises(ValidationError, match="deceased status has no effective_to"):
        _status(status="deceased", effective_to="2026-04-01")
    with pytest.raises(ValidationError):
        _status(patient_id="P 1")


def test_model_wire_form() -> None:
    wire = _status(updated_at="2026-02-28T09:00:00", reason="失信")
    assert wire == {"patient_id": "P1", "status": "suspended", "effective_from": "2026-03-01",
                    "updated_at": "2026-02-28T09:00:00+08:00", "reason": "失信"}


def test_latest_update_wins_whatever_the_arrival_order(engine: Engine) -> None:
    suspended = _status(effective_to="2026-03-31")
    lifted = _status(status="active", effective_from="2026-03-05", updated_at="2026-03-04T09:00:00+08:00")
    a = engine.apply_status(engine.apply_status(None, suspended), lifted)
    b = engine.apply_status(engine.apply_status(None, lifted), suspended)
    for state in (a, b):
        assert st.status_on(state, day_of_date("2026-03-03"))[0] == "suspended"
        assert st.status_on(state, day_of_date("2026-03-10"))[0] == "active"
        assert st.status_on(state, day_of_date("2026-02-01")) is None


def test_repeated_update_replaces_and_stale_is_ignored(engine: Engine) -> None:
    state = engine.apply_status(None, _status(reason="first", updated_at="2026-02-28T09:00:00+08:00"))
    state = engine.apply_status(state, _status(reason="second", updated_at="2026-03-01T09:00:00+08:00"))
    state = engine.apply_status(state, _status(reason="stale", updated_at="2026-02-01T09:00:00+08:00"))
    assert [r[4] for r in state["S"]] == ["second"]


def test_status_keeps_seen_and_rules_state(engine: Engine) -> None:
    state = {"seen": [["H1:x", 1, "d-1", []]], "d": 20000, "V": [[20000, "H1", 1]]}
    out = engine.apply_status(state, _status())
    assert out["seen"] == [["H1:x", 1, "d-1", []]] and out["V"] == [[20000, "H1", 1]] and len(out["S"]) == 1


def test_ended_periods_are_evicted_by_event_time(engine: Engine) -> None:
    state = engine.apply_status(None, _status(effective_to="2026-03-31"))
    event = {
        "event_id": "e1", "scene": 1, "occurred_at": "2026-04-05T09:00:00+08:00",
        "institution": {"id": "H1"}, "patient": {"id": "P1", "gender": "F", "birth_date": "1980-01-01"},
        "encounter": {"id": "v1", "type": "outpatient"},
    }
    state, alerts = engine.process(state, event)
    assert not alerts
    event2 = dict(event, event_id="e2", occurred_at="2026-04-06T09:00:00+08:00", encounter={"id": "v2", "type": "outpatient"})
    state, _ = engine.process(state, event2)
    assert "S" not in state
