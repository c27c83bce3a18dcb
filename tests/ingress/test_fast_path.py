"""The native route's fast path (service_layer.decide_public) answers exactly what a Decision would."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services.contracts.decision import audit_record
from services.contracts.event import Event
from services.contracts.gateway import Outcome
from services.rules import decision as dec
from services.rules.engine import Engine
from services.service_layer import decide, decide_public
from tests.factories import drug, dx, event, uid


class WorkerLike:
    """Answers as the worker replies: the audit record of the decision (services/stream/app.py)."""

    def __init__(self, engine: Engine, status: str = "evaluated") -> None:
        self.engine, self.status = engine, status
        self.states: dict[bytes, bytes] = {}

    async def submit(self, key: bytes, wire: dict[str, Any], budget_s: float, topic: str | None = None) -> Outcome:
        if self.status != "evaluated":
            return Outcome(self.status, error="the broker did not accept the event" if self.status == "unavailable"
                           else None)
        new, outcome = dec.handle_event(self.engine, self.states.get(key), wire)
        if new is not None:
            self.states[key] = new
        record = audit_record(wire, outcome["decision_id"], outcome["alerts"], outcome["replayed"], 0.1,
                              "2026-03-01T01:00:00+00:00", "worker-0", unchecked_lines=outcome["unchecked_lines"],
                              rulebase_revision=None if outcome["replayed"] else "rb-test")
        return Outcome("evaluated", record)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def compare(engine: Engine, raw: dict[str, Any], status: str = "evaluated", repeat: int = 1) -> dict[str, Any]:
    fast_gw, model_gw = WorkerLike(engine, status), WorkerLike(engine, status)
    ev = Event.model_validate(raw)
    for _ in range(repeat):  # a second time: a retry answered from the idempotency record
        fast = asyncio.run(decide_public(fast_gw, ev, 300, time.perf_counter()))
        model = asyncio.run(decide(model_gw, ev, 300, time.perf_counter())).model_dump(mode="json")
        fast.pop("latency_ms"), model.pop("latency_ms")
        assert fast == model
        assert list(fast) == list(model)  # the same fields in the same order
    return fast


@pytest.mark.parametrize("status", ["evaluated", "timeout", "unavailable"])
def test_the_fast_answer_equals_the_decision_model(engine: Engine, status: str) -> None:
    raw = event(patient=uid("PFAST"), gender="F", diagnoses=[dx("N40")])  # R03: an alert with evidence
    answer = compare(engine, raw, status)
    assert answer["engine_status"] == status
    assert bool(answer["alerts"]) == (status == "evaluated")


def test_unchecked_lines_and_a_replay_equal_the_decision_model(engine: Engine) -> None:
    raw = event(patient=uid("PFAST"), items=[drug("XX-NOT-A-CODE", 10, 5)])
    answer = compare(engine, raw, repeat=2)
    assert answer["unchecked_lines"] and answer["replayed"] is True
