"""The review workflow over HTTP: ``/v1/cases`` (初审 · 申诉 · 复审; docs/decisionlog.md).

A case is opened by the sink for every decision with alerts at a settlement scene, or by a
reviewer for any decision (``POST /v1/cases``, retrospective review). ``POST
/v1/cases/{case_id}/{action}`` moves it (services/decisionlog/workflow.py): the role of the key
decides which actions it may take (403 otherwise), the case's state which are allowed now (409
naming them), and every transition is recorded in the case's append-only history with the key's
name, the time, the reason and the amount. Reads and actions stay inside the key's scope: a case
of another institution or region answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.decisionlog import workflow
from services.ingress.auth import PrincipalDep, require_role
from services.ingress.decisions import PAGE_MAX, StoreDep, invalid, not_found

router = APIRouter(tags=["review cases"])

ERRORS = {403: "forbidden", 409: "conflict", 422: "invalid_request"}


class CaseAction(BaseModel):
    """The body of an action: why, how much (yuan), and the institution's attachments (text or links)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(default=None, max_length=workflow.REASON_MAX,
                               description="required for dismiss, appeal, uphold and overturn")
    amount: float | None = Field(default=None, ge=0, description="confirm: the amount confirmed (default: the "
                                 "amount at stake); uphold: the amount to deduct (less than confirmed: partially upheld)")
    attachments: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=workflow.ATTACHMENTS_MAX, description="appeal: evidence as text or links")


class OpenCase(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=workflow.REASON_MAX, description="why the decision is reviewed")


@router.get("/v1/cases")
def list_cases(
    who: PrincipalDep, store: StoreDep,
    state: workflow.State | None = None, overdue: bool | None = None, institution: str | None = None,
    decision_id: str | None = None, cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> dict[str, Any]:
    """Cases in the caller's scope, newest first; ``overdue=true``: past their step's deadline (办理时限)."""
    try:
        page, nxt = store.cases(who.scope, state=state, overdue=overdue, institution=institution,
                                decision_id=decision_id, cursor=cursor, limit=limit)
    except ValueError as exc:
        raise invalid("cursor", str(exc)) from None
    return {"cases": page, "next_cursor": nxt}


@router.get("/v1/cases/{case_id}")
def get_case(case_id: str, who: PrincipalDep, store: StoreDep) -> dict[str, Any]:
    """One case: its state, outcome, amounts, deadline, the actions allowed now and its whole history."""
    found = store.case(case_id, who.scope)
    if found is None:
        raise not_found("case", "case_id", case_id)
    return found


@router.post("/v1/cases", status_code=201)
def open_case(body: OpenCase, who: PrincipalDep, store: StoreDep, request: Request) -> Any:
    """Open a case for any decision (事后, retrospective review); 200 with the existing case if it has one."""
    require_role(who, ("reviewer", "senior_reviewer"))
    settings = request.app.state.settings
    case, new = store.open_case(body.decision_id, who.scope, who.name, who.role, body.reason,
                                settings.review_deadlines)
    if case is None:
        raise not_found("decision", "decision_id", body.decision_id)
    return case if new else JSONResponse(status_code=200, content=case)


@router.post("/v1/cases/{case_id}/{action}")
def act(case_id: str, action: str, body: CaseAction, who: PrincipalDep, store: StoreDep,
        request: Request) -> dict[str, Any]:
    """Take an action: confirm | dismiss (reviewer, 初审), appeal | accept (the institution), take | uphold |
    overturn (senior reviewer, 复审, not the initial reviewer). 409 names the actions allowed in the state."""
    settings = request.app.state.settings
    try:
        found = store.act(case_id, who.scope, action, who.role, who.name, body.reason, body.amount,
                          list(body.attachments), settings.review_deadlines)
    except workflow.WorkflowError as exc:
        raise HTTPException(exc.status, {"error": ERRORS.get(exc.status, "invalid_request"), "field": exc.field,
                                         "message": exc.message}) from None
    if found is None:
        raise not_found("case", "case_id", case_id)
    return found
