"""The national platform's dialect on the ingress: ``POST /nhsa/3101|3102|3103`` and ``POST /nhsa``.

Every answer is the national envelope. Failures are ``infcode: -1`` with an ``err_msg``
naming the field at fault, with HTTP 200 — except authentication (401: a bad gateway
signature, timestamp or nonce, an unknown paasid, a missing or unknown ``X-API-Key``) and
authorisation (403: ``fixmedins_code`` is not the caller's institution), which keep their
HTTP status but answer in the envelope too, with a Chinese ``err_msg`` (English beside it).
Never a 500.

Callers authenticate as the national platform's gateway expects (``x-tif-*`` signed headers,
services.ingress.gateway_auth) or with ``X-API-Key``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.contracts.decision import Decision
from services.contracts.envelope import history_headers
from services.dialects import nhsa
from services.dialects.common import CST, first_error, unreadable_body
from services.dialects.exceptions import MappingError
from services.ingress import metrics
from services.ingress.auth import ApiKeyHeader, SettingsDep
from services.ingress.engine_client import EngineClient
from services.ingress.feedback import FeedbackUnavailable, FeedbackUnknown, known_rules, write_feedback
from services.ingress.gateway_auth import AuthFailure, ReplayCache, has_gateway_headers, now_s, verify_gateway
from services.service_layer import decide, not_decided

log = logging.getLogger("presettle.ingress")
TIME_FMT = "%Y-%m-%d %H:%M:%S"


class NhsaError(Exception):
    """Answer with infcode -1 (and ``status``)."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def envelope(infcode: int, err_msg: str | None, output: Any, received: datetime) -> dict[str, Any]:
    return {
        "infcode": infcode, "inf_refmsgid": f"presettle-{uuid.uuid4().hex}",
        "refmsg_time": received.strftime(TIME_FMT), "respond_time": datetime.now(CST).strftime(TIME_FMT),
        "err_msg": err_msg, "warn_msg": None, "output": output,
    }


def error_response(message: str, status: int = 200, received: datetime | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, headers=headers,
                        content=envelope(-1, message, None, received or datetime.now(CST)))


