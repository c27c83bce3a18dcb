"""Realistic cancellation situations (issue 10): a refunded or cancelled order leaves the patient's history.

Native cancellations (``event_type: cancellation``) and NHSA refund lines (``cnt`` ≤ 0) are applied
with the worker's own per-event logic (``decision.handle_event``), the state through its codec.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from services.contracts.event import Event
from services.dialects import nhsa
from services.rules import decision as dec
from services.rules import state as st
from services.rules.engine import Engine
from tests.rules.test_realistic_supply import ATOR, Patient, on, rx

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
METFORMIN = "XA10BAH027A001010100729"


def cancellation(of: dict[str, Any], eid: str, day: int, *, cancels: str | None = None,
                 items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body = {k: copy.deepcopy(v) for k, v in of.items() if k not in ("event_id", "occurred_at", "items", "diagnoses")}
    body.update(event_id=eid, event_type="cancellation", cancels=cancels, occurred_at=on(day, 17),
                items=items or [], diagnoses=[])
    return Event.model_validate(body).to_wire()


def test_a_refunded_prescription_no_longer_counts_as_held(engine: Engine) -> None:
    """The patient returned the 30 days bought at H2 the same afternoon; H1 prescribes 30 days 10 days later."""
    p = Patient(engine)
    bought = rx("P-refund", "refund-h2", 0, inst="H2")
    p.send(bought)
    assert p.send(cancellation(bought, "refund-h2-cx", 0, cancels="refund-h2")) == []  # not judged
    assert "L" not in p.state
    assert p.fired(rx("P-refund", "refund-h1", 10), "R19") is None


def test_without_the_refund_the_same_refill_is_a_duplicate(engine: Engine) -> None:
    """Control for the case above: the assertion there can fail."""
    p = Patient(engine)
    p.send(rx("P-norefund", "norefund-h2", 0, inst="H2"))
    assert p.fired(rx("P-norefund", "norefund-h1", 10), "R19") is not None


def test_a_partial_refund_takes_back_only_its_drug(engine: Engine) -> None:
    """Atorvastatin and metformin bought together; only metformin is returned."""
    p = Patient(engine)
    both = rx("P-part", "part-1", 0, items=[
        {"line_id": "1", "code": ATOR, "kind": "drug", "quantity": 30, "unit_price": 3.2, "days_supply": 30},
        {"line_id": "2", "code": METFORMIN, "kind": "drug", "quantity": 60, "unit_price": 0.1, "days_supply": 30}])
    p.send(both)
    p.send(cancellation(both, "part-1-cx", 1, items=[{"line_id": "1", "code": METFORMIN, "kind": "drug", "quantity": 60}]))
    assert [r[st.L_ING] for r in p.state["L"]] == ["atorvastatin"]
    assert p.fired(rx("P-part", "part-2", 10, items=[
        {"line_id": "1", "code": METFORMIN, "kind": "drug", "quantity": 60, "unit_price": 0.1, "days_supply": 30}]),
        "R19") is None
    assert p.fired(rx("P-part", "part-3", 10), "R19") is not None


def test_a_cancelled_visit_does_not_count_as_a_visit(engine: Engine) -> None:
    p = Patient(engine)
    visit = rx("P-visit", "visit-1", 0, scene=1, items=[])
    p.send(visit)
    assert p.state["V"]
    p.send(cancellation(visit, "visit-1-cx", 0, cancels="visit-1"))
    assert "V" not in p.state


def test_a_cancellation_does_not_move_event_time(engine: Engine) -> None:
    p = Patient(engine)
    bought = rx("P-time", "time-1", 0)
    p.send(bought)
    before = p.state["d"]
    p.send(cancellation(bought, "time-1-cx", 40, cancels="time-1"))
    assert p.state["d"] == before


def _nhsa_outpatient() -> dict[str, Any]:
    return json.loads((EXAMPLES / "nhsa-analysis.request.3101-outpatient.json").read_text(encoding="utf-8"))


def _run_nhsa(engine: Engine, body: dict[str, Any]) -> list[str]:
    """As the ingress and the worker do: history applied in order, then the current event decided."""
    [plan] = nhsa.plan_analysis(nhsa.NhsaAnalysisRequest.model_validate(body))
    blob = None
    for ev in plan.history:
        blob, _ = dec.handle_event(engine, blob, ev.to_wire(), evaluate=False)
    _, outcome = dec.handle_event(engine, blob, plan.current.to_wire())
    return [a["rule_id"] for a in outcome["alerts"]]


def test_nhsa_history_with_a_refund_line_is_not_a_duplicate(engine: Engine) -> None:
    """3101: the earlier visit at H2 carries its atorvastatin order and the refund of it (cnt −30):
    nothing was supplied, so the current visit's atorvastatin is no duplicate."""
    body = _nhsa_outpatient()
    assert "R19" in _run_nhsa(engine, copy.deepcopy(body))  # the example as shipped: a duplicate
    encs = body["input"]["data"]["patient_dtos"][0]["fsi_encounter_dtos"]
    [old] = [e for e in encs if e["mdtrt_id"] != body["input"]["data"]["patient_dtos"][0]["curr_mdtrt_id"]]
    order = old["fsi_order_dtos"][0]
    old["fsi_order_dtos"].append({**order, "rx_id": "RET-1", "cnt": -float(str(order["cnt"]).strip()),
                                  "sumamt": None})
    assert "R19" not in _run_nhsa(engine, body)
