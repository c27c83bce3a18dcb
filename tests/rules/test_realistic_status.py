"""Realistic status timelines (issue 10): a death, a suspension (失信) or an uninsured period recorded late
looks back at the claims it covers.

The bureau's death record often arrives weeks after the death (家属未及时销户); pharmacies and
hospitals kept settling on the card meanwhile. Those claims are found retrospectively (事后) and
written to the audit topic marked ``retrospective: true``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.contracts.decision import AuditRecord, retrospective_record
from services.contracts.status import PatientStatus
from services.rules import state as st
from services.rules.engine import Engine
from tests.rules.test_realistic_supply import DAY0, Patient, on, rx

DEATH_DAY = 3  # 2026-03-05


def death(patient: str, day: int = DEATH_DAY, updated: int = 15, status: str = "deceased") -> dict[str, Any]:
    return PatientStatus.model_validate({
        "patient_id": patient, "status": status, "effective_from": (DAY0 + timedelta(days=day)).isoformat(),
        "updated_at": on(updated), "reason": "公安户籍注销"}).to_wire()


def claims_of(p: Patient, patient: str) -> None:
    p.send(rx(patient, f"{patient}-d1", 1))                       # before the death: payable
    p.send(rx(patient, f"{patient}-d3", DEATH_DAY, inst="PH1", scene=10, etype="pharmacy",
              items=[{"line_id": "1", "code": "XA10BAH027A001010100729", "kind": "drug", "quantity": 60,
                      "unit_price": 0.1, "days_supply": 30}]))    # on the day of death: payable
    p.send(rx(patient, f"{patient}-d6", 6, inst="PH2", scene=10, etype="pharmacy",
              items=[{"line_id": "1", "code": "XA10BAH027A001010100729", "kind": "drug", "quantity": 60,
                      "unit_price": 0.1, "days_supply": 30}]))    # after: not payable
    p.send(rx(patient, f"{patient}-adm", 9, inst="H3", scene=3, etype="inpatient", enc=f"{patient}-stay",
              items=[], admitted_at=on(9), med_type="21"))       # an admission after the death


def test_a_death_recorded_late_finds_the_claims_made_after_it(engine: Engine) -> None:
    p = Patient(engine)
    claims_of(p, "P-late-death")
    findings = engine.retrospective(p.state, death("P-late-death"))
    assert [(f["event_id"], f["institution_id"], f["service_date"]) for f in findings] == [
        ("P-late-death-d6", "PH2", "2026-03-08"), ("P-late-death-adm", "H3", "2026-03-11")]
    for f in findings:
        [alert] = f["alerts"]
        assert alert["rule_id"] == "R31" and "2026-03-05起已死亡" in alert["message_zh"]
        assert "deceased since 2026-03-05" in alert["message_en"]
        assert [e["event_id"] for e in alert["evidence"] if e["kind"] == "event"] == [f["event_id"]]
        record = retrospective_record("P-late-death", f, "2026-03-05", "2026-03-17T01:00:00+00:00", "w-1", "rev")
        AuditRecord.model_validate(record)
        assert record["retrospective"] is True and record["alerts"][0]["alert_id"] == record["decision_id"] + ".R31.1"
    # the same death sent again (a retry, another worker) gives the same decision ids: duplicates are identifiable
    first = retrospective_record("P-late-death", findings[0], "2026-03-05", "t1", "w-1", "rev")
    assert retrospective_record("P-late-death", findings[0], "2026-03-05", "t2", "w-2", None)["decision_id"] == first["decision_id"]


def test_claims_after_a_death_already_known_were_flagged_live_not_again(engine: Engine) -> None:
    p = Patient(engine)
    p.blob = st.dumps(engine.apply_status(None, death("P-known", updated=2)))
    alert = p.fired(rx("P-known", "P-known-d6", 6), "R31")
    assert alert is not None  # live
    assert engine.retrospective(p.state, death("P-known", updated=20)) == []


def period(patient: str, status: str, frm: int, to: int | None = None, updated: int = 15) -> dict[str, Any]:
    body: dict[str, Any] = {"patient_id": patient, "status": status, "effective_from": (DAY0 + timedelta(days=frm)).isoformat(),
                            "updated_at": on(updated), "reason": "失信联合惩戒" if status == "suspended" else "参保中断"}
    if to is not None:
        body["effective_to"] = (DAY0 + timedelta(days=to)).isoformat()
    return PatientStatus.model_validate(body).to_wire()


def found(findings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["event_id"], f["service_date"]) for f in findings]


def test_a_suspension_recorded_late_finds_the_claims_inside_its_period(engine: Engine) -> None:
    """失信: suspended from direct settlement 03-05 to 03-09, recorded 03-17. The claim on 03-05 is
    inside (unlike a death, the first day counts); the one before and the admission after are not."""
    p = Patient(engine)
    claims_of(p, "P-late-susp")
    findings = engine.retrospective(p.state, period("P-late-susp", "suspended", 3, 7))
    assert found(findings) == [("P-late-susp-d3", "2026-03-05"), ("P-late-susp-d6", "2026-03-08")]
    for f in findings:
        [alert] = f["alerts"]
        assert alert["rule_id"] == "R31" and "暂停联网结算(失信)" in alert["message_zh"]
        assert "suspended from direct settlement since 2026-03-05" in alert["message_en"]
        assert [e["event_id"] for e in alert["evidence"] if e["kind"] == "event"] == [f["event_id"]]
        [status_ev] = [e for e in alert["evidence"] if e["kind"] == "kb"]
        assert status_ev["code"] == "suspended" and "to 2026-03-09" in status_ev["detail"] and "retrospective" in status_ev["detail"]
        record = retrospective_record("P-late-susp", f, "2026-03-05", "2026-03-17T01:00:00+00:00", "w-1", "rev", "suspended")
        AuditRecord.model_validate(record)
        assert record["retrospective"] is True
        assert record["decision_id"] != retrospective_record("P-late-susp", f, "2026-03-05", "t", "w-1", "rev")["decision_id"]


def test_an_uninsured_period_recorded_late_finds_the_claims_and_the_stay(engine: Engine) -> None:
    """参保中断 from 03-07, open-ended: the pharmacy claim of 03-08 and the admission of 03-11."""
    p = Patient(engine)
    claims_of(p, "P-late-unins")
    findings = engine.retrospective(p.state, period("P-late-unins", "uninsured", 5))
    assert found(findings) == [("P-late-unins-d6", "2026-03-08"), ("P-late-unins-adm", "2026-03-11")]
    assert all("未参保或参保中断" in f["alerts"][0]["message_zh"] for f in findings)


def test_stay_orders_and_visits_inside_a_late_period_are_found_with_their_lines(engine: Engine) -> None:
    """A stay admitted before the suspension: its admission is found (open into the period) and each
    ward order dated inside the period, with its lines and amount; an outpatient visit inside too."""
    from tests.rules.test_realistic_reversal import Stay, svc, ward_day
    s = Stay(engine, "P-late-stay")
    s.send(s.order("P-late-stay-o0", 5, 0, ward_day(0)))
    s.send(s.order("P-late-stay-o4", 5, 4, ward_day(4)))
    findings = engine.retrospective(s.state, period("P-late-stay", "suspended", 3, updated=10))
    assert found(findings) == [("P-late-stay-adm", "2026-03-05"), ("P-late-stay-o4", "2026-03-06")]
    order = findings[1]["alerts"][0]
    assert order["amount"] == 70.0 and sorted(e["item_code"] for e in order["evidence"] if e["kind"] == "event") == sorted(
        ln["code"] for ln in ward_day(4))
    assert svc  # (the helpers are shared with the reversal tests)


def test_claims_inside_a_suspension_already_known_were_flagged_live_not_again(engine: Engine) -> None:
    p = Patient(engine)
    p.blob = st.dumps(engine.apply_status(None, period("P-known-s", "suspended", 3, updated=2)))
    assert p.fired(rx("P-known-s", "P-known-s-d6", 6), "R31") is not None  # live
    assert engine.retrospective(p.state, period("P-known-s", "suspended", 3, 10, updated=20)) == []


def test_a_suspension_after_a_known_death_finds_nothing_more(engine: Engine) -> None:
    p = Patient(engine)
    claims_of(p, "P-dead-susp")
    p.blob = st.dumps(engine.apply_status(p.state, death("P-dead-susp", updated=16)))
    assert engine.retrospective(p.state, period("P-dead-susp", "suspended", 4, updated=20)) == []


def test_an_active_record_or_a_period_before_the_claims_finds_nothing(engine: Engine) -> None:
    p = Patient(engine)
    claims_of(p, "P-nothing")
    assert engine.retrospective(p.state, period("P-nothing", "active", 3)) == []
    assert found(engine.retrospective(p.state, period("P-nothing", "uninsured", -10, -2))) == []
    assert found(engine.retrospective(p.state, period("P-nothing", "uninsured", -10, 1))) == [("P-nothing-d1", "2026-03-03")]


def test_an_enrolment_record_after_the_death_does_not_revive(engine: Engine) -> None:
    """A routine 参保登记 sync dated after the death, recorded later than the death: still deceased."""
    state = engine.apply_status(None, death("P-revive", updated=10))
    state = engine.apply_status(state, death("P-revive", day=20, updated=25, status="active"))
    p = Patient(engine)
    p.blob = st.dumps(state)
    assert p.fired(rx("P-revive", "P-revive-d30", 30), "R31") is not None
    # care on the day of death itself is payable
    assert p.fired(rx("P-revive", "P-revive-d3", DEATH_DAY), "R31") is None
