"""The native event model: what a HIS posts to ``POST /v1/events``.

Pure data: no I/O. The ingress validates requests with these models and hands
the engine ``Event.to_wire()`` — a plain JSON-compatible dict with normalised
values (ISO-8601 timestamps with an explicit offset, dates as ``YYYY-MM-DD``).
The stream worker and offline replay work on that dict, never on the models,
so the hot path pays for validation once, at the edge.

Naive timestamps are read as China Standard Time (UTC+08:00), the time zone
every HIS in scope runs in.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.contracts.common import CST, Code, Id, Text

# How far an item's ``started_at`` may lie outside its encounter (admitted_at..discharged_at)
# before the event is refused as implausible (a mistyped year or month, another patient's line).
# Nearer misses are not refused: a charge dated a day before admission or after discharge is
# what rule R26 (计费日期与住院时间不符, GZ10000201008) exists to flag, so the edge lets it through
# to be alerted on. The same slack serves outpatient and pharmacy encounters, whose admitted_at is
# the visit's registration time.
SERVICE_DATE_SLACK = timedelta(days=30)


def _error(loc: tuple[str | int, ...], kind: str, message: str) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, message), "loc": loc, "input": None}


class _Model(BaseModel):
    # Unknown extra fields are ignored (vendors add their own).
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=CST)
    return value


class Gender(str, Enum):
    male = "M"
    female = "F"
    unknown = "U"


class EncounterType(str, Enum):
    outpatient = "outpatient"
    inpatient = "inpatient"
    pharmacy = "pharmacy"


class ItemKind(str, Enum):
    drug = "drug"
    service = "service"
    consumable = "consumable"
    herb = "herb"


class Institution(_Model):
    id: Id
    level: int | None = Field(default=None, ge=1, le=3, description="1 一级, 2 二级, 3 三级")
    region: Code | None = Field(default=None, description="统筹区 code of the institution")


class Patient(_Model):
    id: Id
    gender: Gender = Field(description="M male, F female, U unknown")
    birth_date: date
    insurance_type: Code | None = Field(default=None, description="险种, e.g. 310 职工, 390 居民")
    region: Code | None = Field(default=None, description="参保统筹区 (poolarea)")


class Encounter(_Model):
    id: Id
    type: EncounterType
    med_type: Code | None = Field(default=None, description="医疗类别, e.g. 11, 14, 21")
    admitted_at: datetime | None = None
    discharged_at: datetime | None = None
    department: Code | None = None
    doctor_id: Code | None = None

    _aware_times = field_validator("admitted_at", "discharged_at")(classmethod(lambda cls, v: _aware(v)))

    @model_validator(mode="after")
    def _discharge_after_admission(self) -> Encounter:
        if self.admitted_at and self.discharged_at and self.discharged_at < self.admitted_at:
            raise ValueError("encounter.discharged_at is before encounter.admitted_at")
        return self


class Diagnosis(_Model):
    code: Code
    name: Text | None = None
    main: bool = False


class Item(_Model):
    line_id: Id
    code: Code
    name: Text | None = None
    kind: ItemKind
    quantity: float = Field(gt=0, le=1_000_000)
    unit: Code | None = None
    unit_price: float | None = Field(default=None, ge=0)
    amount: float | None = Field(default=None, ge=0)
    days_supply: int | None = Field(default=None, ge=0, le=3650)
    started_at: datetime | None = None
    doctor_id: Code | None = Field(default=None, description="the line's ordering doctor (医保医师代码; NHSA "
                                   "drord_dr_codg); encounter.doctor_id when absent")
    take_home: bool = Field(default=False, description="出院带药: a drug an inpatient takes home at discharge; it "
                            "enters the supply ledger like an outpatient supply (R19, R20, R21)")

    _aware_times = field_validator("started_at")(classmethod(lambda cls, v: _aware(v)))


class Event(_Model):
    """One HIS event at one trigger scene (trig_scen 1–10)."""

    event_id: Id
    event_type: Literal["order", "cancellation"] = Field(
        default="order", description="order: evaluate and record (the default); cancellation (撤销 / 退费): take an "
        "earlier order of this encounter out of the patient's history — its supplies, visit and charges no longer "
        "count; not evaluated, answered without alerts")
    cancels: Id | None = Field(default=None, description="cancellation: the event_id (same institution) of the "
                               "order it cancels, when known; with items, only those codes of the encounter")
    scene: int = Field(ge=1, le=10, description="trig_scen: 1 门诊挂号 … 10 购药划卡")
    occurred_at: datetime
    institution: Institution
    patient: Patient
    encounter: Encounter
    diagnoses: list[Diagnosis] = Field(default_factory=list, max_length=50)
    items: list[Item] = Field(default_factory=list, max_length=500)

    _aware_times = field_validator("occurred_at")(classmethod(lambda cls, v: _aware(v)))

    @model_validator(mode="after")
    def _unique_lines(self) -> Event:
        seen: set[str] = set()
        for item in self.items:
            if item.line_id in seen:
                raise ValueError(f"items: duplicate line_id {item.line_id!r}")
            seen.add(item.line_id)
        return self

    @model_validator(mode="after")
    def _cancellation_names_what(self) -> Event:
        if self.event_type == "cancellation" and self.cancels is None and not self.items:
            raise ValidationError.from_exception_data("Event", [_error(
                ("cancels",), "cancellation_target", "a cancellation names the event it cancels (cancels) or the "
                "items it takes back (items)")])
        if self.event_type != "cancellation" and self.cancels is not None:
            raise ValidationError.from_exception_data("Event", [_error(
                ("cancels",), "cancels_on_order", "only an event_type 'cancellation' cancels an earlier event")])
        return self

    @model_validator(mode="after")
    def _dates_consistent(self) -> Event:
        """Birth date not after the event; service dates plausible for the encounter (errors name the field)."""
        errors: list[InitErrorDetails] = []
        event_day = self.occurred_at.astimezone(CST).date()
        if self.patient.birth_date > event_day:
            errors.append(_error(("patient", "birth_date"), "date_after_event",
                                 f"{self.patient.birth_date.isoformat()} is after the event date "
                                 f"{event_day.isoformat()} (occurred_at)"))
        enc = self.encounter
        tolerance = SERVICE_DATE_SLACK
        for n, item in enumerate(self.items):
            if item.started_at is None:
                continue
            if item.started_at.astimezone(CST).date() < self.patient.birth_date:
                errors.append(_error(("items", n, "started_at"), "service_before_birth",
                                     f"{item.started_at.isoformat()} is before patient.birth_date "
                                     f"{self.patient.birth_date.isoformat()}"))
            elif enc.admitted_at is not None and item.started_at < enc.admitted_at - tolerance:
                errors.append(_error(("items", n, "started_at"), "service_outside_encounter",
                                     f"{item.started_at.isoformat()} is more than {tolerance.days} days before "
                                     f"encounter.admitted_at {enc.admitted_at.isoformat()}"))
            elif enc.discharged_at is not None and item.started_at > enc.discharged_at + tolerance:
                errors.append(_error(("items", n, "started_at"), "service_outside_encounter",
                                     f"{item.started_at.isoformat()} is more than {tolerance.days} days after "
                                     f"encounter.discharged_at {enc.discharged_at.isoformat()}"))
        if errors:
            # A ValidationError raised here keeps each error's own location (patient.birth_date,
            # items[3].started_at), so every dialect's error names the field at fault.
            raise ValidationError.from_exception_data("Event", errors)
        return self

    def to_wire(self) -> dict[str, Any]:
        """The normalised, JSON-compatible dict the engine and the worker read."""
        return self.model_dump(mode="json")
