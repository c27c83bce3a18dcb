"""The native API: ``POST /v1/events``."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from services.ingress import metrics
from services.ingress.auth import InstitutionDep, SettingsDep, check_institution
from services.ingress.engine_client import EngineClient
from services.rules.decision import decision_id_for
from services.rules.model import Event

router = APIRouter(tags=["native"])


class DecisionPublic(BaseModel):
    event_id: str
    decision_id: str = Field(description="Deterministic per (institution, event_id): a retry gets the same id")
    engine_status: Literal["evaluated", "timeout", "unavailable"] = Field(
        description="evaluated: alerts are complete; timeout: the budget ran out (alerts empty, the decision "
        "still completes and is recorded); unavailable: the broker or engine could not take the event"
    )
    alerts: list[dict[str, Any]]
    latency_ms: float
    replayed: bool = Field(False, description="true when this answers a retry from the recorded decision")
    detail: str | None = None


async def decide(
    client: EngineClient, event: Event, budget_ms: int, started: float
) -> DecisionPublic:
    """Send one validated event to the engine and shape the answer (shared by every dialect)."""
    wire = event.to_wire()
    metrics.EVENTS_IN.labels(str(event.scene)).inc()
    t0 = time.perf_counter()
    outcome = await client.submit(event.patient.id.encode(), wire, budget_ms / 1000.0)
    metrics.ENGINE_STATUS.labels(outcome.status).inc()
    if outcome.status == "evaluated":
        metrics.DECISION_LATENCY.observe(time.perf_counter() - t0)
    elif outcome.status == "timeout":
        metrics.BUDGET_TIMEOUTS.inc()
    decision = outcome.decision or {}
    return DecisionPublic(
        event_id=event.event_id,
        decision_id=decision.get("decision_id") or decision_id_for(event.institution.id, event.event_id),
        engine_status=outcome.status,  # type: ignore[arg-type]
        alerts=decision.get("alerts", []),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        replayed=bool(decision.get("replayed", False)),
        detail=outcome.error if outcome.status != "evaluated" else None,
    )


@router.post("/v1/events", response_model=DecisionPublic)
async def post_event(
    event: Event,
    request: Request,
    caller: InstitutionDep,
    settings: SettingsDep,
    budget_ms: Annotated[int | None, Query(ge=1, le=60_000, description="Wait budget in ms")] = None,
) -> DecisionPublic:
    """Evaluate one HIS event and return the alerts that apply."""
    started = request.state.started
    check_institution(caller, event.institution.id)
    return await decide(request.app.state.engine_client, event, budget_ms or settings.budget_ms, started)
