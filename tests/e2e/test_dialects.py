"""End to end, the vendors' dialects: NHSA 3101/3102/3103 and HL7 CDS Hooks on a running service.

Real HTTP → real broker → real worker process. Every test uses fresh patient ids. The
contract test sends ONE scenario through the native API, NHSA 3101 and CDS Hooks and
expects the same rule ids: three dialects, one engine.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from services.stack import Stack
from tests.conftest import E2E_PAASID, E2E_PAASID_SECRET
from tests.dialects import his_clients as his
from tests.dialects.fhir_stub import FhirStub, ehr_records, spec_order_sign_context
from tests.factories import uid

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
ATORVASTATIN_A = "XC10AAA067A001010101234"  # Pfizer (not volume-procured)
ATORVASTATIN_B = "XC10AAA067A001010104321"  # Jialin (volume-procured)
WAIT = {"budget_ms": 5000}  # generous: the machine is shared; the default budget is covered elsewhere


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def fresh(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    body = copy.deepcopy(body)
    patient = uid("P")
    body["input"]["data"]["patient_dtos"][0]["patn_id"] = patient
    return body, patient


def nhsa(client: httpx.Client, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    r = client.post(path, json=body, params={**WAIT, **params})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["infcode"] == 0, answer
    return answer


def rules(answer: dict[str, Any]) -> list[str]:
    if "output" in answer:
        return sorted(x["rule_id"] for x in answer["output"]["result"])
    if "cards" in answer:
        return sorted(c["source"]["topic"]["code"] for c in answer["cards"])
    return sorted(a["rule_id"] for a in answer["alerts"])


def feedback_total(client: httpx.Client, rule: str, outcome: str) -> float:
    """``presettle_feedback_total{rule_id=…, outcome=…}`` as the ingress exposes it on /metrics."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "presettle_feedback_total" and sample.labels == {"rule_id": rule, "outcome": outcome}:
                return sample.value
    return 0.0


def visit(patient: str, mdtrt: str, when: str, code: str, *, scene: str = "2", gend: str = "1",
          dx: str = "E78.500", history: list[dict[str, Any]] | None = None, infno: str = "3101") -> dict[str, Any]:
    """A minimal NHSA request: one patient, the current outpatient visit prescribing 30 days of ``code``."""
    return {
        "infno": infno, "msgid": uid("M"), "inf_time": f"{when} 09:00:00", "fixmedins_code": "H1",
        "input": {"data": {"task_id": uid("T"), "trig_scen": scene, "patient_dtos": [{
            "patn_id": patient, "gend": gend, "brdy": "1958-04-12", "curr_mdtrt_id": mdtrt,
            "fsi_encounter_dtos": [encounter(mdtrt, when, code, dx, current=True), *(history or [])],
        }]}},
    }


def encounter(mdtrt: str, when: str, code: str, dx: str = "E78.500", *, current: bool = False) -> dict[str, Any]:
    begin = f"{when} 09:00:00"
    stop = (date.fromisoformat(when) + timedelta(days=30)).isoformat()  # a 30-day supply
    enc: dict[str, Any] = {
        "mdtrt_id": mdtrt, "med_mdtrt_type": "1",
        "fsi_diagnose_dtos": [{"dise_codg": dx, "maindise_flag": "1"}],
        "fsi_order_dtos": [{"rx_id": f"{mdtrt}-1", "hilist_type": "101", "hilist_code": code, "cnt": 30,
                            "drord_begn_date": begin, "drord_stop_date": f"{stop} 09:00:00"}],
    }
    if not current:
        enc["adm_date"] = begin
    return enc


