"""The feedback record: a doctor's answer to one alert, on the feedback topic (key: decision id)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FeedbackOutcome = Literal["accepted", "overridden"]
Dialect = Literal["native", "nhsa", "cds"]
REASON_MAX = 500


class FeedbackRecord(BaseModel):
    """One feedback record on the feedback topic (key: decision id)."""

    alert_id: str
    decision_id: str
    rule_id: str
    outcome: FeedbackOutcome
    reason: str | None = None
    reason_code: str | None = None
    institution_id: str = Field(description="the institution of the API key that sent the feedback")
    dialect: Dialect
    received_at: str = Field(description="ISO-8601 time the ingress received the feedback")
    source_ref: str | None = Field(default=None, description="3103 msgid / CDS hookInstance or card, when sent")
