"""CDS Hooks order-select / order-sign → native event; alerts → cards; feedback. Pure, no broker."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest

from services.contracts.decision import Alert, Decision
from services.dialects import cds
from services.dialects.common import CST
from services.dialects.exceptions import MappingError
from tests.dialects.conftest import example

SIGN = "cds-hook.request.order-sign.json"
SELECT = "cds-hook.request.order-select.json"
NOW = datetime(2026, 3, 20, 8, 0, tzinfo=CST)


def plan(body: dict[str, Any], service: str = "presettle-order-sign", inst: str = "H1") -> cds.HookPlan:
    return cds.plan_hook(cds.CdsHookRequest.model_validate(body), service, inst, NOW)


def field_of(body: dict[str, Any], service: str = "presettle-order-sign") -> str:
    with pytest.raises(MappingError) as info:
        plan(body, service)
    return info.value.field


def test_order_sign_maps_patient_encounter_orders_and_conditions() -> None:
    ev = plan(example(SIGN)).event.to_wire()
    assert ev["scene"] == 2 and ev["occurred_at"] == "2026-03-11T09:20:00+08:00"  # authoredOn
    assert ev["institution"]["id"] == "H1"  # the API key's institution
    assert ev["patient"]["id"] == "P330100000003" and ev["patient"]["gender"] == "F"
    assert ev["patient"]["birth_date"] == "1958-04-12"
    assert ev["encounter"] == {"id": "MD20260311009", "type": "outpatient", "med_type": None, "admitted_at": None,
                               "discharged_at": None, "department": None, "doctor_id": "D0012"}  # Practitioner/D0012
    # the active condition first (main), then the order's reasonCode; the resolved J18.9 is left out
    assert [(d["code"], d["main"]) for d in ev["diagnoses"]] == [("N40", True), ("E78.500", False)]
    [item] = ev["items"]
    assert (item["line_id"], item["code"], item["kind"], item["quantity"], item["days_supply"]) == \
        ("mr-1", "XC10AAA067A001010104321", "drug", 30, 30)


def test_the_ordering_practitioner_is_the_encounter_doctor_and_not_part_of_the_event_id() -> None:
    body = example(SIGN)
    signed = plan(copy.deepcopy(body)).event
    assert signed.encounter.doctor_id == "D0012"  # R43 checks its 医保支付资格
    body["context"]["userId"] = "PractitionerRole/123"  # not a practitioner's own id: no doctor
    other = plan(body).event
    assert other.encounter.doctor_id is None
    assert other.event_id == signed.event_id  # the same order: a retry, whoever signs it


def test_a_discharge_medication_request_is_take_home() -> None:
    """medicationrequest-category 'discharge' (出院带药) → take_home: it enters the supply ledger."""
    body = example(SIGN)
    assert plan(copy.deepcopy(body)).event.items[0].take_home is False
    body["context"]["draftOrders"]["entry"][0]["resource"]["category"] = [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "discharge"}]}]
    assert plan(body).event.items[0].take_home is True


def test_order_select_reads_contained_medication_services_and_ignores_other_resources() -> None:
    ev = plan(example(SELECT), "presettle-order-select").event
    assert [(i.line_id, i.code, i.kind.value, i.quantity, i.days_supply) for i in ev.items] == [
        ("mr-7", "XB01ACA056A001010100217", "drug", 28, 28),  # 4 wk
        ("sr-1", "002501010150000", "service", 1, None),
    ]
    assert ev.patient.birth_date.isoformat() == "1949-01-01"  # partial birthDate "1949"
    assert ev.patient.gender.value == "M" and ev.encounter.type.value == "outpatient" and ev.scene == 2


def test_inpatient_encounter_in_prefetch_is_scene_5() -> None:
    body = example(SELECT)
    body["prefetch"]["encounter"]["class"] = {"code": "IMP"}
    body["prefetch"]["encounter"]["period"] = {"start": "2026-03-10T08:00:00+08:00"}
    ev = plan(body, "presettle-order-select").event
    assert ev.scene == 5 and ev.encounter.type.value == "inpatient"
    assert ev.encounter.admitted_at.isoformat() == "2026-03-10T08:00:00+08:00"


def test_without_authored_on_or_encounter_id_the_request_time_and_day_are_used() -> None:
    body = example(SIGN)
    del body["context"]["encounterId"]
    del body["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"]
    ev = plan(body).event
    assert ev.occurred_at == NOW and ev.encounter.id == "P330100000003-20260320"


def test_event_id_is_a_digest_of_the_facts() -> None:
    a = plan(example(SIGN)).event.event_id
    body = example(SIGN)
    body["hookInstance"] = "another-instance"
    assert plan(body).event.event_id == a  # a retry of the same orders is the same event
    body["context"]["draftOrders"]["entry"][0]["resource"]["dispenseRequest"]["quantity"]["value"] = 60
    assert plan(body).event.event_id != a


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b["prefetch"].pop("patient"), "prefetch.patient"),
    (lambda b: b["prefetch"]["patient"].pop("birthDate"), "prefetch.patient.birthDate"),
    (lambda b: b["prefetch"]["patient"].update(birthDate="1958-02-30"), "prefetch.patient.birthDate"),
    (lambda b: b["prefetch"]["patient"].update(gender="F"), "prefetch.patient.gender"),
    (lambda b: b["prefetch"]["patient"].update(id="someone-else"), "prefetch.patient.id"),
    (lambda b: b.update(hook="patient-view"), "hook"),
    (lambda b: b["context"]["draftOrders"]["entry"][0]["resource"]["dispenseRequest"].pop("quantity"),
     "context.draftOrders.entry[0].resource.dispenseRequest.quantity.value"),
    (lambda b: b["context"]["draftOrders"]["entry"][0]["resource"]["dispenseRequest"]["quantity"].update(value=0),
     "context.draftOrders.entry[0].resource.dispenseRequest.quantity.value"),
    (lambda b: b["context"]["draftOrders"]["entry"][0]["resource"].pop("medicationCodeableConcept"),
     "context.draftOrders.entry[0].resource.medicationCodeableConcept.coding[0].code"),
    (lambda b: b["context"]["draftOrders"]["entry"][0]["resource"].update(authoredOn="yesterday"),
     "context.draftOrders.entry[0].resource.authoredOn"),
])
def test_a_bad_or_missing_field_is_named(mutate: Any, field: str) -> None:
    body = example(SIGN)
    mutate(body)
    assert field_of(body) == field


def _alert(**kw: Any) -> Alert:
    base = {"alert_id": "d-0a1b2c3d4e5f60718293.R19.1", "rule_id": "R19", "rule_version": "1.0.0",
            "gz_code": "GZ10000301006", "name_zh": "重复开药", "name_en": "Duplicate prescription",
            "result_type": "suspicious", "indicator": "warning", "severity": "W",
            "message_zh": "重复开药：" + "阿托伐他汀钙片与2026-03-01在H2开具的阿托伐他汀钙片成分相同" * 4,
            "message_en": "Duplicate prescription: " + "same ingredient " * 20, "line_ids": ["mr-1"],
            "amount": 3.9, "evidence": [{"kind": "event", "event_id": "e1", "institution_id": "H2",
                                         "date": "2026-03-01", "item_name": "阿托伐他汀钙片", "quantity": 30,
                                         "days_supply": 30}], "policy_basis": "《条例》第十五条",
            "region": "default"}
    base.update(kw)
    return Alert.model_validate(base)


def test_alert_becomes_a_card_whose_uuid_is_the_alert_id() -> None:
    c = cds.card(_alert())
    cds.Card.model_validate(c)
    assert c["uuid"] == "d-0a1b2c3d4e5f60718293.R19.1" and c["indicator"] == "warning"
    assert len(c["summary"]) <= 139 and c["summary"].endswith("…") and c["summary"].startswith("R19 重复开药 / ")
    assert "Duplicate prescription" in c["detail"] and "2026-03-01 H2 阿托伐他汀钙片" in c["detail"]
    assert c["source"]["label"] == "PreSettle" and c["source"]["topic"]["code"] == "R19"
    assert {r["code"] for r in c["overrideReasons"]} >= {"clinical-need", "false-alert"}
    short = cds.card(_alert(message_zh="短", indicator=None, severity="C"))
    assert not short["summary"].endswith("…") and short["indicator"] == "critical"


def _D(status: str, alerts: list[Alert]) -> Decision:
    return Decision(engine_status=status, alerts=alerts, detail=None, replayed=False,  # type: ignore[arg-type]
                    decision_id="d-0a1b2c3d4e5f60718293", event_id="cds-2-x", latency_ms=4.2)


def test_hook_response_cards_and_a_status_card_when_not_evaluated() -> None:
    out = cds.hook_response(_D("evaluated", [_alert()]))
    cds.CdsHookResponse.model_validate(out)
    assert [c["uuid"] for c in out["cards"]] == ["d-0a1b2c3d4e5f60718293.R19.1"]
    assert out["extension"]["presettle"]["engine_status"] == "evaluated"
    out = cds.hook_response(_D("timeout", [_alert()]))
    [status] = out["cards"]
    assert "uuid" not in status and status["indicator"] == "info" and "review not completed" in status["summary"]


def test_discovery_lists_both_services() -> None:
    doc = cds.discovery()
    cds.CdsDiscovery.model_validate(doc)
    assert {(s["id"], s["hook"]) for s in doc["services"]} == {
        ("presettle-order-select", "order-select"), ("presettle-order-sign", "order-sign")}
    assert all(s["prefetch"]["patient"] == "Patient/{{context.patientId}}" for s in doc["services"])


def test_feedback_records_carry_outcome_reason_and_join() -> None:
    req = cds.CdsFeedbackRequest.model_validate(example("cds-feedback.request.override.json"))
    recs = cds.feedback_records(req, "presettle-order-sign", "H1", NOW)
    assert [(r["rule_id"], r["outcome"], r["reason_code"]) for r in recs] == [
        ("R19", "overridden", "clinical-need"), ("R03", "accepted", None)]
    assert recs[0]["reason"] == "上次处方药品已遗失" and recs[0]["decision_id"] == "d-0a1b2c3d4e5f60718293"
    assert recs[0]["dialect"] == "cds" and recs[0]["source_ref"] == "presettle-order-sign"
    body = copy.deepcopy(example("cds-feedback.request.override.json"))
    body["feedback"][1]["card"] = "not-ours"
    with pytest.raises(MappingError) as info:
        cds.feedback_records(cds.CdsFeedbackRequest.model_validate(body), "presettle-order-sign", "H1", NOW)
    assert info.value.field == "feedback[1].card"