# -- 3101 / 3102 round trips -------------------------------------------------------------
def test_3101_example_round_trip_with_vendor_fields_and_history(client: httpx.Client) -> None:
    body, patient = fresh(example("nhsa-analysis.request.3101-outpatient.json"))
    first = nhsa(client, "/nhsa/3101", body)
    out = first["output"]
    r19 = next(x for x in out["result"] if x["rule_id"] == "R19")
    assert r19["patn_id"] == patient and r19["mdtrt_id"] == "MD20260311001" and r19["task_id"] == "T20260311093000001"
    assert "H2" in r19["vola_cont"] and "2026-03-01" in r19["vola_evid"]
    assert r19["judge_result_detail_dtos"][0]["rx_id"] == "RX20260311001-1"
    assert out["analyses"][0]["history_events"] == 1 and out["analyses"][0]["replayed"] is False
    again = nhsa(client, "/nhsa/3101", body)
    assert again["output"]["analyses"][0]["replayed"] is True
    assert [x["jr_id"] for x in again["output"]["result"]] == [x["jr_id"] for x in out["result"]]


def test_3102_example_split_admission_through_history_and_the_single_address(client: httpx.Client) -> None:
    body, patient = fresh(example("nhsa-analysis.request.3102-inpatient.json"))
    answer = nhsa(client, "/nhsa", body)
    r22 = next(x for x in answer["output"]["result"] if x["rule_id"] == "R22")
    assert r22["patn_id"] == patient and r22["mdtrt_id"] == "ZY20260220005"
    assert answer["output"]["analyses"][0]["history_events"] == 2  # admission + settlement of the earlier stay
    assert "R27" not in rules(answer)  # the long-term ceftriaxone order (02-20 → 02-27) runs through every bed day


def test_resent_history_is_not_double_counted(client: httpx.Client) -> None:
    """频繁购药 (R25) counts purchases of an ingredient per month: had re-sent history been counted again,
    four sends of the same request would already exceed the limit of 4."""
    patient = uid("P")
    earlier = encounter("MD-0301", "2026-03-01", ATORVASTATIN_A)
    request = visit(patient, "MD-0311", "2026-03-11", ATORVASTATIN_B, history=[earlier])
    answers = [nhsa(client, "/nhsa/3101", request) for _ in range(4)]
    assert all("R19" in rules(a) for a in answers)
    assert len({tuple(x["jr_id"] for x in a["output"]["result"]) for a in answers}) == 1
    # purchases this month: 03-01, 03-11 (2) → 03-12 is the 3rd, 03-13 the 4th: within the limit
    for day in ("12", "13"):
        later = visit(patient, f"MD-03{day}", f"2026-03-{day}", ATORVASTATIN_B, scene="6", infno="3102",
                      history=[earlier, encounter("MD-0311", "2026-03-11", ATORVASTATIN_B)])
        assert "R25" not in rules(nhsa(client, "/nhsa/3102", later))
    # ... and the 5th really is over it: the counter works, it was just not inflated
    fifth = visit(patient, "MD-0314", "2026-03-14", ATORVASTATIN_B, scene="6", infno="3102")
    assert "R25" in rules(nhsa(client, "/nhsa/3102", fifth))


