"""HL7 CDS Hooks 2.0 on the ingress: discovery, order-select / order-sign services, feedback.

``GET /cds-services`` is public (it lists services, no patient data); the services and
their feedback endpoints take the institution's ``X-API-Key``. Errors are the native
shape: 422 naming the field at fault, 401, 404 for an unknown service id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from services.dialects import cds
from services.dialects.common import CST
from services.dialects.exceptions import MappingError
from services.ingress import metrics
from services.ingress.auth import InstitutionDep, SettingsDep
from services.ingress.feedback import FeedbackUnavailable, invalid, known_rules, write_feedback
from services.service_layer import decide

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])
ServiceId = Annotated[str, Path(max_length=64, description="presettle-order-select or presettle-order-sign")]


def _service(service_id: str) -> cds.CdsService:
    service = cds.SERVICES.get(service_id)
    if service is None:
        raise HTTPException(404, {"error": "not_found", "field": "service_id",
                                  "message": f"no CDS service {service_id!r}; see GET /cds-services"})
    return service


@router.get("", response_model=cds.CdsDiscovery, response_model_exclude_none=True)
async def discovery() -> dict[str, Any]:
    """CDS Hooks discovery: the services PreSettle offers."""
    return cds.discovery()


@router.post("/{service_id}", response_model=cds.CdsHookResponse, response_model_exclude_none=True)
async def call_service(
    service_id: ServiceId,
    body: cds.CdsHookRequest,
    request: Request,
    caller: InstitutionDep,
    settings: SettingsDep,
    budget_ms: Annotated[int | None, Query(ge=1, le=60_000, description="Wait budget in ms")] = None,
) -> dict[str, Any]:
    """Check the draft orders against the fund rules: one card per alert (uuid = alert id)."""
    _service(service_id)
    try:
        plan = cds.plan_hook(body, service_id, caller, datetime.now(CST))
    except MappingError as exc:
        raise invalid(exc.field, exc.message) from None
    except (ValueError, TypeError, AttributeError, OverflowError, OSError) as exc:
        # A FHIR shape the mapping did not expect (e.g. a number where an object belongs): the
        # request is at fault, never a 500.
        raise invalid("context", f"unreadable FHIR content ({type(exc).__name__}: {exc})"[:300]) from None
    decision = await decide(request.app.state.engine_client, plan.event, budget_ms or settings.budget_ms,
                            request.state.started, metrics.observe_decision)
    return cds.hook_response(decision)


@router.post("/{service_id}/feedback", response_model=cds.CdsFeedbackResponse)
async def service_feedback(
    service_id: ServiceId, body: cds.CdsFeedbackRequest, request: Request, caller: InstitutionDep,
) -> dict[str, Any]:
    """CDS Hooks feedback: accepted / overridden (with overrideReason) per card."""
    _service(service_id)
    try:
        records = cds.feedback_records(body, service_id, caller, datetime.now(CST), known_rules(request))
    except MappingError as exc:
        raise invalid(exc.field, exc.message) from None
    try:
        await write_feedback(request, records)
    except FeedbackUnavailable as exc:
        raise HTTPException(503, {"error": "unavailable", "message": str(exc)}) from None
    return {"recorded": [{"card": r["alert_id"], "rule_id": r["rule_id"], "outcome": r["outcome"]}
                         for r in records]}
