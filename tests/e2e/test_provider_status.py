"""Institution and doctor status timelines end to end: HTTP → provider-status topic → every worker.

A real embedded broker, real worker processes and a real ingress: the bureau posts a 定点协议
suspension (POST /v1/institution-status) or a doctor's suspension (POST /v1/doctor-status);
once it is acknowledged (200 applied), an event dated inside the period gets R42 / R43, one
dated outside does not; a revocation withdraws it; a worker started afterwards (kill -9, a new
worker takes the partitions) holds the timelines before it decides its first event.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.stack import Stack
from tests.conftest import start_stack

pytestmark = pytest.mark.e2e

ADMIN = {"X-API-Key": "dev-admin-key"}
H1 = {"X-API-Key": "dev-key-h1"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = start_stack("providers", PRESETTLE_PARTITIONS="2")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        yield c


def event(eid: str, day: str, patient: str, doctor: str | None = None, line_doctor: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"line_id": "1", "code": "001102000010000", "name": "普通门诊诊查费", "kind": "service",
                            "quantity": 1, "unit_price": 10, "amount": 10}
    if line_doctor:
        item["doctor_id"] = line_doctor
    return {"event_id": eid, "scene": 2, "occurred_at": f"{day}T09:30:00+08:00",
            "institution": {"id": "H1", "level": 3, "region": "330100"},
            "patient": {"id": patient, "gender": "F", "birth_date": "1970-01-01", "region": "330100"},
            "encounter": {"id": f"{eid}-enc", "type": "outpatient", "doctor_id": doctor},
            "diagnoses": [], "items": [item]}


def rules_of(http: httpx.Client, body: dict[str, Any]) -> list[str]:
    r = http.post("/v1/events", json=body, params={"budget_ms": 10_000}, headers=H1)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["engine_status"] == "evaluated", answer
    return [a["rule_id"] for a in answer["alerts"]]


def post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post(path, json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["applied"] is True, answer
    return answer


SUSPENSION = {"institution_id": "H1", "status": "suspended", "effective_from": "2026-05-01",
              "effective_to": "2026-05-31", "reason": "违规结算", "document_no": "浙医保稽〔2026〕30号",
              "updated_at": "2026-04-30T09:00:00+08:00"}


def test_an_institution_suspension_affects_events_dated_inside_it_only(http: httpx.Client) -> None:
    # Patients of other test modules share H1: the period (May 2026) is one no other test uses.
    answer = post(http, "/v1/institution-status", SUSPENSION)
    assert answer["institution_id"] == "H1" and answer["status"] == "suspended"
    r = http.post("/v1/events", json=event("ps-in", "2026-05-10", "P-ps-1"), params={"budget_ms": 10_000}, headers=H1)
    [alert] = [a for a in r.json()["alerts"] if a["rule_id"] == "R42"]
    assert alert["indicator"] == "critical" and alert["line_ids"] == ["1"]
    [ev] = [e for e in alert["evidence"] if e.get("table") == "institution_status"]
    assert ev["subject_id"] == "H1" and ev["effective_from"] == "2026-05-01" and ev["effective_to"] == "2026-05-31"
    assert ev["document_no"] == "浙医保稽〔2026〕30号"
    assert "R42" not in rules_of(http, event("ps-before", "2026-04-30", "P-ps-2"))
    assert "R42" not in rules_of(http, event("ps-after", "2026-06-01", "P-ps-3"))
    # The look-up shows the timeline every worker holds.
    r = http.get("/v1/institution-status/H1", params={"on": "2026-05-02"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["on"] == {"date": "2026-05-02", "status": "suspended", "recorded": True}
    assert http.get("/v1/institution-status/H1", headers=H1).status_code == 403


def test_a_doctor_suspension_and_its_revocation(http: httpx.Client) -> None:
    body = {"doctor_id": "D-e2e-1", "status": "suspended", "effective_from": "2026-05-01",
            "updated_at": "2026-04-30T09:00:00+08:00"}
    post(http, "/v1/doctor-status", body)
    assert "R43" in rules_of(http, event("pd-in", "2026-05-03", "P-pd-1", doctor="D-e2e-1"))
    assert "R43" in rules_of(http, event("pd-line", "2026-05-03", "P-pd-2", doctor="D-e2e-9", line_doctor="D-e2e-1"))
    assert "R43" not in rules_of(http, event("pd-other", "2026-05-03", "P-pd-3", doctor="D-e2e-2"))
    post(http, "/v1/doctor-status", {**body, "revoked": True, "updated_at": "2026-05-04T09:00:00+08:00"})
    assert "R43" not in rules_of(http, event("pd-revoked", "2026-05-03", "P-pd-4", doctor="D-e2e-1"))


def test_bad_provider_status_is_refused_naming_the_field(http: httpx.Client) -> None:
    r = http.post("/v1/institution-status", json={**SUSPENSION, "status": "closed"}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["field"] == "status"
    r = http.post("/v1/doctor-status", json={"status": "suspended", "effective_from": "2026-05-01",
                                             "updated_at": "2026-04-30T09:00:00"}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["field"] == "doctor_id"
    assert http.post("/v1/institution-status", json=SUSPENSION, headers=H1).status_code == 401


def test_a_worker_started_later_holds_the_timelines_before_its_first_event(stack: Stack, http: httpx.Client) -> None:
    post(http, "/v1/institution-status", {**SUSPENSION, "effective_from": "2026-07-01", "effective_to": None,
                                          "status": "terminated", "updated_at": "2026-06-30T09:00:00+08:00"})
    stack.kill_worker(0)  # kill -9; a new worker (its own, empty data directory) takes the partitions
    stack.start_worker(1)
    stack.wait_healthy(90)
    assert "R42" in rules_of(http, event("ps-late", "2026-07-02", "P-ps-late"))
    assert "R42" not in rules_of(http, event("ps-late-before", "2026-06-30", "P-ps-late-2"))


def test_with_two_workers_every_event_after_the_acknowledgement_is_judged_with_it() -> None:
    """The 200 means every worker holds the record: events of patients on every partition, sent
    right after it, all get R42 whichever worker decides them."""
    two = start_stack("providers-two", PRESETTLE_WORKERS="2", PRESETTLE_PARTITIONS="4")
    try:
        with httpx.Client(base_url=two.url, timeout=30) as c:
            health = c.get("/healthz").json()
            assert len(health["workers"]) == 2, health  # both workers serve partitions
            post(c, "/v1/institution-status", {**SUSPENSION, "institution_id": "H2", "effective_from": "2026-08-01",
                                               "effective_to": "2026-08-31", "updated_at": "2026-07-31T09:00:00"})
            for n in range(12):  # patients hash to every partition
                body = event(f"two-{n}", "2026-08-15", f"P-two-{n}")
                body["institution"]["id"] = "H2"
                r = c.post("/v1/events", json=body, params={"budget_ms": 10_000}, headers={"X-API-Key": "dev-key-h2"})
                assert r.status_code == 200 and r.json()["engine_status"] == "evaluated", r.text
                assert "R42" in [a["rule_id"] for a in r.json()["alerts"]], (n, r.json()["alerts"])
    finally:
        two.stop()


def test_a_suspension_recorded_late_finds_the_settlements_already_logged(http: httpx.Client) -> None:
    """The bureau records H2's 定点协议 suspension for September after H2's September settlements were
    decided: the decision-log sink writes a retrospective finding (R42, 事后) for the settlement inside
    the period — in /v1/decisions with a review case — not for the one after it or the order-entry event."""
    import time
    from datetime import datetime, timezone

    h2 = {"X-API-Key": "dev-key-h2"}

    def decide(eid: str, day: str, scene: int) -> str:
        body = event(eid, day, f"P-{eid}")
        body["institution"]["id"], body["scene"] = "H2", scene
        r = http.post("/v1/events", json=body, params={"budget_ms": 10_000}, headers=h2)
        assert r.status_code == 200 and r.json()["engine_status"] == "evaluated", r.text
        assert "R42" not in [a["rule_id"] for a in r.json()["alerts"]]  # not known yet
        return str(r.json()["decision_id"])

    ids = [decide("late-in", "2026-09-10", 6), decide("late-after", "2026-10-05", 6), decide("late-order", "2026-09-11", 2)]

    def logged(check: Any, timeout_s: float = 60) -> Any:  # a wait, not a timed assertion
        deadline = time.monotonic() + timeout_s
        while not (got := check()) and time.monotonic() < deadline:
            time.sleep(0.3)
        return got

    assert logged(lambda: all(http.get(f"/v1/decisions/{i}", headers=ADMIN).status_code == 200 for i in ids))
    post(http, "/v1/institution-status", {**SUSPENSION, "institution_id": "H2", "effective_from": "2026-09-01",
                                          "effective_to": "2026-09-30",
                                          "updated_at": datetime.now(timezone.utc).isoformat()})

    def findings() -> list[dict[str, Any]]:
        r = http.get("/v1/decisions", params={"institution": "H2", "scene": 0}, headers=ADMIN)
        assert r.status_code == 200, r.text
        return [d for d in r.json()["decisions"] if d["event_id"].startswith("late-")]

    found = logged(findings)
    assert [d["event_id"] for d in found] == ["late-in"]
    got = http.get(f"/v1/decisions/{found[0]['decision_id']}", headers=ADMIN).json()
    assert got["retrospective"] is True and [a["rule_id"] for a in got["alerts"]] == ["R42"]
    assert [e.get("decision_id") for e in got["alerts"][0]["evidence"]][0] == ids[0]
    assert got["case"]["state"] == "open"
    assert http.get(f"/v1/decisions/{found[0]['decision_id']}", headers=h2).status_code == 200  # H2 sees its own
