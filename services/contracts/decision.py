"""The decision: what the engine answers for one event, to the HTTP caller and on the audit topic.

* :class:`Alert` — one rule hit. Its *static* fields (:data:`STATIC_ALERT_KEYS`) come from
  the rule entry; a retry answered from the patient state's idempotency record gets them
  back from the rule table (they are not stored per patient). A replayed alert of a rule
  version no longer in the rule base has them empty.
* :class:`Decision` — the public answer (``POST /v1/events``; the NHSA and CDS dialects map it).
* :class:`AuditRecord` — one record per decision on the audit topic (the compliance trail),
  built by :func:`audit_record` in the worker.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from services.contracts.ids import alert_id_for, decision_id_for_key

EngineStatus = Literal["evaluated", "timeout", "unavailable"]
ENGINE_STATUSES: tuple[str, ...] = get_args(EngineStatus)

# The alert fields fixed by the rule version (restored from the rule table on a replay).
STATIC_ALERT_KEYS: tuple[str, ...] = (
    "gz_code", "name_zh", "name_en", "result_type", "indicator", "severity", "policy_basis",
)
# The alert fields the engine fills per hit (recorded in the patient state's idempotency record).
HIT_ALERT_KEYS: tuple[str, ...] = (
    "rule_id", "rule_version", "message_zh", "message_en", "line_ids", "amount", "evidence", "region",
)
ALERT_ID_KEY = "alert_id"


class Alert(BaseModel):
    """One rule hit."""

    model_config = ConfigDict(extra="ignore")

    rule_id: str = Field(description="R01…")
    rule_version: str = Field(description="semantic version of the rule entry that fired")
    gz_code: str | None = Field(default=None, description="两库 rule code (GZ…)")
    name_zh: str | None = None
    name_en: str | None = None
    result_type: Literal["definite", "suspicious"] | None = Field(
        default=None, description="definite 明确违规, suspicious 可疑")
    indicator: Literal["critical", "warning", "info"] | None = None
    severity: Literal["C", "W", "I"] | None = None
    message_zh: str
    message_en: str
    line_ids: list[str] = Field(description="the event's item line_ids at fault (empty: the whole event)")
    amount: float = Field(description="amount at stake, yuan")
    evidence: list[dict[str, Any]] = Field(description="KB rows and earlier encounters behind the hit")
    policy_basis: str | None = None
    region: str = Field(description="the parameter set used: a poolarea code or 'default'")
    alert_id: str = Field(description="<decision_id>.<rule_id>.<n>: what feedback names (NHSA jr_id, CDS card uuid)")


class UncheckedLine(BaseModel):
    """A line no catalogue rule could judge: its code has no catalogue row in force on its service date."""

    model_config = ConfigDict(extra="ignore")

    line_id: str
    code: str
    kind: str
    service_date: str = Field(description="the line's service date (started_at, else the event's date), YYYY-MM-DD")
    reason: Literal["retired", "not_yet_listed", "not_listed", "unmapped"] = Field(
        description="retired 已退出目录; not_yet_listed 目录外 (in force only later); not_listed 目录外 (a national "
        "code the catalogue does not hold); unmapped 未对照编码 (a hospital code with no national code)")
    left_catalogue_after: str | None = Field(default=None, description="the code's last day in force, when retired")
    detail: str


class Decision(BaseModel):
    """The public answer to one event (native ``POST /v1/events``)."""

    model_config = ConfigDict(title="DecisionPublic")

    event_id: str
    decision_id: str = Field(description="Deterministic per (institution, event_id): a retry gets the same id")
    engine_status: EngineStatus = Field(
        description="evaluated: alerts are complete; timeout: the budget ran out (alerts empty, the decision "
        "still completes and is recorded); unavailable: the broker or engine could not take the event"
    )
    alerts: list[Alert]
    unchecked_lines: list[UncheckedLine] = Field(
        default_factory=list, description="lines no catalogue rule could judge, and why (never silent on an unknown code)")
    latency_ms: float
    replayed: bool = Field(False, description="true when this answers a retry from the recorded decision")
    detail: str | None = None
    rulebase_revision: str | None = Field(
        None, description="the rule-base revision that decided (GET /v1/rules: revision); null when the engine did "
        "not decide (timeout, unavailable) or on a replay (the original decision's audit record names it)")


class AuditRecord(BaseModel):
    """One decision on the audit topic (key: patient id). Written once per event that was applied;
    a retry answered from the idempotency record is not written again."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str
    event_id: str
    institution_id: str
    patient_id: str
    scene: int | None = Field(ge=1, le=10, description="the event's scene; null in a retrospective finding (the "
                              "state keeps no scene)")
    occurred_at: str = Field(description="the event's occurred_at (ISO-8601 with offset); in a retrospective "
                             "finding the service date of the claim (midnight, +08:00)")
    engine_status: Literal["evaluated"]
    replayed: bool
    alerts: list[Alert]
    unchecked_lines: list[UncheckedLine] = Field(default_factory=list, description="as in the Decision")
    rulebase_revision: str | None = Field(None, description="the rule-base revision that decided (one decision, "
                                          "one revision); null only in records written before revisions existed")
    shadow_alerts: list[Alert] = Field(
        default_factory=list, description="would-be alerts of rules in mode shadow: recorded here and counted, "
        "never sent to the HIS (empty on a replay)")
    engine_ms: float = Field(description="worker time for this event, ms")
    decided_at: str = Field(description="ISO-8601 UTC time the worker decided")
    worker: str = Field(description="the worker that decided")
    request_id: str | None = Field(None, description="the HTTP request's X-Request-ID (given or made by the "
                                   "ingress); null for records sent without one")
    institution_region: str | None = Field(None, description="the event's institution.region (统筹区): what a "
                                           "region-scoped reviewer key sees (decision log)")
    institution_level: int | None = Field(None, description="the event's institution.level (risk-list peers)")
    department: str | None = Field(None, description="the event's encounter.department")
    doctor_id: str | None = Field(None, description="the event's encounter.doctor_id (risk lists)")
    retrospective: bool = Field(False, description="事后: a finding on an earlier claim, written when the bureau "
                                "recorded a death, a suspension (失信) or an uninsured period covering the claim "
                                "after it was made (the claim was not flagged live); decision_id is derived from "
                                "(institution, event_id, status, the period's effective_from)")


