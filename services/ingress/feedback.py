"""Doctor feedback on alerts: ``POST /v1/alerts/{alert_id}/feedback`` and the shared writer.

Every dialect's feedback (native, NHSA 3103, CDS Hooks) ends in :func:`write_feedback`:
one record per alert on the feedback topic, keyed by decision id, acknowledged by the
broker, then counted in ``presettle_feedback_total{rule_id, outcome}`` — the override
rate per rule is how a bureau finds noisy rules.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError

from services.dialects import feedback as fb
from services.dialects.common import CST
from services.dialects.exceptions import MappingError
from services.ingress import metrics
from services.ingress.auth import InstitutionDep

log = logging.getLogger("presettle.ingress")

router = APIRouter(tags=["feedback"])


class FeedbackUnavailable(RuntimeError):
    """The broker or the worker did not take the feedback (the client may send it again)."""


class FeedbackUnknown(LookupError):
    """Feedback on an alert that was never issued to the caller's institution (answered 404)."""

    def __init__(self, alert_id: str, field: str) -> None:
        super().__init__(alert_id)
        self.alert_id = alert_id
        self.field = field


# Feedback is not on the HIS's critical path: wait longer than an event's budget.
FEEDBACK_BUDGET_S = 5.0


def known_rules(request: Request) -> frozenset[str]:
    """Rule ids of the loaded rule base: feedback on other ids is refused, which also keeps the
    metric's ``rule_id`` label bounded."""
    return request.app.state.known_rules


async def write_feedback(request: Request, records: list[dict[str, Any]],
                         fields: list[str] | None = None) -> list[str]:
    """Check each record against the worker's alert index, which writes it to the feedback topic
    once per alert and outcome; count what was recorded. Returns each record's status
    (``recorded`` or ``duplicate``); raises FeedbackUnknown naming the first unknown alert."""
    client = request.app.state.engine_client
    topic = request.app.state.settings.alert_index_topic
    if not client.available:
        raise FeedbackUnavailable("broker unreachable")
    asks = [
        client.submit(rec["decision_id"].encode(),
                      {"kind": "feedback", "alert_id": rec["alert_id"], "outcome": rec["outcome"],
                       "institution_id": rec["institution_id"], "record": rec},
                      FEEDBACK_BUDGET_S, topic=topic)
        for rec in records
    ]
    outcomes = await asyncio.gather(*asks)
    statuses: list[str] = []
    for rec, outcome in zip(records, outcomes, strict=True):
        if outcome.status != "evaluated":
            log.warning("feedback not checked: %s", outcome.status)
            raise FeedbackUnavailable(f"the feedback was not confirmed ({outcome.status}); send it again")
        status = str((outcome.decision or {}).get("feedback", {}).get("status", ""))
        statuses.append(status)
        if status == "recorded":
            metrics.FEEDBACK.labels(rec["rule_id"], rec["outcome"]).inc()
    for n, (rec, status) in enumerate(zip(records, statuses, strict=True)):
        if status not in ("recorded", "duplicate"):
            raise FeedbackUnknown(rec["alert_id"], fields[n] if fields else "alert_id")
    return statuses


def not_found(exc: FeedbackUnknown) -> HTTPException:
    return HTTPException(404, {"error": "not_found", "field": exc.field,
                               "message": f"{exc.field}: no alert {exc.alert_id[:80]!r} was issued to this institution"})


def now() -> datetime:
    return datetime.now(CST)


def invalid(field: str, message: str) -> RequestValidationError:
    """A 422 in the native shape (``{"error": "invalid_request", "field": …}``) for a field we checked."""
    return RequestValidationError([{"loc": (field,), "msg": message, "type": "value_error"}])


@router.post("/v1/alerts/{alert_id}/feedback", response_model=fb.FeedbackPublic)
async def post_feedback(
    alert_id: Annotated[str, PathParam(max_length=128, description="the alert's alert_id (= NHSA jr_id = CDS card uuid)")],
    body: fb.FeedbackIn,
    request: Request,
    caller: InstitutionDep,
) -> fb.FeedbackPublic:
    """Record what the doctor did with one alert: accepted, or overridden with a reason."""
    try:
        rec = fb.record(alert_id, body.outcome, reason=body.reason, reason_code=body.reason_code,
                        institution_id=caller, dialect="native", received_at=now(), known_rules=known_rules(request))
    except MappingError as exc:
        raise invalid(exc.field, exc.message) from None
    try:
        [status] = await write_feedback(request, [rec])
    except FeedbackUnavailable as exc:
        raise HTTPException(503, {"error": "unavailable", "message": str(exc)}) from None
    except FeedbackUnknown as exc:
        raise not_found(exc) from None
    return fb.FeedbackPublic(alert_id=rec["alert_id"], decision_id=rec["decision_id"], rule_id=rec["rule_id"],
                             outcome=rec["outcome"], duplicate=status == "duplicate")
