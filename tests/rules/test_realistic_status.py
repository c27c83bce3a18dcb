"""Realistic status timelines (issue 10): a death recorded late looks back at the claims made after it.

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


def test_only_a_death_looks_back(engine: Engine) -> None:
    p = Patient(engine)
    claims_of(p, "P-suspended")
    assert engine.retrospective(p.state, death("P-suspended", status="suspended")) == []


def test_an_enrolment_record_after_the_death_does_not_revive(engine: Engine) -> None:
    """A routine 参保登记 sync dated after the death, recorded later than the death: still deceased."""
    state = engine.apply_status(None, death("P-revive", updated=10))
    state = engine.apply_status(state, death("P-revive", day=20, updated=25, status="active"))
    p = Patient(engine)
    p.blob = st.dumps(state)
    assert p.fired(rx("P-revive", "P-revive-d30", 30), "R31") is not None
    # care on the day of death itself is payable
    assert p.fired(rx("P-revive", "P-revive-d3", DEATH_DAY), "R31") is None
