"""History merged from NHSA payloads is idempotent — inside the idempotency window and beyond it.

Uses the real engine with the worker's arithmetic (conftest.InProcessEngine), no broker.
"""

from __future__ import annotations

import copy
from typing import Any

from services.dialects import nhsa
from services.rules import decision as dec
from services.rules.state import L_PAST
from tests.dialects.conftest import InProcessEngine, example

OUTPATIENT = "nhsa-analysis.request.3101-outpatient.json"
INPATIENT = "nhsa-analysis.request.3102-inpatient.json"


def send(fake: InProcessEngine, body: dict[str, Any]) -> dict[str, Any]:
    """What the ingress does: history written in order, then the current event decided."""
    [p] = nhsa.plan_analysis(nhsa.NhsaAnalysisRequest.model_validate(body))
    for ev in p.history:
        fake.handle(p.key, ev.to_wire(), evaluate=False)  # the "history" header: merged, not evaluated
    return fake.handle(p.key, p.current.to_wire())


def rules(decision: dict[str, Any]) -> list[str]:
    return [a["rule_id"] for a in decision["alerts"]]


def without_seen(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != dec.SEEN_KEY}


def test_r19_through_history_and_the_same_payload_twice(fake: InProcessEngine) -> None:
    body = example(OUTPATIENT)
    first = send(fake, body)
    assert "R19" in rules(first)
    r19 = next(a for a in first["alerts"] if a["rule_id"] == "R19")
    assert r19["evidence"][0]["institution_id"] == "H2" and r19["evidence"][0]["event_id"].startswith("nhsa-h6-")
    state_once = fake.state("P330100000001")
    second = send(fake, copy.deepcopy(body))
    assert second["replayed"] is True and second["alerts"] == first["alerts"]
    assert without_seen(fake.state("P330100000001")) == without_seen(state_once)


def test_history_beyond_the_idempotency_window_is_not_double_counted(fake: InProcessEngine) -> None:
    """The history visit is 10 days older than the current one, so its idempotency record is evicted as
    soon as the current visit is applied (24 h of event time): re-sending it re-applies it once (its new
    record, the latest written, is kept until a newer event evicts it) — and the state must not change."""
    body = example(OUTPATIENT)
    send(fake, body)
    key = "P330100000001"
    seen_ids = [r[0] for r in fake.state(key)[dec.SEEN_KEY]]
    assert not any(":nhsa-h" in k for k in seen_ids)  # the history record is already gone
    before = without_seen(fake.state(key))
    applied = len(fake.applied)
    for _ in range(3):
        send(fake, copy.deepcopy(body))
    assert len(fake.applied) == applied + 1  # the history event really was applied again
    assert without_seen(fake.state(key)) == before  # ... and changed nothing


def test_history_reapplied_after_the_current_visit_left_the_window(fake: InProcessEngine) -> None:
    """Even with every idempotency record dropped, re-applying history and the current visit changes nothing:
    the state is keyed by encounter (mdtrt_id), not by event."""
    body = example(OUTPATIENT)
    send(fake, body)
    key = b"P330100000001"
    state = fake.state(key.decode())
    before = without_seen(state)
    state.pop(dec.SEEN_KEY)
    fake.states[key] = __import__("orjson").dumps(state)
    again = send(fake, copy.deepcopy(body))
    assert again["replayed"] is False
    # judged as the first time: against the history supply at H2, never against its own supply (same encounter)
    [r19] = [a for a in again["alerts"] if a["rule_id"] == "R19"]
    assert [e["institution_id"] for e in r19["evidence"] if e["kind"] == "event"] == ["H2"]
    assert without_seen(fake.state(key.decode())) == before


def test_r22_through_history_and_stays_recorded_once(fake: InProcessEngine) -> None:
    body = example(INPATIENT)
    first = send(fake, body)
    assert "R22" in rules(first)
    before = without_seen(fake.state("P330100000002"))
    assert len(before["A"]) == 2  # the earlier stay and the current one, once each
    send(fake, copy.deepcopy(body))
    send(fake, copy.deepcopy(body))
    assert without_seen(fake.state("P330100000002")) == before


def test_a_visit_first_sent_as_current_then_as_history_is_one_visit(fake: InProcessEngine) -> None:
    """Next week's request lists this week's visit among its encounters: the same encounter, not a new one."""
    body = example(OUTPATIENT)
    send(fake, body)
    ledger = fake.state("P330100000001")["L"]
    visits = fake.state("P330100000001")["V"]
    later = example(OUTPATIENT)
    p = later["input"]["data"]["patient_dtos"][0]
    current = copy.deepcopy(p["fsi_encounter_dtos"][0])
    current.update(mdtrt_id="MD20260318002", adm_date="2026-03-18 09:00:00")
    current["fsi_order_dtos"][0].update(hilist_code="XB01ACA056A001010100217", rx_id="RX-ASP",
                                        drord_begn_date="2026-03-18 09:20:00")  # within the new visit
    p["fsi_encounter_dtos"][0]["fsi_order_dtos"][0].pop("curr_drord_flag")
    p["fsi_encounter_dtos"].insert(0, current)
    p["curr_mdtrt_id"] = "MD20260318002"
    later["inf_time"] = "2026-03-18 09:30:00"
    decision = send(fake, later)
    assert "R19" not in rules(decision)
    state = fake.state("P330100000001")
    assert len(state["V"]) == len(visits) + 1  # only the new visit
    # the same supplies (one per encounter: same start, days, quantity); only the event id that recorded
    # them last may differ, and so may the list of events that contributed (L_PARTS: the withdrawal
    # bookkeeping) — the visit re-sent as history updated its own row instead of adding one
    now = sorted(r[:6] + r[7:L_PAST] for r in state["L"] if r[0] == "atorvastatin")
    then = sorted(r[:6] + r[7:L_PAST] for r in ledger if r[0] == "atorvastatin")
    assert now == then and len(now) == 2
