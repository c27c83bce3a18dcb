"""Knowledge-base and rule lookups, and the bureau's insured-status feed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from services.common.rulebase_feed import catalog as rulebase_catalog
from services.contracts.status import PatientStatus
from services.ingress.auth import AdminDep, AnyKey, SettingsDep

router = APIRouter(tags=["knowledge base"])


Q = Annotated[str, Query(min_length=1, max_length=64, description="name or code (substring)")]
Limit = Annotated[int, Query(ge=1, le=200)]


@router.get("/v1/kb/items")
async def kb_items(request: Request, _: AnyKey, q: Q, limit: Limit = 20) -> dict[str, Any]:
    """Drugs, medical services and consumables whose name or code contains `q`."""
    return {"q": q, "items": request.app.state.engine.search_items(q, limit)}


@router.get("/v1/kb/diagnoses")
async def kb_diagnoses(request: Request, _: AnyKey, q: Q, limit: Limit = 20) -> dict[str, Any]:
    """ICD-10 diagnoses whose name or code contains `q`."""
    return {"q": q, "diagnoses": request.app.state.engine.search_diagnoses(q, limit)}


@router.get("/v1/rules")
async def rules(request: Request, _: AnyKey) -> dict[str, Any]:
    """The rule base this ingress serves: its `revision` (content hash), when it became active
    (`activated_at`, null for the packaged rule base), and the rules: ids, versions, modes
    (active, shadow, off), parameters (with per-region overrides) and effective dates."""
    return rulebase_catalog(request.app.state.rulebase.current)


status_router = APIRouter(tags=["bureau"])


@status_router.post("/v1/patient-status")
async def patient_status(body: PatientStatus, request: Request, _: AdminDep, settings: SettingsDep) -> JSONResponse:
    """Record an insured-status period (deceased, suspended 失信, uninsured, active) for a patient.

    Written to the status topic keyed by patient id and folded by the worker into
    the same per-patient state the rules read. 200 `applied: true` once the
    worker has folded it in; 202 `applied: false` when the budget ran out first
    (the update is in the topic and will be applied); 503 when the broker did
    not take it.
    """
    outcome = await request.app.state.engine_client.submit(
        body.patient_id.encode(), body.to_wire(), settings.budget_ms / 1000.0, topic=settings.status_topic
    )
    if outcome.status == "unavailable":
        raise HTTPException(503, {"error": "unavailable", "message": outcome.error or "broker unavailable"})
    applied = outcome.status == "evaluated"
    return JSONResponse(status_code=200 if applied else 202,
                        content={"applied": applied, "patient_id": body.patient_id, "status": body.status})