def retrospective_record(patient_id: str, finding: dict[str, Any], effective_from: str, decided_at: str,
                         worker: str, rulebase_revision: str | None, status: str = "deceased") -> dict[str, Any]:
    """The audit record of one retrospective finding (``Engine.retrospective``): its alerts get ids. The
    decision id is derived from (institution, event id, status, the status period's effective_from): the
    same record sent again finds the same claims under the same ids."""
    decision_id = decision_id_for_key(f"{finding['institution_id']}:{finding['event_id']}:{status}:{effective_from}")
    alerts = [{**a, "alert_id": alert_id_for(decision_id, a["rule_id"], n)} for n, a in enumerate(finding["alerts"], 1)]
    return {
        "decision_id": decision_id, "event_id": finding["event_id"], "institution_id": finding["institution_id"],
        "patient_id": patient_id, "scene": None, "occurred_at": f"{finding['service_date']}T00:00:00+08:00",
        "engine_status": "evaluated", "replayed": False, "alerts": alerts, "unchecked_lines": [],
        "rulebase_revision": rulebase_revision, "shadow_alerts": [], "engine_ms": 0.0, "decided_at": decided_at,
        "worker": worker, "request_id": None, "retrospective": True,
    }


def audit_record(
    event: dict[str, Any], decision_id: str, alerts: list[dict[str, Any]], replayed: bool,
    engine_ms: float, decided_at: str, worker: str, request_id: str | None = None,
    unchecked_lines: list[dict[str, Any]] | None = None,
    rulebase_revision: str | None = None, shadow_alerts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The audit record of one decision (an :class:`AuditRecord` as a plain dict: the worker's hot path)."""
    return {
        "decision_id": decision_id,
        "event_id": event["event_id"],
        "institution_id": event["institution"]["id"],
        "patient_id": event["patient"]["id"],
        "scene": event["scene"],
        "occurred_at": event["occurred_at"],
        "engine_status": "evaluated",
        "replayed": replayed,
        "alerts": alerts,
        "unchecked_lines": unchecked_lines or [],
        "rulebase_revision": rulebase_revision,
        "shadow_alerts": shadow_alerts or [],
        "engine_ms": engine_ms,
        "decided_at": decided_at,
        "worker": worker,
        "request_id": request_id,
        "institution_region": event["institution"].get("region"),
        "institution_level": event["institution"].get("level"),
        "department": (event.get("encounter") or {}).get("department"),
        "doctor_id": (event.get("encounter") or {}).get("doctor_id"),
    }
