"""The native API: ``POST /v1/events``."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.contracts.decision import Decision
from services.contracts.event import Event
from services.ingress import metrics
from services.ingress.auth import InstitutionDep, SettingsDep, check_institution
from services.service_layer import decide_public

router = APIRouter(tags=["native"])


@router.post("/v1/events", response_model=Decision)
async def post_event(
    event: Event,
    request: Request,
    caller: InstitutionDep,
    settings: SettingsDep,
    budget_ms: Annotated[int | None, Query(ge=1, le=60_000, description="Wait budget in ms")] = None,
) -> Response:
    """Evaluate one HIS event and return the alerts that apply."""
    started = request.state.started
    check_institution(caller, event.institution.id)
    # The answer's JSON straight from the worker's decision (a Decision's fields, documented by
    # response_model): no Decision model built and validated again on the way out.
    answer = await decide_public(request.app.state.engine_client, event, budget_ms or settings.budget_ms, started,
                                 metrics.observe_decision)
    return Response(orjson.dumps(answer), media_type="application/json")
