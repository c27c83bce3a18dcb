"""Use cases shared by every dialect's router: ``decide`` one event over an engine gateway.

Not a router and not the Kafka client: the native, NHSA and CDS Hooks routes call
:func:`decide` with whatever implements :class:`~services.contracts.gateway.EngineGateway`
(``EngineClient`` in production, an in-process engine in tests) and map the
:class:`~services.contracts.decision.Decision` it returns onto their own shapes.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from services.contracts.decision import Alert, Decision, UncheckedLine
from services.contracts.event import Event
from services.contracts.gateway import EngineGateway, Outcome
from services.contracts.ids import decision_id_for

# Called once per decision with (event, outcome, seconds waiting for the engine): the ingress counts it.
Observer = Callable[[Event, Outcome, float], None]


async def _submit(gateway: EngineGateway, event: Event, budget_ms: int, observe: Observer | None) -> Outcome:
    wire = event.to_wire()
    t0 = time.perf_counter()
    outcome = await gateway.submit(event.patient.id.encode(), wire, budget_ms / 1000.0)
    if observe is not None:
        observe(event, outcome, time.perf_counter() - t0)
    return outcome


# The public fields of an alert and of an unchecked line, with their defaults (what the models fill in).
_ALERT_FIELDS = tuple((name, None if f.is_required() else f.default) for name, f in Alert.model_fields.items())
_UNCHECKED_FIELDS = tuple((name, None if f.is_required() else f.default)
                          for name, f in UncheckedLine.model_fields.items())


def _public(items: list[dict[str, Any]], fields: tuple[tuple[str, Any], ...]) -> list[dict[str, Any]]:
    return [{name: item.get(name, default) for name, default in fields} for item in items]


async def decide_public(
    gateway: EngineGateway, event: Event, budget_ms: int, started: float, observe: Observer | None = None,
) -> dict[str, Any]:
    """:func:`decide` as the JSON-ready dict of a :class:`Decision` (the native route's fast path).

    The worker's decision is already the audit record's plain dict; the public answer keeps
    the Decision's fields (alerts and unchecked lines cut to theirs) without building and
    re-serialising the models — ``tests/ingress/test_fast_path.py`` holds it equal to
    ``decide(...).model_dump(mode="json")``."""
    outcome = await _submit(gateway, event, budget_ms, observe)
    decision = outcome.decision or {}
    evaluated = outcome.status == "evaluated"
    return {
        "event_id": event.event_id,
        "decision_id": decision.get("decision_id") or decision_id_for(event.institution.id, event.event_id),
        "engine_status": outcome.status,
        "alerts": _public(decision.get("alerts", []), _ALERT_FIELDS),
        "unchecked_lines": _public(decision.get("unchecked_lines", []), _UNCHECKED_FIELDS),
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "replayed": bool(decision.get("replayed", False)),
        "detail": outcome.error if not evaluated else None,
        "rulebase_revision": decision.get("rulebase_revision") if evaluated else None,
    }


async def decide(
    gateway: EngineGateway, event: Event, budget_ms: int, started: float, observe: Observer | None = None,
) -> Decision:
    """Send one validated event to the engine and shape the answer (shared by every dialect)."""
    outcome = await _submit(gateway, event, budget_ms, observe)
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
