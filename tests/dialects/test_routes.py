"""The dialect routers on the real ingress app, with the real engine in-process instead of a broker.

Fast checks of every answer shape (envelopes, 4xx, never a 500); the same paths run
through a real broker and worker in tests/e2e/test_dialects.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from prometheus_client import REGISTRY

from services import schemagen as api_schemas
from tests.dialects.conftest import App, InProcessEngine, example
from tests.factories import uid

OUTPATIENT = "nhsa-analysis.request.3101-outpatient.json"
INPATIENT = "nhsa-analysis.request.3102-inpatient.json"
FEEDBACK = "nhsa-feedback.request.3103.json"
SIGN = "cds-hook.request.order-sign.json"


def schema(name: str) -> dict[str, Any]:
    return json.loads((api_schemas.API_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def fresh(body: dict[str, Any]) -> dict[str, Any]:
    """The example with a fresh patient id (each test its own patient)."""
    body = copy.deepcopy(body)
    for p in body["input"]["data"]["patient_dtos"]:
        p["patn_id"] = uid("P")
    return body


def feedback_count(rule: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("presettle_feedback_total", {"rule_id": rule, "outcome": outcome}) or 0.0


# -- NHSA 3101 / 3102 -------------------------------------------------------------------
def test_3101_round_trip_with_history_and_vendor_fields(api: App) -> None:
    body = fresh(example(OUTPATIENT))
    r = api.post("/nhsa/3101", json=body)
    assert r.status_code == 200
    answer = r.json()
    jsonschema.validate(answer, schema("nhsa-analysis.response"))
    assert answer["infcode"] == 0 and answer["err_msg"] is None
    out = answer["output"]
    assert out["task_id"] == "T20260311093000001" and out["engine_status"] == "evaluated"
    r19 = next(x for x in out["result"] if x["rule_id"] == "R19")
    assert r19["patn_id"] == body["input"]["data"]["patient_dtos"][0]["patn_id"]
    assert r19["mdtrt_id"] == "MD20260311001" and r19["judge_result_detail_dtos"][0]["rx_id"] == "RX20260311001-1"
    assert out["analyses"][0]["history_events"] == 1 and out["analyses"][0]["replayed"] is False
    again = api.post("/nhsa/3101", json=body).json()
    assert again["infcode"] == 0 and again["output"]["analyses"][0]["replayed"] is True
    assert [x["jr_id"] for x in again["output"]["result"]] == [x["jr_id"] for x in out["result"]]


def test_3102_and_the_single_address_dispatch_on_infno(api: App) -> None:
    body = fresh(example(INPATIENT))
    answer = api.post("/nhsa", json=body).json()
    assert answer["infcode"] == 0, answer
    assert "R22" in [x["rule_id"] for x in answer["output"]["result"]]
    assert answer["output"]["analyses"][0]["history_events"] == 2


def test_several_patients_are_analysed_in_one_request(api: App) -> None:
    body = fresh(example(OUTPATIENT))
    second = copy.deepcopy(body["input"]["data"]["patient_dtos"][0])
    second["patn_id"], second["gend"] = uid("P"), "2"
    second["fsi_encounter_dtos"][0]["fsi_diagnose_dtos"].append({"dise_codg": "N40", "dise_name": "前列腺增生"})
    body["input"]["data"]["patient_dtos"].append(second)
    out = api.post("/nhsa/3101", json=body).json()["output"]
    by_patient = {(x["patn_id"], x["rule_id"]) for x in out["result"]}
    assert (second["patn_id"], "R03") in by_patient and (second["patn_id"], "R19") in by_patient
    assert (body["input"]["data"]["patient_dtos"][0]["patn_id"], "R03") not in by_patient
    assert len(out["analyses"]) == 2


def test_rule_ids_filter_the_results(api: App) -> None:
    body = fresh(example(OUTPATIENT))
    body["input"]["data"]["rule_ids"] = ["R03"]
    assert api.post("/nhsa/3101", json=body).json()["output"]["result"] == []


@pytest.mark.parametrize(("send", "field"), [
    (lambda api: api.post("/nhsa/3101", content=b'{"infno": "3101", ', headers={"Content-Type": "application/json"}),
     "body"),
    (lambda api: api.post("/nhsa", content=b"not json"), "body"),
    (lambda api: api.post("/nhsa", json={"msgid": "m"}), "infno"),
    (lambda api: api.post("/nhsa", json={**example(OUTPATIENT), "infno": "9999"}), "infno"),
    (lambda api: api.post("/nhsa/3102", json=example(OUTPATIENT)), "infno"),
    (lambda api: api.post("/nhsa/3101", json=example(OUTPATIENT), params={"budget_ms": 0}), "budget_ms"),
    (lambda api: api.post("/nhsa/3101", json=[1, 2]), "body"),
])
def test_bad_requests_answer_infcode_minus_1_naming_the_field(api: App, send: Any, field: str) -> None:
    r = send(api)
    assert r.status_code == 200
    answer = r.json()
    jsonschema.validate(answer, schema("nhsa-error.response"))
    assert answer["infcode"] == -1 and answer["err_msg"].startswith(f"{field}:"), answer


def test_missing_field_names_it_through_both_addresses(api: App) -> None:
    body = example(OUTPATIENT)
    del body["input"]["data"]["patient_dtos"][0]["gend"]
    for path in ("/nhsa/3101", "/nhsa"):
        answer = api.post(path, json=body).json()
        assert answer["infcode"] == -1
        assert answer["err_msg"].startswith("input.data.patient_dtos[0].gend:"), answer


def test_auth_401_and_foreign_institution_403_in_the_envelope(api: App) -> None:
    r = api.post("/nhsa/3101", json=example(OUTPATIENT), headers={"X-API-Key": ""})
    assert r.status_code == 401 and r.json()["infcode"] == -1 and "X-API-Key" in r.json()["err_msg"]
    r = api.post("/nhsa/3101", json=example(OUTPATIENT), headers={"X-API-Key": "dev-key-h2"})
    assert r.status_code == 403 and r.json()["infcode"] == -1 and r.json()["err_msg"].startswith("fixmedins_code:")


def test_engine_timeout_and_unavailable_are_infcode_minus_1_never_an_empty_success(
    api: App, fake: InProcessEngine
) -> None:
    body = fresh(example(OUTPATIENT))
    fake.answer = "timeout"
    answer = api.post("/nhsa/3101", json=body).json()
    assert answer["infcode"] == -1 and "timeout" in answer["err_msg"]
    assert answer["output"]["engine_status"] == "timeout" and answer["output"]["result"] == []
    fake.answer = "evaluated"
    retry = api.post("/nhsa/3101", json=body).json()  # the decision completed: the retry gets it
    assert retry["infcode"] == 0 and retry["output"]["analyses"][0]["replayed"] is True
    assert "R19" in [x["rule_id"] for x in retry["output"]["result"]]
    fake.available = False
    answer = api.post("/nhsa/3101", json=fresh(example(OUTPATIENT))).json()
    assert answer["infcode"] == -1 and "unavailable" in answer["err_msg"]


def test_an_internal_error_is_never_a_500(api: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.dialects import nhsa

    monkeypatch.setattr(nhsa, "plan_analysis", lambda req: 1 / 0)
    r = api.post("/nhsa/3101", json=example(OUTPATIENT))
    assert r.status_code == 200 and r.json()["infcode"] == -1 and "ZeroDivisionError" in r.json()["err_msg"]


# -- 3103 and native feedback --------------------------------------------------------------
def _jr_ids(api: App) -> list[str]:
    out = api.post("/nhsa/3101", json=fresh(example(OUTPATIENT))).json()["output"]
    return [x["jr_id"] for x in out["result"] if x["rule_id"] == "R19"]


def test_3103_feedback_is_written_joined_and_counted(api: App, fake: InProcessEngine) -> None:
    [jr_id] = _jr_ids(api)
    body = example(FEEDBACK)
    body["input"]["data"]["warns"] = [{"warn_rslt_id": jr_id, "dspo_way": "1", "dspo_way_rea": "患者自备药已用完"}]
    before = feedback_count("R19", "overridden")
    answer = api.post("/nhsa/3103", json=body).json()
    jsonschema.validate(answer, schema("nhsa-feedback.response"))
    assert answer["infcode"] == 0 and answer["output"]["warns"][0]["outcome"] == "overridden"
    assert feedback_count("R19", "overridden") == before + 1
    [(topic, key, rec)] = [p for p in fake.published if p[0].endswith(".feedback")]
    jsonschema.validate(rec, schema("feedback-record"))
    assert key == jr_id.split(".")[0].encode() and rec["decision_id"] == jr_id.split(".")[0]
    assert rec["alert_id"] == jr_id and rec["reason"] == "患者自备药已用完" and rec["institution_id"] == "H1"
    body["input"]["data"]["warns"] = [{"warn_rslt_id": jr_id, "dspo_way": 2}]
    accepted = feedback_count("R19", "accepted")
    assert api.post("/nhsa", json=body).json()["infcode"] == 0  # 3103 through the single address
    assert feedback_count("R19", "accepted") == accepted + 1
    assert [p[2]["outcome"] for p in fake.published if p[0].endswith(".feedback")] == ["overridden", "accepted"]


def test_3103_refuses_foreign_jr_ids_and_writes_nothing(api: App, fake: InProcessEngine) -> None:
    body = example(FEEDBACK)
    body["input"]["data"]["warns"][1]["warn_rslt_id"] = "330100-JR-0001"
    answer = api.post("/nhsa/3103", json=body).json()
    assert answer["infcode"] == -1 and answer["err_msg"].startswith("input.data.warns[1].warn_rslt_id:")
    assert fake.published == []
    body = example(FEEDBACK)
    body["input"]["data"]["warns"][0]["warn_rslt_id"] = "d-0a1b2c3d4e5f60718293.R999.1"  # no such rule
    assert api.post("/nhsa/3103", json=body).json()["err_msg"].startswith("input.data.warns[0].warn_rslt_id:")
    fake.available = False
    answer = api.post("/nhsa/3103", json=example(FEEDBACK)).json()
    assert answer["infcode"] == -1 and "not recorded" in answer["err_msg"]


def test_native_feedback(api: App, fake: InProcessEngine) -> None:
    [jr_id] = _jr_ids(api)
    before = feedback_count("R19", "accepted")
    r = api.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"})
    assert r.status_code == 200, r.text
    jsonschema.validate(r.json(), schema("native-feedback.response"))
    assert r.json()["rule_id"] == "R19" and feedback_count("R19", "accepted") == before + 1
    r = api.post("/v1/alerts/not-an-alert/feedback", json={"outcome": "accepted"})
    assert r.status_code == 422 and r.json()["field"] == "alert_id"
    jsonschema.validate(r.json(), schema("native-error.response"))
    r = api.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "overridden"})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    assert api.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"},
                    headers={"X-API-Key": ""}).status_code == 401
    fake.available = False
    r = api.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"})
    assert r.status_code == 503 and r.json()["error"] == "unavailable"


def test_accepted_feedback_withdraws_the_alerts_lines_from_the_ledger(api: App, fake: InProcessEngine) -> None:
    """返回修改: the doctor changed the duplicate prescription after R19 warned, so that supply never
    happened — the next prescription is judged against the first supply alone."""
    from tests.factories import drug, event

    pid = uid("P")
    ator = "XC10AAA067A001010104321"

    def send(eid: str, day: str) -> dict[str, Any]:
        body = event(patient=pid, event_id=eid, occurred_at=f"{day}T09:00:00+08:00", items=[drug(ator, 30, 30)])
        r = api.post("/v1/events", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    send(f"{pid}-1", "2026-03-01")
    [r19] = [a for a in send(f"{pid}-2", "2026-03-15")["alerts"] if a["rule_id"] == "R19"]
    r = api.post(f"/v1/alerts/{r19['alert_id']}/feedback", json={"outcome": "accepted"})
    assert r.status_code == 200, r.text
    assert len(fake.withdrawals) == 1
    [again] = [a for a in send(f"{pid}-3", "2026-03-17")["alerts"] if a["rule_id"] == "R19"]
    # only the first supply is held (16 − 2 = 14 days); without the withdrawal 44 days from two supplies
    assert [e["event_id"] for e in again["evidence"] if e["kind"] == "event"] == [f"{pid}-1"]
    assert "尚余14天" in again["message_zh"]
    # the same feedback again is a duplicate: nothing is withdrawn twice
    assert api.post(f"/v1/alerts/{r19['alert_id']}/feedback", json={"outcome": "accepted"}).status_code == 200
    assert len(fake.withdrawals) == 1


# -- CDS Hooks ---------------------------------------------------------------------------
def test_cds_discovery_is_public(api: App) -> None:
    r = api.get("/cds-services", headers={"X-API-Key": ""})
    assert r.status_code == 200
    jsonschema.validate(r.json(), schema("cds-discovery.response"))
    assert {s["id"] for s in r.json()["services"]} == {"presettle-order-select", "presettle-order-sign"}


def test_cds_order_sign_cards_and_feedback(api: App, fake: InProcessEngine) -> None:
    body = example(SIGN)
    pid = uid("P")
    body["context"]["patientId"] = body["prefetch"]["patient"]["id"] = pid
    r = api.post("/cds-services/presettle-order-sign", json=body)
    assert r.status_code == 200, r.text
    jsonschema.validate(r.json(), schema("cds-hook.response"))
    cards = r.json()["cards"]
    r03 = next(c for c in cards if c["source"]["topic"]["code"] == "R03")
    assert r03["indicator"] == "critical" and r03["uuid"].split(".")[1] == "R03" and len(r03["summary"]) < 140
    before = feedback_count("R03", "overridden")
    fb = {"feedback": [{"card": r03["uuid"], "outcome": "overridden",
                        "overrideReason": {"reason": {"code": "false-alert", "system": "urn:presettle:override-reason"},
                                           "userComment": "性别登记错误"},
                        "outcomeTimestamp": "2026-03-11T09:36:00+08:00"}]}
    r = api.post("/cds-services/presettle-order-sign/feedback", json=fb)
    assert r.status_code == 200, r.text
    jsonschema.validate(r.json(), schema("cds-feedback.response"))
    assert feedback_count("R03", "overridden") == before + 1
    rec = [p[2] for p in fake.published if p[0].endswith(".feedback")][-1]
    assert rec["reason"] == "性别登记错误" and rec["reason_code"] == "false-alert" and rec["dialect"] == "cds"


def test_cds_errors_are_native_shaped(api: App) -> None:
    body = example(SIGN)
    del body["prefetch"]["patient"]["birthDate"]
    r = api.post("/cds-services/presettle-order-sign", json=body)
    assert r.status_code == 422 and r.json()["field"] == "prefetch.patient.birthDate"
    jsonschema.validate(r.json(), schema("native-error.response"))
    r = api.post("/cds-services/presettle-order-select", json=example(SIGN))
    assert r.status_code == 422 and r.json()["field"] == "hook"
    body = example(SIGN)
    del body["context"]["patientId"]
    r = api.post("/cds-services/presettle-order-sign", json=body)
    assert r.status_code == 422 and r.json()["field"] == "context.patientId"
    assert api.post("/cds-services/nope", json=example(SIGN)).status_code == 404
    assert api.post("/cds-services/presettle-order-sign", json=example(SIGN),
                    headers={"X-API-Key": ""}).status_code == 401
    r = api.post("/cds-services/presettle-order-sign/feedback", json={"feedback": [{"card": "x", "outcome": "accepted"}]})
    assert r.status_code == 422 and r.json()["field"] == "feedback[0].card"


# -- one engine ---------------------------------------------------------------------------
def test_openapi_documents_every_endpoint(api: App) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path, method in (("/nhsa/3101", "post"), ("/nhsa/3102", "post"), ("/nhsa/3103", "post"), ("/nhsa", "post"),
                         ("/cds-services", "get"), ("/cds-services/{service_id}", "post"),
                         ("/cds-services/{service_id}/feedback", "post"), ("/v1/alerts/{alert_id}/feedback", "post"),
                         ("/v1/events", "post")):
        assert method in paths[path], path
    body = paths["/nhsa"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/NhsaFeedbackRequest"} in body["oneOf"]


@pytest.mark.parametrize("mutate", [
    lambda b: b["context"]["draftOrders"]["entry"][0]["resource"]["dispenseRequest"]["expectedSupplyDuration"]
    .update(value=1e308, unit="mo"),
    lambda b: b["prefetch"].update(conditions={"resourceType": "Bundle", "entry": 5}),
    lambda b: b["prefetch"].update(encounter={"resourceType": "Encounter", "class": 5, "period": "2026"}),
])
def test_cds_unexpected_fhir_shapes_are_never_a_500(api: App, mutate) -> None:
    body = copy.deepcopy(example(SIGN))
    mutate(body)
    r = api.post("/cds-services/presettle-order-sign", json=body)
    assert r.status_code in (200, 422), r.text  # read as unknown, or refused naming the field
    if r.status_code == 422:
        assert r.json()["error"] == "invalid_request" and r.json()["field"]


# -- feedback ownership: only alerts issued to the caller's institution, once per alert and outcome --
def test_feedback_on_alerts_never_issued_or_issued_to_another_institution_is_404(api: App, fake: InProcessEngine) -> None:
    [jr_id] = _jr_ids(api)
    before = feedback_count("R19", "accepted")
    never = "d-0a1b2c3d4e5f60718293.R19.1"  # well formed, names a real rule, never issued
    r = api.post(f"/v1/alerts/{never}/feedback", json={"outcome": "accepted"})
    assert r.status_code == 404 and r.json()["error"] == "not_found" and r.json()["field"] == "alert_id"
    # H1's alert, H2's key: the same answer as for an alert that never existed.
    r = api.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"}, headers={"X-API-Key": "dev-key-h2"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    sibling = jr_id.rsplit(".", 1)[0] + ".9"  # the decision exists; that alert number does not
    assert api.post(f"/v1/alerts/{sibling}/feedback", json={"outcome": "accepted"}).status_code == 404
    body = example(FEEDBACK)
    body["input"]["data"]["warns"] = [{"warn_rslt_id": jr_id, "dspo_way": 2},
                                      {"warn_rslt_id": never, "dspo_way": 2}]
    r = api.post("/nhsa/3103", json=body)
    assert r.status_code == 404 and r.json()["infcode"] == -1
    assert r.json()["err_msg"].startswith("input.data.warns[1].warn_rslt_id:")
    r = api.post("/cds-services/presettle-order-sign/feedback", json={"feedback": [{"card": never, "outcome": "accepted"}]})
    assert r.status_code == 404 and r.json()["field"] == "feedback[0].card"
    # Only the one valid warn of the 3103 request was recorded and counted.
    assert feedback_count("R19", "accepted") == before + 1
    assert [p[2]["alert_id"] for p in fake.published if p[0].endswith(".feedback")] == [jr_id]


def test_feedback_is_counted_once_per_alert_and_outcome(api: App, fake: InProcessEngine) -> None:
    [jr_id] = _jr_ids(api)
    accepted, overridden = feedback_count("R19", "accepted"), feedback_count("R19", "overridden")
    first = api.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"})
    again = api.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"})
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    body = example(FEEDBACK)
    body["input"]["data"]["warns"] = [{"warn_rslt_id": jr_id, "dspo_way": 2}]
    assert api.post("/nhsa/3103", json=body).json()["infcode"] == 0  # the same outcome from another dialect
    assert feedback_count("R19", "accepted") == accepted + 1
    # Another outcome on the same alert is new feedback (the doctor changed their mind).
    r = api.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "overridden", "reason": "患者坚持"})
    assert r.status_code == 200 and r.json()["duplicate"] is False
    assert feedback_count("R19", "overridden") == overridden + 1
    outcomes = [p[2]["outcome"] for p in fake.published if p[0].endswith(".feedback")]
    assert outcomes == ["accepted", "overridden"]
