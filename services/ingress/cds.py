"""HL7 CDS Hooks 2.0 on the ingress: discovery, order-select / order-sign services, feedback.

``GET /cds-services`` is public (it lists services, no patient data). The services and their
feedback endpoints take the CDS client's JWT (``Authorization: Bearer``, issuers in
``PRESETTLE_CDS_ISSUERS``) or, unless ``PRESETTLE_CDS_API_KEY=off``, the institution's
``X-API-Key``. Prefetch items the client did not send are read from its ``fhirServer``
(with ``fhirAuthorization``) within the request budget; 412 when they cannot be had. Errors
are the native shape: 422 naming the field at fault, 401, 404 for an unknown service id, 412.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.settings import Settings
from services.dialects import cds
from services.dialects.common import CST
from services.dialects.exceptions import MappingError
from services.ingress import metrics
from services.ingress.auth import ApiKeyHeader, SettingsDep
from services.ingress.feedback import (
    FeedbackUnavailable,
    FeedbackUnknown,
    invalid,
    known_rules,
    not_found,
    write_feedback,
)
from services.ingress.gateway_auth import AuthFailure, JwtVerifier, http_client, now_s
from services.service_layer import decide

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])
ServiceId = Annotated[str, Path(max_length=64, description="presettle-order-select or presettle-order-sign")]
# 401 (no valid JWT or X-API-Key) is documented with every keyed route (services.ingress.openapi).
ERRORS: dict[int | str, dict[str, Any]] = {
    412: {"description": "a prefetch item is missing and cannot be read from the client's fhirServer",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}, "example": {
              "error": "precondition_failed", "field": "prefetch.patient",
              "message": "fhirServer answered Patient/1288992 with HTTP 404"}}}},
}


def _unauthorized(exc: AuthFailure) -> HTTPException:
    return HTTPException(exc.status, {"error": "unauthorized", "field": exc.field, "message": exc.message},
                         headers={"WWW-Authenticate": "Bearer"})


# The CDS Hooks client's JWT (OpenAPI scheme `CdsJwt`); X-API-Key is the alternative.
_bearer = HTTPBearer(scheme_name="CdsJwt", auto_error=False,
                     description="JWT signed by an allowed CDS client (PRESETTLE_CDS_ISSUERS)")
CdsBearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def cds_caller(
    request: Request,
    settings: SettingsDep,
    bearer: CdsBearer,
    x_api_key: ApiKeyHeader,
) -> str:
    """The caller's institution: from the JWT's issuer, or from ``X-API-Key`` when allowed."""
    if bearer is not None:
        authorization = f"Bearer {bearer.credentials}"
        verifier = getattr(request.app.state, "cds_jwt", None)
        if verifier is None:
            verifier = request.app.state.cds_jwt = JwtVerifier(settings)
        if not verifier.enabled:
            raise _unauthorized(AuthFailure("Authorization", "本服务未配置 JWT 签发方 (no CDS client issuers are "
                                            "configured: PRESETTLE_CDS_ISSUERS)"))
        service_id = request.path_params.get("service_id", "")
        try:
            return await verifier.verify(authorization, service_id, str(request.url), now_s())
        except AuthFailure as exc:
            raise _unauthorized(exc) from None
    if request.headers.get("authorization"):  # credentials of another scheme: refused, not ignored
        raise _unauthorized(AuthFailure("Authorization", "只接受 Bearer JWT (only the Bearer scheme is accepted: "
                                        "Authorization: Bearer <JWT>)"))
    if settings.cds_api_key and x_api_key:
        institution = settings.institution_for(x_api_key)
        if institution is None:
            raise _unauthorized(AuthFailure("X-API-Key", "未知的 X-API-Key (unknown API key)"))
        return institution
    accepted = "a JWT (Authorization: Bearer)" + (" or X-API-Key" if settings.cds_api_key else "")
    raise _unauthorized(AuthFailure("Authorization", f"缺少鉴权信息 (missing credentials: send {accepted})"))


CallerDep = Annotated[str, Depends(cds_caller)]


# -- prefetch fallback: read what the client did not prefetch from its FHIR server ----------------
def _precondition(field: str, message: str) -> HTTPException:
    return HTTPException(412, {"error": "precondition_failed", "field": field, "message": message})


def _fhir_allowed(server: str, settings: Settings) -> bool:
    if not server.startswith(("http://", "https://")):
        return False
    allowed = settings.cds_fhir_server_list
    if allowed:
        return any(server == u or server.startswith(u + "/") for u in allowed)
    return settings.env != "production"  # production: only the servers listed in PRESETTLE_CDS_FHIR_SERVERS


def prefetch_queries(body: cds.CdsHookRequest) -> dict[str, str]:
    """The prefetch templates of our services, filled from the context (encounter only with an encounterId)."""
    pid = quote(body.context.patientId, safe="")
    queries = {"patient": f"Patient/{pid}", "conditions": f"Condition?patient={pid}&clinical-status=active"}
    if body.context.encounterId:
        queries["encounter"] = f"Encounter/{quote(body.context.encounterId, safe='')}"
    return queries


async def fill_prefetch(body: cds.CdsHookRequest, settings: Settings, deadline: float) -> None:
    """Fetch the missing prefetch items from ``fhirServer`` (in parallel, bounded by the budget).

    Without ``fhirServer`` only a missing ``patient`` is fatal (412); with it, every item left out
    is read and any that cannot be read is a 412 naming it. An item sent as ``null`` is not read
    (the client says there is no such data)."""
    prefetch = dict(body.prefetch or {})
    if "patient" in prefetch and prefetch["patient"] is None:  # the spec: null = the client has no such data
        raise _precondition("prefetch.patient", "prefetch.patient is null: the CDS client has no Patient "
                            f"{body.context.patientId[:64]!r}")
    # Only what the client left out is read: a null item means "no such data" (CDS Hooks 2.0 prefetch).
    missing = {k: q for k, q in prefetch_queries(body).items() if k not in prefetch}
    if not missing:
        return
    server = (body.fhirServer or "").rstrip("/")
    if not server or not _fhir_allowed(server, settings):
        if "patient" in missing:
            why = ("the request has no fhirServer to read it from" if not server else
                   f"fhirServer {server[:100]} is not an allowed FHIR server (PRESETTLE_CDS_FHIR_SERVERS)")
            raise _precondition("prefetch.patient", f"prefetch.patient is missing and {why}; send prefetch.patient "
                                "(Patient/{{context.patientId}}) or a fhirServer")
        return
    timeout = min(settings.cds_fhir_timeout_ms / 1000, deadline - time.perf_counter())
    if timeout <= 0:
        raise _precondition(f"prefetch.{next(iter(missing))}", "no time left in the budget to read fhirServer")
    headers = {"Accept": "application/fhir+json, application/json"}
    auth = body.fhirAuthorization or {}
    token = auth.get("access_token") if isinstance(auth, dict) else None
    if token:
        headers["Authorization"] = f"{auth.get('token_type') or 'Bearer'} {token}"

    async def read(client: httpx.AsyncClient, key: str, query: str) -> tuple[str, Any]:
        url = f"{server}/{query}"
        try:
            resp = await client.get(url)
        except httpx.TimeoutException:
            raise _precondition(f"prefetch.{key}", f"fhirServer did not answer {query} within "
                                f"{round(timeout * 1000)} ms") from None
        except httpx.HTTPError as exc:
            raise _precondition(f"prefetch.{key}", f"fhirServer could not be reached for {query} "
                                f"({type(exc).__name__})") from None
        if resp.status_code != 200:
            raise _precondition(f"prefetch.{key}", f"fhirServer answered {query} with HTTP {resp.status_code}")
        try:
            doc = resp.json()
        except ValueError:
            raise _precondition(f"prefetch.{key}", f"fhirServer's answer to {query} is not JSON") from None
        expected = "Bundle" if key == "conditions" else query.split("/", 1)[0]
        if not isinstance(doc, dict) or doc.get("resourceType") != expected:
            raise _precondition(f"prefetch.{key}", f"fhirServer's answer to {query} is not a FHIR {expected}")
        return key, doc

    async with http_client(timeout, headers) as client:
        results = await asyncio.gather(*(read(client, k, q) for k, q in missing.items()), return_exceptions=True)
    for item in results:
        if isinstance(item, BaseException):
            raise item
    for key, doc in results:  # type: ignore[misc]
        prefetch[key] = doc
    body.prefetch = prefetch


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


@router.post("/{service_id}", response_model=cds.CdsHookResponse, response_model_exclude_none=True,
             responses=ERRORS)
async def call_service(
    service_id: ServiceId,
    body: cds.CdsHookRequest,
    request: Request,
    caller: CallerDep,
    settings: SettingsDep,
    budget_ms: Annotated[int | None, Query(ge=1, le=60_000, description="Wait budget in ms (a fhirServer read "
                                           "counts against it)")] = None,
) -> dict[str, Any]:
    """Check the draft orders against the fund rules: one card per alert (uuid = alert id)."""
    _service(service_id)
    budget = budget_ms or settings.budget_ms
    started = request.state.started
    fetch_started = time.perf_counter()
    await fill_prefetch(body, settings, started + budget / 1000)
    fetch_ms = round((time.perf_counter() - fetch_started) * 1000)
    try:
        plan = cds.plan_hook(body, service_id, caller, datetime.now(CST))
    except MappingError as exc:
        raise invalid(exc.field, exc.message) from None
    except (ValueError, TypeError, AttributeError, OverflowError, OSError) as exc:
        # A FHIR shape the mapping did not expect (e.g. a number where an object belongs): the
        # request is at fault, never a 500.
        raise invalid("context", f"unreadable FHIR content ({type(exc).__name__}: {exc})"[:300]) from None
    remaining_ms = max(1, budget - fetch_ms)  # a fhirServer read counts against the budget
    decision = await decide(request.app.state.engine_client, plan.event, remaining_ms, started,
                            metrics.observe_decision)
    return cds.hook_response(decision)


@router.post("/{service_id}/feedback", response_model=cds.CdsFeedbackResponse)
async def service_feedback(
    service_id: ServiceId, body: cds.CdsFeedbackRequest, request: Request, caller: CallerDep,
) -> dict[str, Any]:
    """CDS Hooks feedback: accepted / overridden (with overrideReason) per card."""
    _service(service_id)
    try:
        records = cds.feedback_records(body, service_id, caller, datetime.now(CST), known_rules(request))
    except MappingError as exc:
        raise invalid(exc.field, exc.message) from None
    try:
        await write_feedback(request, records, [f"feedback[{i}].card" for i in range(len(records))])
    except FeedbackUnavailable as exc:
        raise HTTPException(503, {"error": "unavailable", "message": str(exc)}) from None
    except FeedbackUnknown as exc:
        raise not_found(exc) from None
    return {"recorded": [{"card": r["alert_id"], "rule_id": r["rule_id"], "outcome": r["outcome"]}
                         for r in records]}
