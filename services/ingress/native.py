"""The native API: ``POST /v1/events``.

The route is declared as FastAPI routes are (its signature documents the body, the key, the
query parameter and the answer in openapi.json), but its requests take :class:`EventRoute`'s
handler: FastAPI's per-request machinery — solving the key and settings dependencies, the
query parameter, parsing the body with the standard library and validating it through a
field adapter — was about a third of the ingress's own work per event (py-spy on
``loadtest.bench_ingress``). The handler does the common case directly: a JSON body that
orjson parses into an object, a known ``X-API-Key``, no query string or a plain
``budget_ms`` in range, an event that validates. Anything else — a missing or unknown key,
malformed JSON, another content type, an invalid event or query — is handed to FastAPI's own
handler for the same request (its body is already read and cached), so every error answer
is exactly FastAPI's, in FastAPI's order.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from services.common.settings import Settings
from services.contracts.decision import Decision
from services.contracts.event import Event
from services.ingress import metrics
from services.ingress.auth import InstitutionDep, SettingsDep, check_institution
from services.service_layer import decide_public

BUDGET_MS_MAX = 60_000


async def _answer(request: Request, event: Event, caller: str, settings: Settings, budget_ms: int | None) -> Response:
    started = request.state.started
    check_institution(caller, event.institution.id)
    # The answer's JSON straight from the worker's decision (a Decision's fields, documented by
    # response_model): no Decision model built and validated again on the way out.
    answer = await decide_public(request.app.state.engine_client, event, budget_ms or settings.budget_ms, started,
                                 metrics.observe_decision)
    return Response(orjson.dumps(answer), media_type="application/json")


def _budget_ms(request: Request) -> tuple[bool, int | None]:
    """(usable, value): no query string, or only a plain ``budget_ms`` within its bounds."""
    query = request.scope.get("query_string", b"")
    if not query:
        return True, None
    name, sep, value = query.partition(b"=")
    if name != b"budget_ms" or not sep or not value.isdigit() or len(value) > 5:
        return False, None
    budget = int(value)
    return 1 <= budget <= BUDGET_MS_MAX, budget


class EventRoute(APIRoute):
    """``POST /v1/events``: the common case without FastAPI's per-request machinery (module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()

        async def handle(request: Request) -> Response:
            settings: Settings = request.app.state.settings
            key = request.headers.get("x-api-key")
            caller = settings.institution_for(key) if key else None
            usable, budget_ms = _budget_ms(request)
            if caller is None or not usable or request.headers.get("content-type") != "application/json":
                return await standard(request)
            body = await request.body()
            try:
                raw = orjson.loads(body)
                if not isinstance(raw, dict):
                    return await standard(request)
                event = Event.model_validate(raw, from_attributes=True)  # as FastAPI validates a body model
            except (orjson.JSONDecodeError, ValidationError):
                return await standard(request)  # FastAPI's own error answer, in its order
            return await _answer(request, event, caller, settings, budget_ms)

        return handle


router = APIRouter(tags=["native"], route_class=EventRoute)


@router.post("/v1/events", response_model=Decision)
async def post_event(
    event: Event,
    request: Request,
    caller: InstitutionDep,
    settings: SettingsDep,
    budget_ms: Annotated[int | None, Query(ge=1, le=BUDGET_MS_MAX, description="Wait budget in ms")] = None,
) -> Response:
    """Evaluate one HIS event and return the alerts that apply."""
    return await _answer(request, event, caller, settings, budget_ms)
