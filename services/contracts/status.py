"""Insured-status updates from the bureau (参保状态): deceased, suspended (失信), uninsured.

The ingress validates ``POST /v1/patient-status`` bodies with :class:`PatientStatus`
and publishes ``PatientStatus.to_wire()``; the worker folds it into the patient
state with ``Engine.apply_status``. The status on a day is decided by the most
recently updated period covering that day, so arrival order does not matter.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.contracts.common import CST, Id

StatusKind = Literal["active", "deceased", "suspended", "uninsured"]
STATUSES: tuple[str, ...] = get_args(StatusKind)


class StatusPeriod(BaseModel):
    """What every status record of the bureau has (patient, institution, doctor): a period and when
    it was recorded. A period is inclusive of both ends; an open period has no ``effective_to``."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    effective_from: date = Field(description="first day the status applies")
    effective_to: date | None = Field(default=None, description="last day it applies (inclusive); open if absent")
    reason: str | None = Field(default=None, max_length=200, description="why (the bureau's words)")
    updated_at: datetime = Field(description="when the bureau recorded it; the latest update wins")

    @field_validator("updated_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=CST) if v.tzinfo is None else v

    @model_validator(mode="after")
    def _period(self) -> "StatusPeriod":
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self


class PatientStatus(StatusPeriod):
    """One insured-status period for a patient, as the bureau reports it."""

    patient_id: Id
    status: StatusKind = Field(
        description="active 正常参保, deceased 死亡, suspended 暂停联网结算(失信), uninsured 未参保/中断")

    @model_validator(mode="after")
    def _death(self) -> "PatientStatus":
        if self.status == "deceased" and self.effective_to is not None:
            raise ValueError("a deceased status has no effective_to")
        return self

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