class NhsaRoute(APIRoute):
    """Turn every failure of an NHSA route into the national envelope (never FastAPI's 422 or a 500)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except (RequestValidationError, ValidationError) as exc:
                field, message = first_error([dict(e) for e in exc.errors()])
                return error_response(nhsa.describe(field, message))
            except MappingError as exc:
                return error_response(nhsa.describe(exc.field, exc.message))
            except NhsaError as exc:
                return error_response(exc.message, exc.status)
            except AuthFailure as exc:
                return error_response(exc.message, exc.status)
            except StarletteHTTPException as exc:  # 401 from the API-key dependency
                unreadable = unreadable_body(exc)
                if unreadable is not None:  # not UTF-8: answered like any body that is not JSON
                    return error_response(nhsa.describe("body", unreadable))
                detail = exc.detail
                message = detail.get("message", str(detail)) if isinstance(detail, dict) else str(detail)
                at = detail.get("field") if isinstance(detail, dict) else None
                return error_response(f"{at}: {message}" if at else message, exc.status_code,
                                      headers=getattr(exc, "headers", None))
            except Exception as exc:
                log.exception("NHSA request failed on %s", request.url.path)
                return error_response(f"internal error ({type(exc).__name__}); nothing was analysed")

        return handler


async def nhsa_caller(
    request: Request,
    settings: SettingsDep,
    x_api_key: ApiKeyHeader,
    x_tif_paasid: Annotated[str | None, Header(description="gateway: the paasid PreSettle issued")] = None,
    x_tif_timestamp: Annotated[str | None, Header(description="gateway: Unix time in seconds")] = None,
    x_tif_nonce: Annotated[str | None, Header(description="gateway: a random string, used once")] = None,
    x_tif_signature: Annotated[str | None, Header(description="gateway: hex SHA-256 of timestamp + secret + "
                                                  "nonce + timestamp")] = None,
) -> str:
    """The caller's institution: from the gateway signature when any ``x-tif-*`` header is sent, else
    from ``X-API-Key`` (AuthFailure → 401 in the envelope)."""
    if has_gateway_headers(request.headers):
        nonces = getattr(request.app.state, "gateway_nonces", None)
        if nonces is None:
            nonces = request.app.state.gateway_nonces = ReplayCache()
        return verify_gateway(request.headers, settings, nonces, now_s())
    if not x_api_key:
        raise AuthFailure("X-API-Key", "缺少鉴权信息：请发送 x-tif-* 网关签名请求头或 X-API-Key (missing credentials: "
                          "sign with the x-tif-* gateway headers or send X-API-Key)")
    institution = settings.institution_for(x_api_key)
    if institution is None:
        raise AuthFailure("X-API-Key", "未知的 X-API-Key (unknown API key)")
    return institution


CallerDep = Annotated[str, Depends(nhsa_caller)]
router = APIRouter(prefix="/nhsa", tags=["nhsa"], route_class=NhsaRoute)
Budget = Annotated[int | None, Query(ge=1, le=60_000, description="Wait budget in ms for the whole request "
                                     "(earlier encounters and the current visit); default PRESETTLE_BUDGET_MS")]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": nhsa.NhsaErrorResponse, "description": "bad gateway signature, timestamp or nonce, unknown "
          "paasid, missing or unknown X-API-Key (infcode -1, err_msg in Chinese and English)"},
    403: {"model": nhsa.NhsaErrorResponse, "description": "fixmedins_code is not the caller's institution (infcode -1)"},
}


def _check(req: nhsa.Envelope, expected: tuple[str, ...], caller: str) -> None:
    if req.infno not in expected:
        raise NhsaError(f"infno: 交易编号 {req.infno} 不在此地址受理 (not answered here; expected "
                        f"{' or '.join(expected)})")
    if req.fixmedins_code != caller:
        raise NhsaError(f"fixmedins_code: 定点医药机构编号 {req.fixmedins_code} 与调用方机构 {caller} 不符 "
                        f"(fixmedins_code is not the institution of this paasid or API key)", 403)


async def _run_plan(client: EngineClient, events_topic: str, plan: nhsa.PatientPlan, deadline: float,
                    started: float) -> Decision:
    """Earlier encounters first (in order, on the patient's partition, acknowledged), then the current visit."""
    current = plan.current
    if plan.history:
        problem = None
        if not client.available:
            problem = "broker unreachable"
        else:
            try:
                # "history": the worker merges them into the patient's history without
                # evaluating rules or writing decisions. Sent in order, acknowledged together,
                # within the request's budget.
                await client.publish_many(events_topic, plan.key, [ev.to_wire() for ev in plan.history],
                                          timeout_s=deadline - time.perf_counter(), headers=history_headers())
            except Exception as exc:  # timeout or Kafka error
                problem = f"the broker did not accept the earlier encounters in time ({type(exc).__name__})"
        if problem:
            return not_decided(current, started, "unavailable", problem)
    remaining_ms = max(1, int((deadline - time.perf_counter()) * 1000))
    return await decide(client, current, remaining_ms, started, metrics.observe_decision)


async def _analyse(request: Request, req: nhsa.NhsaAnalysisRequest, expected: tuple[str, ...], caller: str,
                   budget_ms: int) -> JSONResponse:
    received = datetime.now(CST)
    _check(req, expected, caller)
    plans = nhsa.plan_analysis(req)
    started = request.state.started
    deadline = started + budget_ms / 1000
    client: EngineClient = request.app.state.engine_client
    topic = request.app.state.settings.events_topic
    decisions = await asyncio.gather(*(_run_plan(client, topic, p, deadline, started) for p in plans))
    infcode, err_msg, output = nhsa.analysis_output(req, plans, list(decisions), received, datetime.now(CST))
    return JSONResponse(envelope(infcode, err_msg, output, received))


async def _feedback(request: Request, req: nhsa.NhsaFeedbackRequest, caller: str) -> JSONResponse:
    received = datetime.now(CST)
    _check(req, (nhsa.FEEDBACK_INFNO,), caller)
    records = nhsa.feedback_records(req, caller, received, known_rules(request))
    try:
        await write_feedback(request, records,
                             [f"input.data.warns[{i}].warn_rslt_id" for i in range(len(records))])
    except FeedbackUnavailable as exc:
        raise NhsaError(f"feedback not recorded: {exc}; send it again") from None
    except FeedbackUnknown as exc:
        raise NhsaError(f"{exc.field}: no alert {exc.alert_id[:80]!r} was issued to this institution",
                        status=404) from None
    output = {"warns": [{"warn_rslt_id": r["alert_id"], "rule_id": r["rule_id"], "outcome": r["outcome"]}
                        for r in records]}
    return JSONResponse(envelope(0, None, output, received))


@router.post("/3101", response_model=nhsa.NhsaAnalysisResponse, responses=ERRORS)
async def nhsa_3101(
    body: nhsa.NhsaAnalysisRequest, request: Request, caller: CallerDep, settings: SettingsDep,
    budget_ms: Budget = None,
) -> JSONResponse:
    """3101 明细审核事前分析服务: the current visit of each patient, at its trig_scen (usually 2 or 4)."""
    return await _analyse(request, body, ("3101",), caller, budget_ms or settings.budget_ms)


@router.post("/3102", response_model=nhsa.NhsaAnalysisResponse, responses=ERRORS)
async def nhsa_3102(
    body: nhsa.NhsaAnalysisRequest, request: Request, caller: CallerDep, settings: SettingsDep,
    budget_ms: Budget = None,
) -> JSONResponse:
    """3102 明细审核事中分析服务: as 3101, at the in-process scenes (usually 7 or 9)."""
    return await _analyse(request, body, ("3102",), caller, budget_ms or settings.budget_ms)


FEEDBACK_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": nhsa.NhsaErrorResponse,
          "description": "a warn_rslt_id names no alert issued to this institution (infcode -1)"},
}


