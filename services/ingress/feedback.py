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
    """The broker did not take the feedback record."""


def known_rules(request: Request) -> frozenset[str]:
    """Rule ids of the loaded rule base: feedback on other ids is refused, which also keeps the
    metric's ``rule_id`` label bounded."""
    return request.app.state.known_rules


async def write_feedback(request: Request, records: list[dict[str, Any]]) -> None:
    """Write each record to the feedback topic (waiting for the ack), then count it."""
    client = request.app.state.engine_client
    topic = request.app.state.settings.feedback_topic
    if not client.available:
        raise FeedbackUnavailable("broker unreachable")
    try:
        # All records, acknowledged together; counted only once every one is in, so a client
        # resending after a partial failure does not count the first ones twice.
        await asyncio.gather(*(client.publish(topic, rec["decision_id"].encode(), rec) for rec in records))
    except Exception as exc:  # timeout or Kafka error
        log.warning("feedback not recorded: %s", type(exc).__name__)
        raise FeedbackUnavailable(f"the broker did not accept the feedback ({type(exc).__name__})") from exc
    for rec in records:
        metrics.FEEDBACK.labels(rec["rule_id"], rec["outcome"]).inc()


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
        await write_feedback(request, [rec])
    except FeedbackUnavailable as exc:
        raise HTTPException(503, {"error": "unavailable", "message": str(exc)}) from None
    return fb.FeedbackPublic(alert_id=rec["alert_id"], decision_id=rec["decision_id"], rule_id=rec["rule_id"],
                             outcome=rec["outcome"])
