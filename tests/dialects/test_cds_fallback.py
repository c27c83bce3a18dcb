"""CDS Hooks prefetch fallback: what the client did not prefetch is read from its fhirServer.

The specification's own order-sign example, sent as a CDS client would (fhirServer and
fhirAuthorization, no prefetch), against a FHIR stub on 127.0.0.1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.settings import load_settings
from services.ingress.cds import _fhir_allowed
from tests.dialects.conftest import App, InProcessEngine
from tests.dialects.fhir_stub import FhirStub, ehr_records, spec_order_sign_context

SIGN = "/cds-services/presettle-order-sign"


@pytest.fixture
def ehr() -> Iterator[FhirStub]:
    stub = FhirStub().start()
    yield stub
    stub.stop()


def hook_call(fhir_server: str | None, patient_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"hook": "order-sign", "hookInstance": str(uuid.uuid4()),
                            "context": spec_order_sign_context()}
    if patient_id:
        body["context"]["patientId"] = patient_id
    if fhir_server:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {"access_token": "some-opaque-fhir-access-token", "token_type": "Bearer",
                                     "expires_in": 300, "scope": "user/Patient.read user/Condition.read",
                                     "subject": "cds-service"}
    return body


def test_spec_order_sign_without_prefetch_reads_fhir_server_and_gets_cards(api: App, ehr: FhirStub) -> None:
    pid = f"P{uuid.uuid4().hex[:10]}"
    ehr_records(ehr, pid)
    r = api.post(SIGN, json=hook_call(ehr.url, pid))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["extension"]["presettle"]["engine_status"] == "evaluated"
    assert "R03" in [c["source"]["topic"]["code"] for c in answer["cards"]]
    paths = sorted(p for p, _ in ehr.seen)
    assert paths == sorted([f"/fhir/Patient/{pid}", f"/fhir/Condition?patient={pid}&clinical-status=active",
                            "/fhir/Encounter/89284"])
    assert {auth for _, auth in ehr.seen} == {"Bearer some-opaque-fhir-access-token"}


def test_only_the_missing_items_are_read(api: App, ehr: FhirStub) -> None:
    pid = f"P{uuid.uuid4().hex[:10]}"
    ehr_records(ehr, pid)
    body = hook_call(ehr.url, pid)
    body["prefetch"] = {"patient": {"resourceType": "Patient", "id": pid, "gender": "male", "birthDate": "1960-01-01"}}
    r = api.post(SIGN, json=body)
    assert r.status_code == 200, r.text
    assert f"/fhir/Patient/{pid}" not in [p for p, _ in ehr.seen] and len(ehr.seen) == 2
    assert "R03" not in [c["source"]["topic"]["code"] for c in r.json()["cards"]]  # male: N40 fits


@pytest.mark.parametrize("break_it, field, words", [
    (lambda ehr, pid: ehr.status.update({f"/fhir/Patient/{pid}": 404}), "prefetch.patient", "HTTP 404"),
    (lambda ehr, pid: ehr.status.update({f"/fhir/Condition?patient={pid}&clinical-status=active": 500}),
     "prefetch.conditions", "HTTP 500"),
    (lambda ehr, pid: ehr.add(f"Patient/{pid}", {"resourceType": "Observation"}), "prefetch.patient",
     "not a FHIR Patient"),
])
def test_412_names_the_item_that_cannot_be_had(api: App, ehr: FhirStub, break_it: Any, field: str,
                                               words: str) -> None:
    pid = f"P{uuid.uuid4().hex[:10]}"
    ehr_records(ehr, pid)
    break_it(ehr, pid)
    r = api.post(SIGN, json=hook_call(ehr.url, pid))
    assert r.status_code == 412, r.text
    assert r.json()["error"] == "precondition_failed" and r.json()["field"] == field and words in r.json()["message"]


def test_412_when_there_is_no_fhir_server_or_it_is_down(api: App, ehr: FhirStub) -> None:
    r = api.post(SIGN, json=hook_call(None))
    assert r.status_code == 412 and r.json()["field"] == "prefetch.patient"
    assert "no fhirServer" in r.json()["message"]
    url = ehr.url
    ehr.stop()  # nothing listens there any more
    r = api.post(SIGN, json=hook_call(url))
    assert r.status_code == 412 and "could not be reached" in r.json()["message"], r.text


def test_a_slow_fhir_server_is_cut_off_by_the_fetch_timeout(fake: InProcessEngine, ehr: FhirStub) -> None:
    from services.ingress.app import create_app

    app = create_app(load_settings({"PRESETTLE_BUDGET_MS": "30000", "PRESETTLE_CDS_FHIR_TIMEOUT_MS": "100"}))
    app.state.engine_client = fake
    ehr_records(ehr)
    ehr.delay_s = 1.5
    r = App(app, {"X-API-Key": "dev-key-h1"}).post(SIGN, json=hook_call(ehr.url))
    assert r.status_code == 412 and "did not answer" in r.json()["message"] and "100 ms" in r.json()["message"]


def test_which_fhir_servers_may_be_read() -> None:
    dev = load_settings({})
    assert _fhir_allowed("http://127.0.0.1:9/fhir", dev) and not _fhir_allowed("file:///etc/passwd", dev)
    prod = dev.model_copy(update={"env": "production"})
    assert not _fhir_allowed("https://ehr.example.org/fhir", prod)  # production: listed servers only
    listed = prod.model_copy(update={"cds_fhir_servers": "https://ehr.example.org/fhir/"})
    assert _fhir_allowed("https://ehr.example.org/fhir", listed)
    assert not _fhir_allowed("https://ehr.example.org/fhirx", listed)
    assert not _fhir_allowed("https://evil.example.org/fhir", listed)


def test_a_null_prefetch_item_means_no_such_data_and_is_not_read(api: App, ehr: FhirStub) -> None:
    pid = f"P{uuid.uuid4().hex[:10]}"
    ehr_records(ehr, pid)
    body = hook_call(ehr.url, pid)
    body["prefetch"] = {"encounter": None, "conditions": None}
    r = api.post(SIGN, json=body)
    assert r.status_code == 200, r.text
    assert [p for p, _ in ehr.seen] == [f"/fhir/Patient/{pid}"]  # only the item left out
    body["prefetch"] = {"patient": None}
    r = api.post(SIGN, json=body)
    assert r.status_code == 412 and r.json()["field"] == "prefetch.patient" and "null" in r.json()["message"]


def test_the_discovery_example_is_what_discovery_answers(api: App) -> None:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "cds-discovery.response.services.json"
    assert api.get("/cds-services").json() == json.loads(path.read_text(encoding="utf-8"))