def test_nhsa_errors_on_a_running_service(stack: Stack, client: httpx.Client) -> None:
    r = client.post("/nhsa/3101", content=b'{"infno": "3101", "input": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["infcode"] == -1 and r.json()["err_msg"].startswith("body:")
    body, _ = fresh(example("nhsa-analysis.request.3101-outpatient.json"))
    del body["input"]["data"]["patient_dtos"][0]["brdy"]
    r = client.post("/nhsa", json=body)
    assert r.status_code == 200 and r.json()["err_msg"].startswith("input.data.patient_dtos[0].brdy:")
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h2"}) as other:
        r = other.post("/nhsa/3101", json=example("nhsa-analysis.request.3101-outpatient.json"))
    assert r.status_code == 403 and r.json()["infcode"] == -1 and r.json()["err_msg"].startswith("fixmedins_code:")


# -- feedback ----------------------------------------------------------------------------
async def _feedback_records(bootstrap: str, topic: str, alert_ids: set[str], timeout_s: float = 15) -> list[dict]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    found: list[dict] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and {r["alert_id"] for r in found} != alert_ids:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for rec in records:
                    value = orjson.loads(rec.value)
                    if value.get("alert_id") in alert_ids:
                        assert rec.key == value["decision_id"].encode()
                        found.append(value)
    finally:
        await consumer.stop()
    return found


def test_3103_and_native_feedback_reach_the_topic_and_metrics(stack: Stack, client: httpx.Client) -> None:
    body, _ = fresh(example("nhsa-analysis.request.3101-outpatient.json"))
    [jr_id] = [x["jr_id"] for x in nhsa(client, "/nhsa/3101", body)["output"]["result"] if x["rule_id"] == "R19"]
    overridden, accepted = feedback_total(client, "R19", "overridden"), feedback_total(client, "R19", "accepted")
    fb = example("nhsa-feedback.request.3103.json")
    fb["input"]["data"]["warns"] = [{"warn_rslt_id": jr_id, "dspo_way": "1", "dspo_way_rea": "患者自备药已用完"}]
    answer = nhsa(client, "/nhsa/3103", fb)
    assert answer["output"]["warns"] == [{"warn_rslt_id": jr_id, "rule_id": "R19", "outcome": "overridden"}]
    r = client.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"})
    assert r.status_code == 200 and r.json()["decision_id"] == jr_id.split(".")[0]
    assert feedback_total(client, "R19", "overridden") == overridden + 1
    assert feedback_total(client, "R19", "accepted") == accepted + 1
    records = asyncio.run(_feedback_records(stack.bootstrap, stack.settings.feedback_topic, {jr_id}))
    assert sorted((r["dialect"], r["outcome"]) for r in records) == [("native", "accepted"), ("nhsa", "overridden")]
    assert all(r["rule_id"] == "R19" and r["institution_id"] == "H1" for r in records)
    bad = copy.deepcopy(fb)
    bad["input"]["data"]["warns"][0]["warn_rslt_id"] = "JR-NOT-OURS"
    r = client.post("/nhsa/3103", json=bad)
    assert r.json()["infcode"] == -1 and r.json()["err_msg"].startswith("input.data.warns[0].warn_rslt_id:")
    r = client.post("/v1/alerts/JR-NOT-OURS/feedback", json={"outcome": "accepted"})
    assert r.status_code == 422 and r.json()["field"] == "alert_id"


# -- CDS Hooks ---------------------------------------------------------------------------
def test_cds_discovery_order_sign_and_feedback(client: httpx.Client) -> None:
    services = client.get("/cds-services").json()["services"]
    assert {s["hook"] for s in services} == {"order-select", "order-sign"}
    body = example("cds-hook.request.order-sign.json")
    body["context"]["patientId"] = body["prefetch"]["patient"]["id"] = uid("P")
    r = client.post("/cds-services/presettle-order-sign", json=body, params=WAIT)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["extension"]["presettle"]["engine_status"] == "evaluated"
    card = next(c for c in answer["cards"] if c["source"]["topic"]["code"] == "R03")
    assert card["indicator"] == "critical" and len(card["summary"]) < 140 and "N40" in card["detail"]
    before = feedback_total(client, "R03", "overridden")
    fb = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-11T09:36:00+08:00",
                        "overrideReason": {"reason": {"system": "urn:presettle:override-reason", "code": "false-alert"},
                                           "userComment": "性别登记错误"}}]}
    r = client.post("/cds-services/presettle-order-sign/feedback", json=fb)
    assert r.status_code == 200, r.text
    assert feedback_total(client, "R03", "overridden") == before + 1
    select = example("cds-hook.request.order-select.json")
    select["context"]["patientId"] = select["prefetch"]["patient"]["id"] = uid("P")
    r = client.post("/cds-services/presettle-order-select", json=select, params=WAIT)
    assert r.status_code == 200 and r.json()["extension"]["presettle"]["engine_status"] == "evaluated"
    del select["prefetch"]["patient"]  # and no fhirServer to read it from: the spec's 412
    r = client.post("/cds-services/presettle-order-select", json=select)
    assert r.status_code == 412 and r.json()["field"] == "prefetch.patient"


