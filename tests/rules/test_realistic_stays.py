"""Realistic inpatient and coverage situations (issue 10), written apart from the golden cases.

A long stay settled after a price change, bed days beyond the nights, a ward and an ICU bed on one
day, an outpatient claim at the admitting hospital during the stay, a settlement carrying a retired
product and an unmapped hospital code. Each line is judged at its own service date.
"""

from __future__ import annotations

from typing import Any

from services.contracts.event import Event
from services.rules import state as st
from services.rules.engine import Engine
from tests.factories import dx, event

WARD = "001109000010000"  # 床位费(普通病房三人间): cap 40 until 2025-06-30, 50 from 2025-07-01
ICU = "001109000050000"   # 重症监护病房床位费 (its content includes the ward bed)
CONSULT = "001102000010000"
RETIRED = "XN02BEB067D001010102024"  # left the catalogue after 2025-06-30
HOSPITAL_CODE = "YN-ZJ-00871"


def at(d: str, hour: int = 9) -> str:
    return f"{d}T{hour:02d}:00:00+08:00"


def stay_event(patient: str, eid: str, scene: int, when: str, items: list[dict[str, Any]], *, adm: str,
               dis: str | None = None, inst: str = "H1") -> dict[str, Any]:
    enc: dict[str, Any] = {"med_type": "21", "admitted_at": at(adm, 8)}
    if dis:
        enc["discharged_at"] = at(dis, 10)
    body = event(patient=patient, event_id=eid, institution=inst, scene=scene, occurred_at=at(when),
                 encounter_type="inpatient", encounter_id=f"{patient}-stay", diagnoses=[dx("I63.900", name="脑梗死")],
                 items=items, **enc)
    return Event.model_validate(body).to_wire()


def bed(line: str, code: str, start: str, days: int, price: float) -> dict[str, Any]:
    return {"line_id": line, "code": code, "kind": "service", "quantity": days, "unit": "日", "unit_price": price,
            "amount": round(days * price, 2), "started_at": at(start, 0)}


