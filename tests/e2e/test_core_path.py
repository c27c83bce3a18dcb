"""End to end: real HTTP → real broker → real faust worker process → reply.

One stack (embedded Tansu unless PRESETTLE_KAFKA_BOOTSTRAP is set) serves the
module; every test uses its own patient ids, so tests do not see each other.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loadtest.chaos import read_audit
from services.contracts.decision import AuditRecord
from services.stack import Stack
from tests.factories import drug, dx, event, uid

pytestmark = pytest.mark.e2e

# Two manufacturers' products of one ingredient (atorvastatin calcium), from the KB.
ATORVASTATIN_A = "XC10AAA067A001010101234"
ATORVASTATIN_B = "XC10AAA067A001010104321"
ASPIRIN = "XB01ACA056A001010100217"


def post(client: httpx.Client, body: dict, **params: int) -> dict:
    r = client.post("/v1/events", json=body, params=params or None)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["engine_status"] == "evaluated", answer
    return answer


def rule_ids(answer: dict) -> list[str]:
    return [a["rule_id"] for a in answer["alerts"]]


def test_healthz_round_trip(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["partitions"] == 2 and body["workers"]


# -- R03 诊断与性别不符 ----------------------------------------------------------
def test_r03_prostate_diagnosis_for_female_patient(client: httpx.Client) -> None:
    answer = post(client, event(gender="F", diagnoses=[dx("N40", name="前列腺增生")]))
    alert = next(a for a in answer["alerts"] if a["rule_id"] == "R03")
    assert alert["rule_version"] and alert["severity"] and alert["message_zh"] and alert["message_en"]
    assert "N40" in alert["message_zh"] + alert["message_en"]
    assert alert["alert_id"].startswith(answer["decision_id"])


def test_r03_delivery_for_male_patient(client: httpx.Client) -> None:
    answer = post(client, event(gender="M", scene=3, encounter_type="inpatient",
                                admitted_at="2026-03-01T09:00:00+08:00", diagnoses=[dx("O80")]))
    assert "R03" in rule_ids(answer)


def test_r03_silent_when_sex_matches(client: httpx.Client) -> None:
    assert "R03" not in rule_ids(post(client, event(gender="M", diagnoses=[dx("N40")])))
    assert "R03" not in rule_ids(post(client, event(gender="F", diagnoses=[dx("O80")])))


# -- R19 重复开药 ----------------------------------------------------------------
def test_r19_same_ingredient_other_hospital_while_supply_remains(stack: Stack, client: httpx.Client) -> None:
    patient = uid("P")
    first = post(client, event(patient=patient, institution="H1", occurred_at="2026-03-01T09:00:00+08:00",
                               diagnoses=[dx("I10")], items=[drug(ATORVASTATIN_A, 30, 30)]))
    assert "R19" not in rule_ids(first)
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h2"}) as other:
        # 10 days later 20 of 30 days remain (> 1/3): a different manufacturer, another hospital.
        second = post(other, event(patient=patient, institution="H2", occurred_at="2026-03-11T10:00:00+08:00",
                                   diagnoses=[dx("I10")], items=[drug(ATORVASTATIN_B, 30, 30)]))
    alert = next(a for a in second["alerts"] if a["rule_id"] == "R19")
    evidence = alert["evidence"][0]
    assert evidence["institution_id"] == "H1"
    assert evidence["date"] == "2026-03-01"
    assert evidence["quantity"] == 30


def test_r19_silent_when_little_supply_remains_or_other_drug(client: httpx.Client) -> None:
    patient = uid("P")
    post(client, event(patient=patient, occurred_at="2026-03-01T09:00:00+08:00", items=[drug(ATORVASTATIN_A, 30, 30)]))
    # another ingredient on day 5: not a duplicate
    assert "R19" not in rule_ids(post(client, event(patient=patient, occurred_at="2026-03-05T09:00:00+08:00",
                                                    items=[drug(ASPIRIN, 30, 30)])))
    # day 25 of 30: 5 days (< 1/3) remain
    assert "R19" not in rule_ids(post(client, event(patient=patient, occurred_at="2026-03-26T09:00:00+08:00",
                                                    items=[drug(ATORVASTATIN_A, 30, 30)])))


# -- R22 分解住院 ----------------------------------------------------------------
def _admission(patient: str, when: str, code: str, institution: str = "H1") -> dict:
    return event(patient=patient, institution=institution, scene=3, occurred_at=when, encounter_type="inpatient",
                 admitted_at=when, med_type="21", diagnoses=[dx(code)])


def _discharge(patient: str, admitted: str, discharged: str, code: str, institution: str = "H1") -> dict:
    return event(patient=patient, institution=institution, scene=8, occurred_at=discharged,
                 encounter_type="inpatient", admitted_at=admitted, discharged_at=discharged, med_type="21",
                 diagnoses=[dx(code)])


def test_r22_readmission_same_institution_related_diagnosis(client: httpx.Client) -> None:
    patient = uid("P")
    post(client, _admission(patient, "2026-02-01T09:00:00+08:00", "J18.9"))
    post(client, _discharge(patient, "2026-02-01T09:00:00+08:00", "2026-02-10T10:00:00+08:00", "J18.9"))
    answer = post(client, _admission(patient, "2026-02-20T09:00:00+08:00", "J18.0"))
    alert = next(a for a in answer["alerts"] if a["rule_id"] == "R22")
    assert any(e.get("institution_id") == "H1" for e in alert["evidence"])


def test_r22_silent_after_gap_or_unrelated_diagnosis(client: httpx.Client) -> None:
    patient = uid("P")
    post(client, _admission(patient, "2026-02-01T09:00:00+08:00", "J18.9"))
    post(client, _discharge(patient, "2026-02-01T09:00:00+08:00", "2026-02-10T10:00:00+08:00", "J18.9"))
    # unrelated main diagnosis 5 days later
    assert "R22" not in rule_ids(post(client, _admission(patient, "2026-02-15T09:00:00+08:00", "K35.8")))
    other = uid("P")
    post(client, _admission(other, "2026-02-01T09:00:00+08:00", "J18.9"))
    post(client, _discharge(other, "2026-02-01T09:00:00+08:00", "2026-02-10T10:00:00+08:00", "J18.9"))
    # related diagnosis but 20 days after discharge
    assert "R22" not in rule_ids(post(client, _admission(other, "2026-03-02T09:00:00+08:00", "J18.9")))


# -- idempotency, budget -----------------------------------------------------------
async def _audit_records(bootstrap: str, topic: str, decision_id: str, settle_s: float = 3.0) -> list[dict]:
    """Every record of the audit topic with this decision id (read from the start, until quiet)."""
    return [r for r in await read_audit(bootstrap, topic, settle_s) if r["decision_id"] == decision_id]


def test_retry_returns_same_decision_and_applies_once(stack: Stack, client: httpx.Client) -> None:
    patient = uid("P")
    body = event(patient=patient, items=[drug(ATORVASTATIN_A, 30, 30)])
    first = post(client, body)
    retry = post(client, body)
    assert retry["decision_id"] == first["decision_id"]
    assert retry["replayed"] is True and first["replayed"] is False
    assert retry["alerts"] == first["alerts"]
    # Applied once: one decision on the audit trail, however many times the HIS retried.
    records = asyncio.run(_audit_records(stack.bootstrap, stack.settings.decisions_topic, first["decision_id"]))
    assert len(records) == 1 and records[0]["event_id"] == body["event_id"]
    # The compliance trail keeps its contract (services.contracts.decision.AuditRecord).
    audit = AuditRecord.model_validate(records[0])
    assert audit.patient_id == patient and [a.alert_id for a in audit.alerts] == [a["alert_id"] for a in first["alerts"]]


def test_budget_exceeded_answers_timeout_and_decision_still_completes(client: httpx.Client) -> None:
    body = event(gender="F", diagnoses=[dx("N40")])
    r = client.post("/v1/events", json=body, params={"budget_ms": 1})
    assert r.status_code == 200
    answer = r.json()
    assert answer["engine_status"] == "timeout" and answer["alerts"] == []
    # The decision completed and was recorded: the retry is answered from it.
    later = post(client, body)
    assert later["decision_id"] == answer["decision_id"]
    assert later["replayed"] is True
    assert "R03" in rule_ids(later)


def test_metrics_exposed_without_patient_ids(client: httpx.Client) -> None:
    patient = uid("PATIENT-SECRET-")
    post(client, event(patient=patient, gender="F", diagnoses=[dx("N40")]))
    text = client.get("/metrics").text
    assert 'presettle_engine_status_total{engine_status="evaluated"}' in text
    assert 'presettle_http_request_duration_seconds_bucket{le="0.001",method="POST",route="/v1/events",status="200"}' in text
    assert patient not in text


# -- bad input, auth -------------------------------------------------------------
def test_missing_required_field_is_422_naming_it(client: httpx.Client) -> None:
    body = event()
    del body["patient"]["birth_date"]
    r = client.post("/v1/events", json=body)
    assert r.status_code == 422
    assert r.json()["field"] == "patient.birth_date"
    body = event()
    body["items"] = [{"line_id": "1", "code": "X", "kind": "drug", "quantity": "lots"}]
    r = client.post("/v1/events", json=body)
    assert r.status_code == 422 and r.json()["field"] == "items[0].quantity"


def test_malformed_json_and_bad_budget_are_422(client: httpx.Client) -> None:
    r = client.post("/v1/events", content=b'{"event_id": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body"
    r = client.post("/v1/events", json=event(), params={"budget_ms": 0})
    assert r.status_code == 422 and r.json()["field"] == "budget_ms"


def test_auth_missing_unknown_and_foreign_institution(stack: Stack) -> None:
    body = event(institution="H1")
    with httpx.Client(base_url=stack.url) as anon:
        assert anon.post("/v1/events", json=body).status_code == 401
        assert anon.post("/v1/events", json=body, headers={"X-API-Key": "not-a-key"}).status_code == 401
        r = anon.post("/v1/events", json=body, headers={"X-API-Key": "dev-key-h2"})
        assert r.status_code == 403 and r.json()["field"] == "institution.id"
