"""Corrections to a patient's history through the running service (issue 10): real broker, worker, HTTP.

* accepted feedback (返回修改) withdraws the alert's lines from the patient's state;
* a cancellation event takes an order back;
* a death recorded after claims were made writes retrospective findings (事后) to the audit topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.contracts.decision import AuditRecord
from services.stack import Stack
from tests.conftest import start_stack
from tests.factories import drug, event, uid

pytestmark = pytest.mark.e2e

KEY, ADMIN = "corr-key-h1-0123456789", "corr-admin-key-0123456789"
ATOR = "XC10AAA067A001010104321"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = start_stack("corrections", PRESETTLE_API_KEYS=f"{KEY}:H1", PRESETTLE_ADMIN_KEYS=ADMIN)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30, headers={"X-API-Key": KEY}) as c:
        yield c


def post(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/v1/events", json=body, params={"budget_ms": 10_000})
    assert r.status_code == 200, r.text
    assert r.json()["engine_status"] == "evaluated", r.json()
    return r.json()


def r19(answer: dict[str, Any]) -> dict[str, Any] | None:
    hits = [a for a in answer["alerts"] if a["rule_id"] == "R19"]
    return hits[0] if hits else None


def wait_for(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def probe_evidence(http: httpx.Client, pid: str) -> list[str] | None:
    """A probe purchase of 30 days on 03-17: the event ids R19's evidence names, None without R19."""
    again = r19(post(http, event(patient=pid, event_id=uid(f"{pid}-probe-"), occurred_at="2026-03-17T09:00:00+08:00",
                                 items=[drug(ATOR, 30, 30)])))
    return None if again is None else [e["event_id"] for e in again["evidence"] if e["kind"] == "event"]


def test_accepted_feedback_withdraws_the_changed_order(http: httpx.Client) -> None:
    pid = uid("P")
    post(http, event(patient=pid, event_id=f"{pid}-1", occurred_at="2026-03-01T09:00:00+08:00",
                     items=[drug(ATOR, 30, 30)]))
    alert = r19(post(http, event(patient=pid, event_id=f"{pid}-2", occurred_at="2026-03-15T09:00:00+08:00",
                                 items=[drug(ATOR, 30, 30)])))
    assert alert is not None
    r = http.post(f"/v1/alerts/{alert['alert_id']}/feedback", json={"outcome": "accepted"})
    assert r.status_code == 200, r.text

    # the withdrawal is applied asynchronously (as history): judged on the first supply alone
    assert wait_for(lambda: probe_evidence(http, pid) == [f"{pid}-1"])


def test_a_withdrawal_after_the_changed_order_keeps_the_changed_order(http: httpx.Client) -> None:
    """The changed order (same encounter, new event id, 10 days instead of 30) reaches the service before
    the feedback on the original: the withdrawal takes out the original's supply alone."""
    pid = uid("P")
    post(http, event(patient=pid, event_id=f"{pid}-1", occurred_at="2026-03-01T09:00:00+08:00",
                     items=[drug(ATOR, 30, 30)]))
    alert = r19(post(http, event(patient=pid, event_id=f"{pid}-x", encounter_id=f"{pid}-visit",
                                 occurred_at="2026-03-15T09:00:00+08:00", items=[drug(ATOR, 30, 30)])))
    assert alert is not None
    post(http, event(patient=pid, event_id=f"{pid}-y", encounter_id=f"{pid}-visit",
                     occurred_at="2026-03-15T09:05:00+08:00", items=[drug(ATOR, 10, 10)]))
    r = http.post(f"/v1/alerts/{alert['alert_id']}/feedback", json={"outcome": "accepted"})
    assert r.status_code == 200, r.text

    # the withdrawal is applied asynchronously (as history): judged on the changed order
    assert wait_for(lambda: probe_evidence(http, pid) == [f"{pid}-1", f"{pid}-y"])


def test_a_cancelled_purchase_no_longer_counts(http: httpx.Client) -> None:
    pid = uid("P")
    bought = event(patient=pid, event_id=f"{pid}-1", occurred_at="2026-03-01T09:00:00+08:00", items=[drug(ATOR, 30, 30)])
    post(http, bought)
    cancel = {**bought, "event_id": f"{pid}-1-cx", "event_type": "cancellation", "cancels": f"{pid}-1", "items": []}
    assert post(http, cancel)["alerts"] == []
    assert r19(post(http, event(patient=pid, event_id=f"{pid}-2", occurred_at="2026-03-10T09:00:00+08:00",
                                items=[drug(ATOR, 30, 30)]))) is None


async def _retrospective(bootstrap: str, topic: str, patient: str, settle_s: float = 3.0) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        quiet_until = time.monotonic() + settle_s
        while time.monotonic() < quiet_until:
            batches = await consumer.getmany(timeout_ms=300)
            if batches:
                quiet_until = time.monotonic() + settle_s
            for records in batches.values():
                found += [v for v in (orjson.loads(r.value) for r in records)
                          if v["patient_id"] == patient and v.get("retrospective")]
    finally:
        await consumer.stop()
    return found


