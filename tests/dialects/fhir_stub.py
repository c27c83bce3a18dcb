"""A small FHIR server on 127.0.0.1 for the CDS Hooks prefetch fallback (and JWKS by URL).

Serves JSON documents by path (query strings included), records every request with its
Authorization header, and can be told to answer slowly or with an error status.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FhirStub:
    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}  # "/Patient/1" or "/Condition?patient=1&clinical-status=active"
        self.status: dict[str, int] = {}  # path → status to answer instead
        self.delay_s = 0.0
        self.seen: list[tuple[str, str | None]] = []  # (path with query, Authorization)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.seen.append((self.path, self.headers.get("Authorization")))
                if stub.delay_s:
                    time.sleep(stub.delay_s)
                status = stub.status.get(self.path)
                doc = stub.documents.get(self.path)
                if status is None:
                    status = 200 if doc is not None else 404
                body = json.dumps(doc if status == 200 else
                                  {"resourceType": "OperationOutcome", "issue": [{"severity": "error",
                                                                                  "code": "not-found"}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fhir-stub", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def add(self, path: str, doc: Any) -> None:
        self.documents[f"/fhir/{path}"] = doc

    def start(self) -> FhirStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def spec_order_sign_context() -> dict[str, Any]:
    """The context of the CDS Hooks specification's order-sign example (R4; hooks/order-sign.md):
    patient 1288992, encounter 89284, a NutritionOrder (not read by PreSettle) and a draft
    MedicationRequest for amoxicillin/clavulanate (RxNorm 617993, 1 mL, 10 days)."""
    return {
        "userId": "PractitionerRole/123",
        "patientId": "1288992",
        "encounterId": "89284",
        "draftOrders": {"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "NutritionOrder", "id": "pureeddiet-simple", "status": "draft",
                          "patient": {"reference": "Patient/1288992"}, "dateTime": "2014-09-17",
                          "oralDiet": {"type": [{"coding": [{"system": "http://snomed.info/sct", "code": "226211001",
                                                             "display": "Pureed diet"}], "text": "Pureed diet"}]}}},
            {"resource": {
                "resourceType": "MedicationRequest", "id": "smart-MedicationRequest-103", "status": "draft",
                "intent": "order",
                "medicationCodeableConcept": {
                    "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "617993",
                                "display": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension"}],
                    "text": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension"},
                "subject": {"reference": "Patient/1288992"},
                "dosageInstruction": [{"text": "5 mL bid x 10 days", "timing": {"repeat": {
                    "boundsPeriod": {"start": "2005-01-04"}, "frequency": 2, "period": 1, "periodUnit": "d"}},
                    "doseQuantity": {"value": 5, "unit": "mL", "system": "http://unitsofmeasure.org",
                                     "code": "mL"}}],
                "dispenseRequest": {"numberOfRepeatsAllowed": 1,
                                    "quantity": {"value": 1, "unit": "mL", "system": "http://unitsofmeasure.org",
                                                 "code": "mL"},
                                    "expectedSupplyDuration": {"value": 10, "unit": "days",
                                                               "system": "http://unitsofmeasure.org", "code": "d"}}}},
        ]},
    }


def ehr_records(stub: FhirStub, patient_id: str = "1288992", encounter_id: str = "89284") -> None:
    """The EHR's side: a female patient with an active 前列腺增生 (N40) condition — a diagnosis that
    contradicts her sex (R03), so the order-sign call must produce a card once the data is read."""
    stub.add(f"Patient/{patient_id}", {"resourceType": "Patient", "id": patient_id, "gender": "female",
                                       "birthDate": "1958-04-12"})
    stub.add(f"Condition?patient={patient_id}&clinical-status=active", {
        "resourceType": "Bundle", "type": "searchset", "total": 1,
        "entry": [{"resource": {"resourceType": "Condition", "id": "c1",
                                "clinicalStatus": {"coding": [{"code": "active"}]},
                                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "N40",
                                                     "display": "前列腺增生"}]}}}]})
    stub.add(f"Encounter/{encounter_id}", {"resourceType": "Encounter", "id": encounter_id, "status": "in-progress",
                                           "class": {"code": "AMB"}})
