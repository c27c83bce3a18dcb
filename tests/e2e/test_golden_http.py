"""Every golden case of services/data/rules, replayed end to end: HTTP → broker → worker → reply.

The same files the pure runner (tests/rules/test_golden.py) replays through the
engine in-process go here through the running service: insured-status updates
through POST /v1/patient-status (admin key), institution and doctor status through
POST /v1/institution-status and /v1/doctor-status, history and the event through
POST /v1/events with the key of each event's institution.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from services.stack import Stack
from tests.conftest import start_stack
from tests.rules.golden import check, load_cases

pytestmark = pytest.mark.e2e

CASES = load_cases()
ADMIN_KEY = "golden-admin-key"


def _key(institution: str) -> str:
    return f"golden-key-{institution}"


@pytest.fixture(scope="module")
def golden_stack() -> Iterator[Stack]:
    institutions = sorted({e["institution"]["id"] for _, _, c in CASES for e in c["history"] + [c["event"]]})
    keys = ",".join(f"{_key(i)}:{i}" for i in institutions)
    stack = start_stack("golden", PRESETTLE_API_KEYS=keys, PRESETTLE_ADMIN_KEYS=ADMIN_KEY)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def http(golden_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=golden_stack.url, timeout=30) as c:
        yield c


def _post_event(http: httpx.Client, body: dict) -> dict:
    r = http.post("/v1/events", json=body, params={"budget_ms": 10_000},
                  headers={"X-API-Key": _key(body["institution"]["id"])})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["engine_status"] == "evaluated", answer
    return answer


@pytest.mark.parametrize(("rule_id", "index", "case"), CASES, ids=[f"{r}-{i}" for r, i, _ in CASES])
def test_case_over_http(http: httpx.Client, rule_id: str, index: int, case: dict) -> None:
    for status in case.get("status", []):
        r = http.post("/v1/patient-status", json=status, headers={"X-API-Key": ADMIN_KEY})
        assert r.status_code == 200 and r.json()["applied"] is True, r.text
    for record in case.get("providers", []):  # institution / doctor status: every worker holds it
        body = {k: v for k, v in record.items() if k != "subject"}
        r = http.post(f"/v1/{record['subject']}-status", json=body, headers={"X-API-Key": ADMIN_KEY})
        assert r.status_code == 200 and r.json()["applied"] is True, r.text
    for body in case["history"]:
        _post_event(http, body)
    answer = _post_event(http, case["event"])
    errors = check(rule_id, case, answer["alerts"])
    assert not errors, f"{rule_id} case {index} ({case['name']}):\n  " + "\n  ".join(errors)


def test_patient_status_needs_admin_key_and_valid_body(http: httpx.Client) -> None:
    body = {"patient_id": "P-status-1", "status": "deceased", "effective_from": "2026-01-01",
            "updated_at": "2026-01-02T08:00:00+08:00"}
    assert http.post("/v1/patient-status", json=body).status_code == 401
    assert http.post("/v1/patient-status", json=body, headers={"X-API-Key": _key("H1")}).status_code == 401
    bad = dict(body, status="zombie")
    r = http.post("/v1/patient-status", json=bad, headers={"X-API-Key": ADMIN_KEY})
    assert r.status_code == 422 and r.json()["field"] == "status"


def test_kb_and_rule_lookups(http: httpx.Client) -> None:
    any_key = {"X-API-Key": ADMIN_KEY}
    rules = http.get("/v1/rules", headers=any_key).json()
    assert rules["count"] >= 32
    ids = {r["id"] for r in rules["rules"]}
    assert {f"R{n:02d}" for n in range(1, 31)} <= ids
    items = http.get("/v1/kb/items", params={"q": "阿托伐他汀"}, headers=any_key).json()["items"]
    assert items and all("阿托伐他汀" in i["name"] for i in items)
    dx = http.get("/v1/kb/diagnoses", params={"q": "N40"}, headers=any_key).json()["diagnoses"]
    assert any(d["code"] == "N40" for d in dx)
    assert http.get("/v1/rules").status_code == 401
    assert http.get("/v1/kb/items", params={"q": ""}, headers=any_key).status_code == 422