def run(engine: Engine, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    blob = None
    for ev in events[:-1]:
        state, _ = engine.process(st.loads(blob), ev)
        blob = st.dumps(state)
    _, alerts, unchecked = engine.decide(st.loads(blob), events[-1])
    return alerts, unchecked


def by_rule(alerts: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a["rule_id"] == rule]


def test_a_stay_across_a_price_change_is_capped_per_day(engine: Engine) -> None:
    """Ten ward nights from 06-25 at 45 a day, settled 07-05: over the cap of 40 for the six days before
    07-01 (6 × 5 = 30), within the cap of 50 after. No bed-day excess: ten nights, ten days."""
    adm = stay_event("P-price", "price-adm", 3, "2025-06-25", [], adm="2025-06-25")
    settle = stay_event("P-price", "price-settle", 8, "2025-07-05", [bed("1", WARD, "2025-06-25", 10, 45.0)],
                        adm="2025-06-25", dis="2025-07-05")
    alerts, _ = run(engine, [adm, settle])
    [r32] = by_rule(alerts, "R32")
    assert r32["amount"] == 30.0 and r32["line_ids"] == ["1"]
    assert not by_rule(alerts, "R40")


def test_bed_days_beyond_the_nights_of_the_stay(engine: Engine) -> None:
    """计入不计出: admitted 03-05, discharged 03-08 — three nights, charged four bed days."""
    adm = stay_event("P-nights", "nights-adm", 3, "2026-03-05", [], adm="2026-03-05")
    settle = stay_event("P-nights", "nights-settle", 8, "2026-03-08", [bed("1", WARD, "2026-03-05", 4, 50.0)],
                        adm="2026-03-05", dis="2026-03-08")
    [r40] = by_rule(run(engine, [adm, settle])[0], "R40")
    assert r40["line_ids"] == ["1"]


def test_ward_and_icu_bed_on_the_same_day(engine: Engine) -> None:
    """Moved to the ICU in the afternoon: the ward bed and the ICU bed both charged for 03-06."""
    adm = stay_event("P-icu", "icu-adm", 3, "2026-03-05", [], adm="2026-03-05")
    settle = stay_event("P-icu", "icu-settle", 8, "2026-03-08",
                        [bed("1", WARD, "2026-03-05", 2, 50.0), bed("2", ICU, "2026-03-06", 2, 150.0)],
                        adm="2026-03-05", dis="2026-03-08")
    alerts, _ = run(engine, [adm, settle])
    assert by_rule(alerts, "R40")
    assert {"1", "2"} <= {lid for a in by_rule(alerts, "R40") for lid in a["line_ids"]}


def test_outpatient_charge_at_the_admitting_hospital_during_the_stay(engine: Engine) -> None:
    """转嫁费用: the inpatient's consultation billed as an outpatient visit at the same hospital."""
    adm = stay_event("P-shift", "shift-adm", 3, "2026-03-01", [], adm="2026-03-01")
    visit = Event.model_validate(event(
        patient="P-shift", event_id="shift-op", institution="H1", scene=6, occurred_at=at("2026-03-03"),
        encounter_id="shift-op-enc", items=[{"line_id": "1", "code": CONSULT, "kind": "service", "quantity": 1,
                                             "unit_price": 10.0, "amount": 10.0}])).to_wire()
    [r35] = by_rule(run(engine, [adm, visit])[0], "R35")
    assert any(e.get("event_id") == "shift-adm" for e in r35["evidence"])


def test_a_settlement_with_a_retired_product_and_a_hospital_code_is_never_silent(engine: Engine) -> None:
    adm = stay_event("P-codes", "codes-adm", 3, "2026-03-01", [], adm="2026-03-01")
    settle = stay_event("P-codes", "codes-settle", 8, "2026-03-04", [
        {"line_id": "1", "code": RETIRED, "kind": "drug", "quantity": 6, "unit_price": 2.0, "amount": 12.0,
         "started_at": at("2026-03-02")},
        {"line_id": "2", "code": HOSPITAL_CODE, "kind": "drug", "quantity": 1, "unit_price": 18.0, "amount": 18.0,
         "started_at": at("2026-03-02")},
        bed("3", WARD, "2026-03-01", 3, 50.0)], adm="2026-03-01", dis="2026-03-04")
    alerts, unchecked = run(engine, [adm, settle])
    [r38] = by_rule(alerts, "R38")
    assert r38["line_ids"] == ["1"] and "2025-06-30" in r38["message_zh"]
    [r39] = by_rule(alerts, "R39")
    assert r39["line_ids"] == ["2"]
    assert {(u["line_id"], u["reason"]) for u in unchecked} == {("1", "retired"), ("2", "unmapped")}


def test_the_same_retired_product_dated_before_it_left_is_judged_normally(engine: Engine) -> None:
    """Near miss: a line dated 2025-06-30 (its last day in force), settled in July."""
    adm = stay_event("P-last", "last-adm", 3, "2025-06-28", [], adm="2025-06-28")
    settle = stay_event("P-last", "last-settle", 8, "2025-07-02", [
        {"line_id": "1", "code": RETIRED, "kind": "drug", "quantity": 6, "unit_price": 2.0, "amount": 12.0,
         "started_at": at("2025-06-30")}], adm="2025-06-28", dis="2025-07-02")
    alerts, unchecked = run(engine, [adm, settle])
    assert not by_rule(alerts, "R38") and unchecked == []


def test_a_consumable_sent_by_its_20_character_base_code_is_in_the_catalogue(engine: Engine) -> None:
    """Many HIS still send the consumable's 20-character base code; the catalogue holds the 27-character
    national code (base + 7-digit serial). One product in force has that base: it is that product."""
    adm = stay_event("P-base", "base-adm", 3, "2026-03-01", [], adm="2026-03-01")
    line = {"line_id": "1", "code": "C0101000011000000000", "kind": "consumable", "quantity": 2, "unit_price": 3.0,
            "amount": 6.0, "started_at": at("2026-03-02")}
    settle = stay_event("P-base", "base-settle", 8, "2026-03-04", [line, bed("2", WARD, "2026-03-01", 3, 50.0)],
                        adm="2026-03-01", dis="2026-03-04")
    alerts, unchecked = run(engine, [adm, settle])
    assert not by_rule(alerts, "R38") and not by_rule(alerts, "R39") and unchecked == []
    assert engine.kb.item("C0101000011000000000", "consumable", 20513)["code"] == "C01010000110000000000000001"
    # an unknown base is still 目录外
    other = dict(line, code="C9901000011000000000")
    settle2 = stay_event("P-base2", "base2-settle", 8, "2026-03-04", [other], adm="2026-03-01", dis="2026-03-04")
    alerts, unchecked = run(engine, [stay_event("P-base2", "base2-adm", 3, "2026-03-01", [], adm="2026-03-01"), settle2])
    assert by_rule(alerts, "R38") and [u["line_id"] for u in unchecked] == ["1"]
