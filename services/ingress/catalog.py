"""Knowledge-base and rule lookups, and the bureau's insured-status feed."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from services.common.rulebase_feed import catalog as rulebase_catalog
from services.contracts.common import ID_PATTERN
from services.contracts.provider_status import DoctorStatus, InstitutionStatus, ProviderStatusBase
from services.contracts.status import PatientStatus
from services.ingress.auth import AdminDep, AnyKey, PrincipalDep, SettingsDep, require_role
from services.rules.timeutil import day_of_date

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


# At least this long for the provider-status routes (admin calls, not the HIS's hot path): every
# worker polls the provider-status topic every 50 ms (services/common/provider_feed.py).
PROVIDER_BUDGET_S = 2.0


async def _provider_status(body: ProviderStatusBase, request: Request, settings: Any) -> JSONResponse:
    """Write the record (acks=all), then probe every events partition until its worker has read it."""
    loop = asyncio.get_running_loop()
    budget = max(settings.budget_ms / 1000.0, PROVIDER_BUDGET_S)
    deadline = loop.time() + budget
    client = request.app.state.engine_client
    wire = body.to_wire()
    if not client.available:
        raise HTTPException(503, {"error": "unavailable", "message": "broker unreachable"})
    try:
        offset = await request.app.state.providers.publish(wire, budget)
    except Exception as exc:  # not acknowledged: nothing recorded
        raise HTTPException(503, {"error": "unavailable",
                                  "message": f"the broker did not take the record ({type(exc).__name__})"}) from None
    applied = await client.providers_applied(offset, max(0.0, deadline - loop.time()))
    return JSONResponse(status_code=200 if applied else 202,
                        content={"applied": applied, body.subject + "_id": body.subject_id, "status": wire["status"],
                                 "effective_from": body.effective_from.isoformat(), "revoked": body.revoked,
                                 "offset": offset})


@status_router.post("/v1/institution-status")
async def institution_status(body: InstitutionStatus, request: Request, _: AdminDep,
                             settings: SettingsDep) -> JSONResponse:
    """Record a 定点协议 status period (active, suspended, terminated) of an institution; `revoked: true`
    withdraws the period recorded for the same `effective_from`.

    Written (acks=all) to the provider-status topic, which every worker reads whole (events are
    partitioned by patient: any worker may judge a line at any institution). 200 `applied: true`
    once the worker of every events partition has read it — an event sent afterwards is judged
    with it (rule R42); 202 `applied: false` when the budget (at least 2 s) ran out first (it is
    recorded and will be applied); 503 when the broker did not take it. A retry of the same
    update is harmless (the same key, the same period)."""
    return await _provider_status(body, request, settings)


@status_router.post("/v1/doctor-status")
async def doctor_status(body: DoctorStatus, request: Request, _: AdminDep, settings: SettingsDep) -> JSONResponse:
    """Record a 医保医师 payment-qualification status period (active, suspended) of a doctor; `revoked:
    true` withdraws the period recorded for the same `effective_from`. Acknowledged as
    `POST /v1/institution-status` (rule R43 reads it)."""
    return await _provider_status(body, request, settings)


ProviderId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
On = Annotated[date | None, Query(description="also say the status in force on this day")]


def _lookup(request: Request, who: Any, subject: str, sid: str, on: date | None) -> dict[str, Any]:
    require_role(who, ("admin", "reviewer", "senior_reviewer"))
    providers = request.app.state.providers
    out: dict[str, Any] = {"subject": subject, "id": sid, "periods": providers.providers.timeline(subject, sid),
                           "position": providers.position}
    if on is not None:
        period = providers.providers.on(subject, sid, day_of_date(on.isoformat()))
        out["on"] = {"date": on.isoformat(), "status": period.status if period else "active",
                     "recorded": period is not None}
    return out


@status_router.get("/v1/institution-status/{institution_id}")
async def institution_status_lookup(institution_id: ProviderId, request: Request, who: PrincipalDep,
                                    on: On = None) -> dict[str, Any]:
    """An institution's 定点协议 status periods as every worker holds them (admin and agency staff);
    `?on=YYYY-MM-DD` adds the status in force that day (`active` when none is recorded)."""
    return _lookup(request, who, "institution", institution_id, on)


@status_router.get("/v1/doctor-status/{doctor_id}")
async def doctor_status_lookup(doctor_id: ProviderId, request: Request, who: PrincipalDep,
                               on: On = None) -> dict[str, Any]:
    """A doctor's 医保支付资格 status periods (admin and agency staff); `?on=` as for institutions."""
    return _lookup(request, who, "doctor", doctor_id, on)