@router.post("/3103", response_model=nhsa.NhsaFeedbackResponse, responses=FEEDBACK_ERRORS)
async def nhsa_3103(body: nhsa.NhsaFeedbackRequest, request: Request, caller: CallerDep) -> JSONResponse:
    """3103 事前事中服务反馈服务: 继续执行 (overridden, with a reason) or 返回修改 (accepted) per jr_id."""
    return await _feedback(request, body, caller)


DISPATCH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/NhsaAnalysisRequest"},
        {"$ref": "#/components/schemas/NhsaFeedbackRequest"},
    ]}}},
}


@router.post("", response_model=nhsa.NhsaAnalysisResponse | nhsa.NhsaFeedbackResponse, responses=FEEDBACK_ERRORS,
             openapi_extra={"requestBody": DISPATCH_BODY})
async def nhsa_dispatch(
    request: Request, caller: CallerDep, settings: SettingsDep, budget_ms: Budget = None,
) -> JSONResponse:
    """One address for all three transactions, dispatched on ``infno`` (3101, 3102, 3103)."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise NhsaError(nhsa.describe("body", "the request body is not valid JSON")) from None
    infno = nhsa.envelope_infno(body)
    if infno in nhsa.ANALYSIS_INFNOS:
        req = nhsa.NhsaAnalysisRequest.model_validate(body)
        return await _analyse(request, req, (infno,), caller, budget_ms or settings.budget_ms)
    if infno == nhsa.FEEDBACK_INFNO:
        return await _feedback(request, nhsa.NhsaFeedbackRequest.model_validate(body), caller)
    if infno is None:
        raise NhsaError(nhsa.describe("infno", "required field is missing"))
    raise NhsaError(f"infno: 不支持的交易编号 {infno[:20]} (not supported: 3101, 3102, 3103)")
