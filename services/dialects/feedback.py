"""Doctor feedback on alerts, from every dialect, as one record joined to its decision.

An alert id is ``<decision_id>.<rule_id>.<n>`` (services.rules.decision), so the
join to the decision and the rule needs no state: the record written to the
feedback topic carries both, keyed by decision id, and any ingress instance can
write it. Outcomes are the CDS Hooks ones:

* ``accepted``   — the doctor followed the alert (3103 ``dspo_way`` 2 返回修改);
* ``overridden`` — the doctor continued anyway (3103 ``dspo_way`` 1 继续执行), with a reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.contracts.feedback import REASON_MAX, Dialect, FeedbackRecord
from services.contracts.feedback import FeedbackOutcome as Outcome
from services.contracts.ids import DECISION_RE, RULE_RE, parse_alert_id
from services.dialects.exceptions import MappingError

__all__ = ["REASON_MAX", "Dialect", "FeedbackIn", "FeedbackPublic", "FeedbackRecord", "Outcome", "record",
           "split_alert_id"]


class FeedbackIn(BaseModel):
    """``POST /v1/alerts/{alert_id}/feedback``: what the doctor did with one alert."""

    # validate_default: the reason check runs when "reason" is absent too
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, validate_default=True)

    outcome: Outcome = Field(description="accepted: the order was changed as the alert advised; "
                             "overridden: the doctor continued anyway")
    reason: str | None = Field(default=None, max_length=REASON_MAX,
                               description="why the doctor continued; required when overridden")
    reason_code: str | None = Field(default=None, max_length=64,
                                    description="a coded reason, e.g. one of the CDS overrideReasons codes")

    @field_validator("reason", mode="after")
    @classmethod
    def _reason_when_overridden(cls, value: str | None, info: Any) -> str | None:
        if info.data.get("outcome") == "overridden" and not value:
            raise ValueError("a reason is required when the alert is overridden")
        return value or None


class FeedbackPublic(BaseModel):
    """Answer to native feedback: the record as written."""

    alert_id: str
    decision_id: str
    rule_id: str
    outcome: Outcome
    recorded: bool = True
    duplicate: bool = Field(False, description="true when this outcome was already recorded for this alert "
                            "(a retry: counted once)")


def split_alert_id(alert_id: str, field: str, known_rules: frozenset[str] | None = None) -> tuple[str, str]:
    """(decision_id, rule_id) of one of our alert ids, or MappingError naming ``field``."""
    parsed = parse_alert_id(alert_id.strip()) if isinstance(alert_id, str) else None
    if parsed is None or not DECISION_RE.match(parsed[0]) or not RULE_RE.match(parsed[1]):
        raise MappingError(field, f"{str(alert_id)[:80]!r} is not a PreSettle alert id "
                                  "(expected <decision_id>.<rule_id>.<n>, e.g. d-0a1b2c3d4e5f60718293.R19.1)")
    decision_id, rule_id, _ = parsed
    if known_rules is not None and rule_id not in known_rules:
        raise MappingError(field, f"rule {rule_id} is not a rule of this rule base")
    return decision_id, rule_id


def record(
    alert_id: str,
    outcome: Outcome,
    *,
    reason: str | None,
    institution_id: str,
    dialect: Dialect,
    received_at: datetime,
    field: str = "alert_id",
    reason_code: str | None = None,
    source_ref: str | None = None,
    known_rules: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The feedback record for one alert (validated; MappingError names ``field`` when not ours)."""
    decision_id, rule_id = split_alert_id(alert_id, field, known_rules)
    return FeedbackRecord(
        alert_id=alert_id.strip(), decision_id=decision_id, rule_id=rule_id, outcome=outcome,
        reason=(reason or None) and reason[:REASON_MAX], reason_code=reason_code,
        institution_id=institution_id, dialect=dialect, received_at=received_at.isoformat(),
        source_ref=source_ref,
    ).model_dump(mode="json")
