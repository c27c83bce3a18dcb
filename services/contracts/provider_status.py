"""Provider status from the bureau: institution 定点协议 and doctor 医保医师 payment qualification.

``POST /v1/institution-status`` and ``POST /v1/doctor-status`` take one status period each
(:class:`InstitutionStatus`, :class:`DoctorStatus`). The ingress writes ``to_wire()`` to the
provider-status topic (one partition, compacted) under :meth:`ProviderStatusBase.record_key`;
every worker reads the whole topic into a timeline per institution and per doctor
(services/rules/providers.py, services/common/provider_feed.py) — events are partitioned by
patient, so each worker must know every provider.

A timeline, like the patient's: the status on a day is decided by the most recently updated
period covering that day, so arrival order does not matter; a period affects only lines dated
inside it. ``revoked: true`` on an update for the same ``effective_from`` withdraws that period
(an explicit revocation: as if it had never been recorded); an ``active`` period from a later
day ends a suspension from that day (恢复).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import Field

from services.contracts.common import Id
from services.contracts.status import StatusPeriod

InstitutionStatusKind = Literal["active", "suspended", "terminated"]
DoctorStatusKind = Literal["active", "suspended"]
INSTITUTION_STATUSES: tuple[str, ...] = get_args(InstitutionStatusKind)
DOCTOR_STATUSES: tuple[str, ...] = get_args(DoctorStatusKind)
SUBJECTS = ("institution", "doctor")


class ProviderStatusBase(StatusPeriod):
    subject: ClassVar[str]

    document_no: str | None = Field(default=None, max_length=100, description="文号: the decision document's number")
    revoked: bool = Field(default=False, description="withdraws the period recorded for the same effective_from "
                          "(an explicit revocation); the other fields are then ignored by the rules")

    @property
    def subject_id(self) -> str:
        raise NotImplementedError

    def to_wire(self) -> dict[str, Any]:
        return {"subject": self.subject, **self.model_dump(mode="json", exclude_none=True)}

    def record_key(self) -> str:
        """The compacted topic's key: one record per (subject, id, effective_from, updated_at), so a
        retry of the same update overwrites itself and no two updates overwrite each other."""
        return record_key(self.to_wire())


class InstitutionStatus(ProviderStatusBase):
    """One 定点协议 status period of an institution (定点医药机构), as the bureau reports it."""

    subject: ClassVar[str] = "institution"

    institution_id: Id = Field(description="the institution's id, as events carry it (institution.id)")
    status: InstitutionStatusKind = Field(
        description="active 协议正常, suspended 暂停(中止)医保协议, terminated 解除医保协议")

    @property
    def subject_id(self) -> str:
        return self.institution_id


class DoctorStatus(ProviderStatusBase):
    """One 医保医师 payment-qualification (医保支付资格) status period of a doctor."""

    subject: ClassVar[str] = "doctor"

    doctor_id: Id = Field(description="the doctor's code (医保医师代码, NHSA dr_codg / drord_dr_codg), as events "
                          "carry it in encounter.doctor_id or items[].doctor_id")
    institution_id: Id | None = Field(default=None, description="where the doctor practises (informational)")
    status: DoctorStatusKind = Field(description="active 正常, suspended 暂停医保支付资格")

    @property
    def subject_id(self) -> str:
        return self.doctor_id


def subject_id(wire: dict[str, Any]) -> str:
    return str(wire["institution_id"] if wire["subject"] == "institution" else wire["doctor_id"])


def record_key(wire: dict[str, Any]) -> str:
    """``<subject>/<id>/<effective_from>/<updated_at>`` of a wire record."""
    return f"{wire['subject']}/{subject_id(wire)}/{wire['effective_from']}/{wire['updated_at']}"


def parse(record: dict[str, Any]) -> InstitutionStatus | DoctorStatus:
    """A wire or request record with its ``subject`` (institution | doctor) → its model (validated)."""
    subject = record.get("subject")
    if subject == "institution":
        return InstitutionStatus.model_validate(record)
    if subject == "doctor":
        return DoctorStatus.model_validate(record)
    raise ValueError(f"subject must be one of {SUBJECTS}, got {subject!r}")