# -- drop-in: the clients that exist, unchanged but for the URL ----------------------------------
def test_his_client_signed_3101_3102_and_3103_through_the_stack(stack: Stack) -> None:
    """Built and signed as public HIS integrations do, no X-API-Key and no task_id; checked as they check."""
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        def send(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = c.post(path, params=WAIT, content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                       headers=his.sign(E2E_PAASID, E2E_PAASID_SECRET))
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

        results = his.client_checks(send("/nhsa/3101", his.python_client_3101(uid("P"), uid("MD"))))
        assert {"R01", "R03"} <= {x["rule_id"] for x in results}
        in_process = his.client_checks(send("/nhsa", his.object_style_client("3102", uid("P"), uid("MD"), "7")))
        assert {"R01", "R03"} <= {x["rule_id"] for x in in_process}
        jr_ids = [x["jr_id"] for x in results]
        fb = send("/nhsa/3103", his.feedback_3103(jr_ids))
        assert isinstance(fb["infcode"], int) and fb["infcode"] == 0, fb
        assert [w["warn_rslt_id"] for w in fb["output"]["warns"]] == jr_ids
        replayed = his.sign(E2E_PAASID, E2E_PAASID_SECRET)
        for expected in (200, 401):  # the same nonce twice: the second is a replay
            r = c.post("/nhsa/3103", json=his.feedback_3103(jr_ids), headers=replayed)
            assert r.status_code == expected and isinstance(r.json()["infcode"], int), r.text
        assert "随机数已使用" in r.json()["err_msg"]


def test_cds_spec_order_sign_without_prefetch_reads_the_ehr_fhir_server(client: httpx.Client) -> None:
    ehr = FhirStub().start()
    try:
        pid = uid("P")
        ehr_records(ehr, pid)
        context = spec_order_sign_context()
        context["patientId"] = pid
        body = {"hook": "order-sign", "hookInstance": uid("hook-"), "fhirServer": ehr.url, "context": context,
                "fhirAuthorization": {"access_token": "opaque-token-e2e", "token_type": "Bearer", "expires_in": 300,
                                      "scope": "user/Patient.read user/Condition.read", "subject": "presettle"}}
        r = client.post("/cds-services/presettle-order-sign", json=body, params=WAIT)
        assert r.status_code == 200, r.text
        assert "R03" in [c["source"]["topic"]["code"] for c in r.json()["cards"]]
        assert {auth for _, auth in ehr.seen} == {"Bearer opaque-token-e2e"} and len(ehr.seen) == 3
        ehr.status[f"/fhir/Patient/{pid}"] = 404
        r = client.post("/cds-services/presettle-order-sign", json={**body, "hookInstance": uid("hook-")}, params=WAIT)
        assert r.status_code == 412 and r.json()["field"] == "prefetch.patient", r.text
    finally:
        ehr.stop()


# -- the contract: three dialects, one engine --------------------------------------------------
def _native(client: httpx.Client) -> list[str]:
    patient = uid("P")

    def ev(enc: str, when: str, code: str, dx: list[dict[str, Any]]) -> dict[str, Any]:
        return {"event_id": uid("ev-"), "scene": 2, "occurred_at": f"{when}T09:00:00+08:00", "institution": {"id": "H1"},
                "patient": {"id": patient, "gender": "F", "birth_date": "1958-04-12"},
                "encounter": {"id": enc, "type": "outpatient"}, "diagnoses": dx,
                "items": [{"line_id": "1", "code": code, "kind": "drug", "quantity": 30, "days_supply": 30}]}

    for body in (ev("E-prior", "2026-03-01", ATORVASTATIN_A, []),
                 ev("E-curr", "2026-03-11", ATORVASTATIN_B, [{"code": "N40", "main": True}])):
        r = client.post("/v1/events", json=body, params=WAIT)
        assert r.status_code == 200 and r.json()["engine_status"] == "evaluated", r.text
    return rules(r.json())


def _nhsa(client: httpx.Client) -> list[str]:
    prior = encounter("E-prior", "2026-03-01", ATORVASTATIN_A)
    prior["fsi_diagnose_dtos"] = []
    body = visit(uid("P"), "E-curr", "2026-03-11", ATORVASTATIN_B, gend="2", dx="N40", history=[prior])
    return rules(nhsa(client, "/nhsa/3101", body))


def _cds(client: httpx.Client) -> list[str]:
    patient = uid("P")

    def hook(enc: str, when: str, code: str, conditions: list[str]) -> dict[str, Any]:
        return {"hook": "order-sign", "hookInstance": uid("h-"),
                "context": {"patientId": patient, "encounterId": enc, "draftOrders": {
                    "resourceType": "Bundle", "entry": [{"resource": {
                        "resourceType": "MedicationRequest", "id": "1", "status": "draft", "intent": "order",
                        "authoredOn": f"{when}T09:00:00+08:00",
                        "medicationCodeableConcept": {"coding": [{"code": code}]},
                        "dispenseRequest": {"quantity": {"value": 30},
                                            "expectedSupplyDuration": {"value": 30, "code": "d"}}}}]}},
                "prefetch": {"patient": {"resourceType": "Patient", "id": patient, "gender": "female",
                                         "birthDate": "1958-04-12"},
                             "conditions": {"resourceType": "Bundle", "entry": [
                                 {"resource": {"resourceType": "Condition", "code": {"coding": [{"code": c}]}}}
                                 for c in conditions]}}}

    for body in (hook("E-prior", "2026-03-01", ATORVASTATIN_A, []), hook("E-curr", "2026-03-11", ATORVASTATIN_B, ["N40"])):
        r = client.post("/cds-services/presettle-order-sign", json=body, params=WAIT)
        assert r.status_code == 200 and r.json()["extension"]["presettle"]["engine_status"] == "evaluated", r.text
    return rules(r.json())


def test_contract_same_scenario_same_rule_ids_through_native_3101_and_cds_hooks(client: httpx.Client) -> None:
    """A woman with 前列腺增生 (N40, R03) gets atorvastatin 10 days into a 30-day supply of it (R19)."""
    native, national, cds = _native(client), _nhsa(client), _cds(client)
    assert {"R03", "R19"} <= set(native)
    assert national == native
    assert cds == native


def test_feedback_ownership_through_the_worker(stack: Stack, client: httpx.Client) -> None:
    """The worker's alert index: 404 for alerts not issued to the caller, a repeat counted once."""
    body, _ = fresh(example("nhsa-analysis.request.3101-outpatient.json"))
    [jr_id] = [x["jr_id"] for x in nhsa(client, "/nhsa/3101", body)["output"]["result"] if x["rule_id"] == "R19"]
    accepted = feedback_total(client, "R19", "accepted")
    never = "d-0a1b2c3d4e5f60718293.R19.1"
    r = client.post(f"/v1/alerts/{never}/feedback", json={"outcome": "accepted"})
    assert r.status_code == 404 and r.json()["field"] == "alert_id"
    r = client.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"}, headers={"X-API-Key": "dev-key-h2"})
    assert r.status_code == 404
    first = client.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"})
    again = client.post(f"/v1/alerts/{jr_id}/feedback", json={"outcome": "accepted"})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert feedback_total(client, "R19", "accepted") == accepted + 1
    records = asyncio.run(_feedback_records(stack.bootstrap, stack.settings.feedback_topic, {jr_id}))
    assert [r["outcome"] for r in records] == ["accepted"], "written once"
