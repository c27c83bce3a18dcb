"""Use cases shared by every dialect's router: ``decide`` one event over an engine gateway.

Not a router and not the Kafka client: the native, NHSA and CDS Hooks routes call
:func:`decide` with whatever implements :class:`~services.contracts.gateway.EngineGateway`
(``EngineClient`` in production, an in-process engine in tests) and map the
:class:`~services.contracts.decision.Decision` it returns onto their own shapes.
"""

from __future__ import annotations

import time
from typing import Callable

from services.contracts.decision import Decision
from services.contracts.event import Event
from services.contracts.gateway import EngineGateway, Outcome
from services.contracts.ids import decision_id_for

# Called once per decision with (event, outcome, seconds waiting for the engine): the ingress counts it.
Observer = Callable[[Event, Outcome, float], None]


async def decide(
    gateway: EngineGateway, event: Event, budget_ms: int, started: float, observe: Observer | None = None,
) -> Decision:
    """Send one validated event to the engine and shape the answer (shared by every dialect)."""
    wire = event.to_wire()
    t0 = time.perf_counter()
    outcome = await gateway.submit(event.patient.id.encode(), wire, budget_ms / 1000.0)
    if observe is not None:
        observe(event, outcome, time.perf_counter() - t0)
    decision = outcome.decision or {}
    return Decision(
        event_id=event.event_id,
        decision_id=decision.get("decision_id") or decision_id_for(event.institution.id, event.event_id),
        engine_status=outcome.status,
        alerts=decision.get("alerts", []),
        unchecked_lines=decision.get("unchecked_lines", []),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        replayed=bool(decision.get("replayed", False)),
        detail=outcome.error if outcome.status != "evaluated" else None,
        rulebase_revision=decision.get("rulebase_revision") if outcome.status == "evaluated" else None,
    )


def not_decided(event: Event, started: float, status: str, detail: str) -> Decision:
    """The answer when the event was never sent (e.g. its earlier encounters were not accepted)."""
    return Decision(
        event_id=event.event_id, decision_id=decision_id_for(event.institution.id, event.event_id),
        engine_status=status,
        alerts=[], detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 2))