def test_a_death_recorded_late_writes_retrospective_findings(stack: Stack, http: httpx.Client) -> None:
    pid = uid("P")
    post(http, event(patient=pid, event_id=f"{pid}-before", occurred_at="2026-03-01T09:00:00+08:00",
                     items=[drug(ATOR, 30, 30)]))
    post(http, event(patient=pid, event_id=f"{pid}-after", occurred_at="2026-04-02T09:00:00+08:00",
                     items=[drug(ATOR, 30, 30)]))
    status = {"patient_id": pid, "status": "deceased", "effective_from": "2026-03-20",
              "updated_at": "2026-04-10T08:00:00+08:00", "reason": "户籍注销"}
    r = http.post("/v1/patient-status", json=status, headers={"X-API-Key": ADMIN})
    assert r.status_code == 200 and r.json()["applied"] is True, r.text
    records = asyncio.run(_retrospective(stack.bootstrap, stack.settings.decisions_topic, pid))
    assert [rec["event_id"] for rec in records] == [f"{pid}-after"]
    audit = AuditRecord.model_validate(records[0])
    assert audit.retrospective and audit.scene is None and [a.rule_id for a in audit.alerts] == ["R31"]


def test_a_suspension_recorded_late_writes_retrospective_findings(stack: Stack, http: httpx.Client) -> None:
    """失信: suspended 03-10 to 03-20, recorded 04-10. Only the claim inside the period is found, once
    with R31 naming it; a claim already inside a known period was flagged live and is not repeated."""
    pid = uid("P")
    post(http, event(patient=pid, event_id=f"{pid}-before", occurred_at="2026-03-01T09:00:00+08:00",
                     items=[drug(ATOR, 30, 30)]))
    post(http, event(patient=pid, event_id=f"{pid}-inside", occurred_at="2026-03-15T09:00:00+08:00",
                     encounter_id=f"{pid}-e2", items=[drug(ATOR, 30, 30)]))
    post(http, event(patient=pid, event_id=f"{pid}-after", occurred_at="2026-04-02T09:00:00+08:00",
                     encounter_id=f"{pid}-e3", items=[drug(ATOR, 30, 30)]))
    status = {"patient_id": pid, "status": "suspended", "effective_from": "2026-03-10", "effective_to": "2026-03-20",
              "updated_at": "2026-04-10T08:00:00+08:00", "reason": "失信联合惩戒"}
    r = http.post("/v1/patient-status", json=status, headers={"X-API-Key": ADMIN})
    assert r.status_code == 200 and r.json()["applied"] is True, r.text
    records = asyncio.run(_retrospective(stack.bootstrap, stack.settings.decisions_topic, pid))
    assert [rec["event_id"] for rec in records] == [f"{pid}-inside"]
    audit = AuditRecord.model_validate(records[0])
    assert audit.retrospective and audit.occurred_at.startswith("2026-03-15") and [a.rule_id for a in audit.alerts] == ["R31"]
    assert [e["event_id"] for e in audit.alerts[0].evidence if e["kind"] == "event"] == [f"{pid}-inside"]


def test_a_refunded_stay_charge_no_longer_counts_twice(http: httpx.Client) -> None:
    """住院诊查费 is payable once a day: refunded, the day's second one is not a duplicate (R15)."""
    pid = uid("P")
    enc = {"encounter_type": "inpatient", "encounter_id": f"{pid}-stay", "med_type": "21",
           "admitted_at": "2026-03-01T08:00:00+08:00"}
    consult = [{"line_id": "1", "code": "001102000050000", "kind": "service", "quantity": 1, "unit_price": 10.0,
                "amount": 10.0, "started_at": "2026-03-02T00:00:00+08:00"}]
    post(http, event(patient=pid, event_id=f"{pid}-adm", scene=3, occurred_at="2026-03-01T08:00:00+08:00", **enc))
    first = event(patient=pid, event_id=f"{pid}-1", scene=5, occurred_at="2026-03-02T09:00:00+08:00", items=consult, **enc)
    post(http, first)
    second = event(patient=pid, event_id=uid(f"{pid}-2-"), scene=5, occurred_at="2026-03-02T10:00:00+08:00", items=consult, **enc)
    assert any(a["rule_id"] == "R15" for a in post(http, second)["alerts"])  # control: a second of the day
    for eid in (second["event_id"], f"{pid}-1"):  # both refunded
        post(http, {**first, "event_id": f"{eid}-cx", "event_type": "cancellation", "cancels": eid, "items": []})
    third = event(patient=pid, event_id=f"{pid}-3", scene=5, occurred_at="2026-03-02T11:00:00+08:00", items=consult, **enc)
    assert not any(a["rule_id"] == "R15" for a in post(http, third)["alerts"])
