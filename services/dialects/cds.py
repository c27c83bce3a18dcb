"""HL7 CDS Hooks 2.0: ``order-select`` / ``order-sign`` → one native event; alerts → cards.

* patient: ``context.patientId``; gender and birthDate from ``prefetch.patient`` (a FHIR
  Patient — required here; the ingress reads prefetch items the client did not send from its
  ``fhirServer`` before calling :func:`plan_hook`, and answers 412 when it cannot);
* encounter: ``context.encounterId`` (else ``<patientId>-<yyyymmdd>``); outpatient at scene 2
  (门诊收费登记) for both hooks — or, when ``prefetch.encounter`` is an inpatient Encounter
  (class IMP/ACUTE/NONAC), inpatient at scene 5 (住院执行医嘱);
* items: ``context.draftOrders`` entries — MedicationRequest (drug; code from
  ``medicationCodeableConcept.coding[0].code`` or a contained Medication, quantity from
  ``dispenseRequest.quantity.value``, days from ``dispenseRequest.expectedSupplyDuration``),
  ServiceRequest (service; ``code``, ``quantityQuantity``), DeviceRequest (consumable);
  other resource types are ignored;
* diagnoses: active Conditions in ``prefetch.conditions`` and the orders' ``reasonCode``;
* time: the latest ``authoredOn`` of the orders, else the time the request arrived.

The institution is the API key's. Each card's ``uuid`` is the alert id, so the EHR's
feedback (``POST /cds-services/{id}/feedback``) joins back to decision and rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.contracts.decision import Alert, Decision
from services.contracts.event import Event
from services.dialects.common import CST, Lenient, Timestamp, digest, field_path, parse_time, safe_id, truncate
from services.dialects.exceptions import MappingError
from services.dialects.feedback import Outcome
from services.dialects.feedback import record as feedback_record

SUMMARY_MAX = 139  # the spec: "SHOULD be under 140 characters"
OVERRIDE_SYSTEM = "urn:presettle:override-reason"
RULE_SYSTEM = "urn:presettle:rule"
OVERRIDE_REASONS = (
    ("clinical-need", "临床需要，已评估 / Clinically necessary, assessed"),
    ("patient-informed", "已告知患者，自费或知情同意 / Patient informed, self-pay or consent"),
    ("false-alert", "数据有误或误报 / Data error or false alert"),
    ("other", "其他 / Other"),
)
INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC", "inpatient"})


# =====================================================================================
# FHIR subset
# =====================================================================================
class Coding(Lenient):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(Lenient):
    coding: list[Coding] = Field(default_factory=list)
    text: str | None = None


class Quantity(Lenient):
    value: float | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class Period(Lenient):
    start: Timestamp | None = None
    end: Timestamp | None = None


class Reference(Lenient):
    reference: str | None = None
    display: str | None = None


class DispenseRequest(Lenient):
    quantity: Quantity | None = None
    expectedSupplyDuration: Quantity | None = None
    validityPeriod: Period | None = None
    numberOfRepeatsAllowed: int | None = None


class MedicationRequest(Lenient):
    """FHIR R4 MedicationRequest (the fields PreSettle reads)."""

    resourceType: Literal["MedicationRequest"]
    id: str | None = None
    status: str | None = None
    intent: str | None = None
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    contained: list[dict[str, Any]] = Field(default_factory=list)
    authoredOn: Timestamp | None = None
    dispenseRequest: DispenseRequest | None = None
    reasonCode: list[CodeableConcept] = Field(default_factory=list)
    category: list[CodeableConcept] = Field(default_factory=list, description="medicationrequest-category: "
                                            "'discharge' (出院带药) maps to take_home")


class ServiceRequest(Lenient):
    """FHIR R4 ServiceRequest (the fields PreSettle reads)."""

    resourceType: Literal["ServiceRequest"]
    id: str | None = None
    status: str | None = None
    code: CodeableConcept
    quantityQuantity: Quantity | None = None
    authoredOn: Timestamp | None = None
    reasonCode: list[CodeableConcept] = Field(default_factory=list)


class DeviceRequest(Lenient):
    """FHIR R4 DeviceRequest (the fields PreSettle reads)."""

    resourceType: Literal["DeviceRequest"]
    id: str | None = None
    status: str | None = None
    codeCodeableConcept: CodeableConcept
    authoredOn: Timestamp | None = None
    reasonCode: list[CodeableConcept] = Field(default_factory=list)


class FhirPatient(Lenient):
    """FHIR Patient (prefetch ``patient``)."""

    resourceType: Literal["Patient"]
    id: str | None = None
    gender: Literal["male", "female", "other", "unknown"] | None = None
    birthDate: str = Field(pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$", description="YYYY, YYYY-MM or YYYY-MM-DD")


class Condition(Lenient):
    """FHIR Condition (prefetch ``conditions``, a searchset Bundle)."""

    resourceType: Literal["Condition"]
    id: str | None = None
    code: CodeableConcept | None = None
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None


# =====================================================================================
# CDS Hooks requests
# =====================================================================================
class BundleEntry(Lenient):
    fullUrl: str | None = None
    resource: dict[str, Any] = Field(description="a FHIR resource; MedicationRequest, ServiceRequest and "
                                     "DeviceRequest are read, others ignored")


class Bundle(Lenient):
    resourceType: Literal["Bundle"]
    type: str | None = None
    entry: list[BundleEntry] = Field(default_factory=list, max_length=500)


class OrderContext(Lenient):
    """``context`` of order-select / order-sign."""

    userId: str | None = None
    patientId: str = Field(min_length=1, max_length=128)
    encounterId: str | None = Field(default=None, max_length=128)
    selections: list[str] | None = None
    draftOrders: Bundle


def practitioner_id(user_id: str | None) -> str | None:
    """``context.userId`` ``Practitioner/<id>`` → the doctor's code (``encounter.doctor_id``); None for
    another resource type (PractitionerRole, Patient, RelatedPerson) or an id longer than 32."""
    if not user_id or not user_id.startswith("Practitioner/"):
        return None
    doctor = user_id.split("/", 1)[1]
    return doctor if 0 < len(doctor) <= 32 else None


class CdsHookRequest(Lenient):
    """A CDS Hooks 2.0 service call (order-select / order-sign)."""

    hook: str
    hookInstance: str = Field(min_length=1, max_length=128)
    fhirServer: str | None = None
    fhirAuthorization: dict[str, Any] | None = None
    context: OrderContext
    prefetch: dict[str, Any] | None = Field(default=None, description="patient (required), conditions, encounter")


class OverrideReason(Lenient):
    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=500)


class FeedbackItem(Lenient):
    card: str = Field(description="the card's uuid (= the PreSettle alert id)")
    outcome: Outcome
    acceptedSuggestions: list[dict[str, Any]] = Field(default_factory=list)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: Timestamp | None = None


class CdsFeedbackRequest(Lenient):
    """``POST /cds-services/{id}/feedback``."""

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=500)


# =====================================================================================
# CDS Hooks responses
# =====================================================================================
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodingOut(_Out):
    system: str | None = None
    code: str
    display: str | None = None


class Source(_Out):
    label: str
    url: str | None = None
    topic: CodingOut | None = None


class Card(_Out):
    uuid: str | None = Field(default=None, description="the PreSettle alert id (absent on a status card)")
    summary: str = Field(max_length=SUMMARY_MAX)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    overrideReasons: list[CodingOut] | None = None
    extension: dict[str, Any] | None = None


class CdsHookResponse(_Out):
    cards: list[Card]
    extension: dict[str, Any] | None = Field(default=None, description="presettle: decision id, engine status, rulebase_revision")


class CdsService(_Out):
    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str]
    usageRequirements: str | None = None


class CdsDiscovery(_Out):
    services: list[CdsService]


class CdsFeedbackAck(_Out):
    card: str
    rule_id: str
    outcome: Outcome


class CdsFeedbackResponse(_Out):
    recorded: list[CdsFeedbackAck]


PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}&clinical-status=active",
    "encounter": "Encounter/{{context.encounterId}}",
}
USAGE = ("Authenticate with the CDS client's JWT (Authorization: Bearer; the issuer must be registered) or the "
         "institution's X-API-Key. Prefetch patient (gender, birthDate), conditions and encounter; what is not "
         "prefetched is read from fhirServer with fhirAuthorization (412 when it cannot be read).")
SERVICES: dict[str, CdsService] = {
    s.id: s for s in (
        CdsService(hook="order-select", id="presettle-order-select", title="PreSettle 医保事前提醒 (order-select)",
                   description="Medical-insurance fund rules (duplicate prescription, diagnosis/sex, split "
                   "admission …) checked while orders are drafted.", prefetch=PREFETCH, usageRequirements=USAGE),
        CdsService(hook="order-sign", id="presettle-order-sign", title="PreSettle 医保事前提醒 (order-sign)",
                   description="Medical-insurance fund rules checked when orders are signed: the same alerts "
                   "as PreSettle's native and NHSA 3101 interfaces.", prefetch=PREFETCH, usageRequirements=USAGE),
    )
}


def discovery() -> dict[str, Any]:
    return CdsDiscovery(services=list(SERVICES.values())).model_dump(mode="json", exclude_none=True)


# =====================================================================================
# Mapping: request → event
# =====================================================================================
@dataclass(frozen=True)
class HookPlan:
    event: Event
    hook_instance: str

    @property
    def key(self) -> bytes:
        return self.event.patient.id.encode()


def _parse(model: type[BaseModel], value: Any, where: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        sub = field_path(err.get("loc", ()))
        message = "required field is missing" if err.get("type") == "missing" else err.get("msg", "invalid")
        raise MappingError(f"{where}.{sub}" if sub != "body" else where, str(message)) from None


def _code(cc: CodeableConcept | None) -> Coding | None:
    if cc is None:
        return None
    for coding in cc.coding:
        if coding.code:
            return coding
    return None


def _days(q: Quantity | None) -> int | None:
    if q is None or q.value is None:
        return None
    unit = (q.code or q.unit or "d").strip().lower()
    factor = {"d": 1, "day": 1, "days": 1, "天": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30,
              "months": 30}.get(unit)
    if factor is None:
        return None
    days = round(q.value * factor)
    return days if 0 <= days <= 3650 else None


def birth_date(text: str) -> date:
    """FHIR birthDate; a partial date (YYYY or YYYY-MM) is read as its first day."""
    parts = text.split("-") + ["01", "01"]
    return date(int(parts[0]), int(parts[1]), int(parts[2]))


def _bundle_resources(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        return [e["resource"] for e in value.get("entry") or () if isinstance(e, dict) and
                isinstance(e.get("resource"), dict)]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _status(cc: CodeableConcept | None) -> str | None:
    c = _code(cc)
    return c.code if c else None


def plan_hook(req: CdsHookRequest, service_id: str, institution_id: str, now: datetime) -> HookPlan:
    """The native event of one hook call (MappingError names the field at fault)."""
    service = SERVICES.get(service_id)
    if service is None:
        raise MappingError("service_id", f"no CDS service {service_id!r}")
    if req.hook != service.hook:
        raise MappingError("hook", f"service {service_id} answers the {service.hook} hook, not {req.hook!r}")
    prefetch = req.prefetch or {}
    if "patient" not in prefetch:
        raise MappingError("prefetch.patient", "required (a FHIR Patient with gender and birthDate; "
                           "prefetch template Patient/{{context.patientId}})")
    patient: FhirPatient = _parse(FhirPatient, prefetch["patient"], "prefetch.patient")
    if patient.id and patient.id != req.context.patientId:
        raise MappingError("prefetch.patient.id", f"is {patient.id!r} but context.patientId is "
                           f"{req.context.patientId!r}")
    try:
        born = birth_date(patient.birthDate)
    except ValueError:
        raise MappingError("prefetch.patient.birthDate", f"{patient.birthDate!r} is not a date") from None

    items: list[dict[str, Any]] = []
    reasons: list[Coding] = []
    authored: list[datetime] = []
    for i, entry in enumerate(req.context.draftOrders.entry):
        where = f"context.draftOrders.entry[{i}].resource"
        kind = entry.resource.get("resourceType")
        line_id = safe_id(str(entry.resource.get("id") or f"L{i + 1}"), "o-")
        if any(it["line_id"] == line_id for it in items):
            line_id = f"L{i + 1}"
        if kind == "MedicationRequest":
            mr: MedicationRequest = _parse(MedicationRequest, entry.resource, where)
            coding = _code(mr.medicationCodeableConcept)
            reference = mr.medicationReference.reference if mr.medicationReference else None
            if coding is None and reference and reference.startswith("#"):
                ref = reference[1:]
                med = next((c for c in mr.contained if c.get("resourceType") == "Medication" and c.get("id") == ref),
                           None)
                if med is not None:
                    coding = _code(_parse(CodeableConcept, med.get("code") or {}, f"{where}.contained"))
            if coding is None or not coding.code:
                raise MappingError(f"{where}.medicationCodeableConcept.coding[0].code", "required field is missing")
            if len(coding.code) > 32:
                raise MappingError(f"{where}.medicationCodeableConcept.coding[0].code", "longer than 32 characters")
            dr = mr.dispenseRequest
            qty = dr.quantity.value if dr and dr.quantity else None
            if qty is None:
                raise MappingError(f"{where}.dispenseRequest.quantity.value", "required field is missing")
            items.append({"line_id": line_id, "code": coding.code, "kind": "drug", "quantity": qty,
                          "name": (coding.display or (mr.medicationCodeableConcept.text if mr.medicationCodeableConcept
                                                       else None)),
                          "unit": dr.quantity.unit if dr and dr.quantity else None,
                          "days_supply": _days(dr.expectedSupplyDuration if dr else None),
                          "take_home": any(c.code == "discharge" for cat in mr.category for c in cat.coding),
                          "_where": f"{where}.dispenseRequest.quantity.value"})
            order_reasons, when = mr.reasonCode, mr.authoredOn
        elif kind in ("ServiceRequest", "DeviceRequest"):
            model = ServiceRequest if kind == "ServiceRequest" else DeviceRequest
            sr = _parse(model, entry.resource, where)
            cc = sr.code if kind == "ServiceRequest" else sr.codeCodeableConcept
            coding = _code(cc)
            code_field = "code" if kind == "ServiceRequest" else "codeCodeableConcept"
            if coding is None or not coding.code:
                raise MappingError(f"{where}.{code_field}.coding[0].code", "required field is missing")
            if len(coding.code) > 32:
                raise MappingError(f"{where}.{code_field}.coding[0].code", "longer than 32 characters")
            q = sr.quantityQuantity.value if kind == "ServiceRequest" and sr.quantityQuantity else None
            items.append({"line_id": line_id, "code": coding.code,
                          "kind": "service" if kind == "ServiceRequest" else "consumable",
                          "quantity": q if q is not None else 1, "name": coding.display or cc.text,
                          "_where": f"{where}.quantityQuantity.value"})
            order_reasons, when = sr.reasonCode, sr.authoredOn
        else:
            continue
        reasons.extend(c for c in (_code(r) for r in order_reasons) if c is not None)
        if when is not None:
            authored.append(when)
    for it in items:
        where = it.pop("_where")
        if not 0 < it["quantity"] <= 1_000_000:
            raise MappingError(where, "must be greater than 0 and at most 1000000")
        if it["name"]:
            it["name"] = it["name"][:200]

    diagnoses: list[dict[str, Any]] = []
    conditions: list[Coding] = []
    for j, res in enumerate(_bundle_resources(prefetch.get("conditions"))):
        if res.get("resourceType") != "Condition":
            continue
        cond: Condition = _parse(Condition, res, f"prefetch.conditions.entry[{j}].resource")
        if _status(cond.clinicalStatus) in ("inactive", "resolved", "remission") or \
                _status(cond.verificationStatus) in ("refuted", "entered-in-error"):
            continue
        c = _code(cond.code)
        if c is not None:
            conditions.append(c)
    for c in conditions + reasons:  # the encounter's conditions first: the first code is the main diagnosis
        if c.code and len(c.code) <= 32 and all(d["code"] != c.code for d in diagnoses):
            diagnoses.append({"code": c.code, "name": (c.display or None) and c.display[:200],
                              "main": not diagnoses})

    occurred = max(authored) if authored else now
    enc_type, scene, admitted = "outpatient", 2, None
    enc_res = prefetch.get("encounter")
    if isinstance(enc_res, dict) and enc_res.get("resourceType") == "Encounter":
        cls = enc_res.get("class")
        codes = {c.get("code") for c in ([cls] if isinstance(cls, dict) else
                                          [cd for cc in cls or () if isinstance(cc, dict)
                                           for cd in cc.get("coding") or ()])
                 if isinstance(c, dict)}
        if codes & INPATIENT_CLASSES:
            enc_type, scene = "inpatient", 5
            start = (enc_res.get("period") or {}).get("start")
            if start:
                try:
                    admitted = parse_time(start).isoformat()
                except ValueError:
                    raise MappingError("prefetch.encounter.period.start", f"{start!r} is not a date/time") from None
    pid = req.context.patientId
    enc_id = req.context.encounterId or f"{pid}-{occurred.astimezone(CST):%Y%m%d}"
    body: dict[str, Any] = {
        "scene": scene, "occurred_at": occurred.isoformat(),
        "institution": {"id": institution_id},
        "patient": {"id": safe_id(pid, "p-"), "birth_date": born.isoformat(),
                    "gender": {"male": "M", "female": "F"}.get(patient.gender or "", "U")},
        "encounter": {"id": safe_id(enc_id, "e-"), "type": enc_type, "admitted_at": admitted},
        "diagnoses": diagnoses[:50], "items": items,
    }
    facts = {k: v for k, v in body.items() if k != "occurred_at"}
    facts["day"] = body["occurred_at"][:10]
    body["event_id"] = f"cds-{scene}-{digest(facts, 8)}"
    doctor = practitioner_id(req.context.userId)
    if doctor is not None:  # the ordering doctor, whose 医保支付资格 R43 checks (not part of the event id)
        body["encounter"]["doctor_id"] = doctor
    try:
        event = Event.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise MappingError("context.draftOrders", f"maps to an invalid native event "
                           f"({field_path(err.get('loc', ()))}: {err.get('msg')})") from None
    return HookPlan(event, req.hookInstance)


# =====================================================================================
# Mapping: alerts → cards
# =====================================================================================
INDICATOR = {"C": "critical", "W": "warning", "I": "info"}


def _evidence_md(alert: Alert) -> list[str]:
    lines = []
    for ev in alert.evidence:
        if ev.get("kind") == "kb":
            lines.append(f"- 知识库 KB `{ev.get('table')}` {ev.get('code')}: {ev.get('detail')}")
        else:
            what = ev.get("item_name") or ev.get("diagnosis_name") or ev.get("item_code") or ev.get("diagnosis_code")
            extra = []
            if ev.get("quantity") is not None:
                extra.append(f"×{ev['quantity']}")
            if ev.get("days_supply") is not None:
                extra.append(f"{ev['days_supply']} d")
            lines.append(f"- {ev.get('date', '')} {ev.get('institution_id', '')} {what or ''} {' '.join(extra)}".rstrip())
    return lines


def card(alert: Alert) -> dict[str, Any]:
    raw = alert.indicator if alert.indicator in ("info", "warning", "critical") else \
        INDICATOR.get(alert.severity or "", "info")
    indicator: Literal["info", "warning", "critical"] = "critical" if raw == "critical" else \
        "warning" if raw == "warning" else "info"
    name_zh, name_en = alert.name_zh or "", alert.name_en or ""
    summary = truncate(f"{alert.rule_id} {name_zh} / {name_en}: {alert.message_zh or ''}", SUMMARY_MAX)
    detail = [f"**{name_zh}** / {name_en} ({alert.rule_id} v{alert.rule_version or ''}, "
              f"{alert.gz_code or ''})", "", alert.message_zh or "", "", alert.message_en or ""]
    evidence = _evidence_md(alert)
    if evidence:
        detail += ["", "证据 Evidence:", *evidence]
    if alert.policy_basis:
        detail += ["", f"依据 Policy basis: {alert.policy_basis}"]
    return Card(
        uuid=alert.alert_id, summary=summary, detail="\n".join(detail).strip(), indicator=indicator,
        source=Source(label="PreSettle", topic=CodingOut(system=RULE_SYSTEM, code=alert.rule_id,
                                                         display=name_en or name_zh or None)),
        overrideReasons=[CodingOut(system=OVERRIDE_SYSTEM, code=c, display=d) for c, d in OVERRIDE_REASONS],
        extension={"presettle": {"rule_id": alert.rule_id, "rule_version": alert.rule_version,
                                 "line_ids": alert.line_ids, "amount": alert.amount,
                                 "result_type": alert.result_type}},
    ).model_dump(mode="json", exclude_none=True)


def status_card(engine_status: str, detail: str | None) -> dict[str, Any]:
    """An info card saying the review did not complete (no uuid: nothing to give feedback on)."""
    text = ("审核未在时限内完成 / review not completed in time" if engine_status == "timeout"
            else "审核服务暂不可用 / review service unavailable")
    return Card(summary=truncate(f"PreSettle: {text}", SUMMARY_MAX), indicator="info",
                detail=(f"engine_status: {engine_status}" + (f" ({detail})" if detail else "")) +
                "\n\nNo fund-rule alerts could be checked for these orders; signing again retries.",
                source=Source(label="PreSettle")).model_dump(mode="json", exclude_none=True)


def hook_response(decision: Decision) -> dict[str, Any]:
    """``{"cards": [...]}`` from a :class:`Decision`."""
    if decision.engine_status == "evaluated":
        cards = [card(a) for a in decision.alerts]
    else:
        cards = [status_card(decision.engine_status, decision.detail)]
    return {"cards": cards, "extension": {"presettle": {
        "decision_id": decision.decision_id, "event_id": decision.event_id,
        "engine_status": decision.engine_status, "replayed": decision.replayed,
        "latency_ms": decision.latency_ms, "rulebase_revision": decision.rulebase_revision}}}


# =====================================================================================
# Feedback
# =====================================================================================
def feedback_records(
    req: CdsFeedbackRequest, service_id: str, institution_id: str, received_at: datetime,
    known_rules: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(req.feedback):
        reason = code = None
        if item.overrideReason is not None:
            r = item.overrideReason
            code = r.reason.code if r.reason else None
            reason = r.userComment or (r.reason.display if r.reason else None) or code
        out.append(feedback_record(
            item.card, item.outcome, reason=reason, reason_code=code, institution_id=institution_id,
            dialect="cds", received_at=received_at, field=f"feedback[{i}].card", source_ref=service_id,
            known_rules=known_rules,
        ))
    return out
