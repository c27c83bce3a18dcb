"""Pure: retrospective findings (事后) for a provider status recorded late (issue 10).

A 定点协议 suspension of an institution or a suspension of a doctor's 医保支付资格 recorded with an
``effective_from`` in the past concerns decisions already made at that institution / by that doctor
inside the period — claims of every patient, on every partition. The workers' per-patient state
cannot see them; the decision log can. For each provider-status record the sink reads, the store
selects the candidate decisions (:meth:`services.decisionlog.store.Store.provider_candidates`:
settlement scenes, inside the period, decided before the record was updated, not already flagged
by the rule live); this module turns each into a retrospective decision row with the rule's alert
(R42 institution, R43 doctor), stored like the workers' retrospective findings (scene 0, a review
case opened). No I/O here.

Judged at the decision's date (``day``: the event's occurred_at in China time) and with the
decision's encounter doctor: the decision log keeps neither line dates nor line doctors. The
timeline is the provider's as every worker holds it (:class:`services.rules.providers.Providers`),
so a revoked period or one a newer update replaced finds nothing. The sink also looks at each
decision it stores against that timeline (:func:`lagging_findings`), so a decision still in its lag
when the record arrived is not missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from services.contracts.ids import alert_id_for, decision_id_for_key
from services.contracts.provider_status import subject_id as subject_id
from services.decisionlog.records import utc_iso
from services.rules.families.provider import STATUS_EN, STATUS_ZH, _period
from services.rules.providers import Period, Providers
from services.rules.timeutil import date_of_day, day_of_date

RULE_OF = {"institution": "R42", "doctor": "R43"}
SCENES = (6, 8, 10)  # settlement scenes (门诊结算, 住院结算, 购药划卡): the claims a bureau recovers
RETROSPECTIVE_SCENE = 0


class AlertSource(Protocol):
    def alert_of(self, rule_id: str, region: str | None, day: int, fields: dict[str, Any],
                 evidence: list[dict[str, Any]], amount: float = 0.0) -> tuple[dict[str, Any], dict[str, Any]] | None: ...


def wanted(record: dict[str, Any]) -> bool:
    """Whether a provider-status record can make earlier claims unpayable (a suspension or termination)."""
    return not record.get("revoked") and record.get("status") not in (None, "active") and record.get("subject") in RULE_OF


def finding_id(subject: str, sid: str, effective_from: str, institution_id: str, event_id: str) -> str:
    """Derived from the status period (subject, id, effective_from) and the event: a re-sent record,
    a corrected reason, a replay of the topic, or the same finding reached from the decision's side
    (:func:`lagging_findings`) gives the same id (stored once)."""
    return decision_id_for_key(f"{institution_id}:{event_id}:{subject}:{sid}:{effective_from}")


Finding = tuple[dict[str, Any], list[dict[str, Any]]]


def provider_findings(engine: AlertSource, providers: Providers, record: dict[str, Any],
                      candidates: list[dict[str, Any]], decided_at: str) -> list[Finding]:
    """(decision row, alert rows) of each candidate decision the record's period makes unpayable.

    ``candidates``: decision rows of the store (``provider_candidates``); ``providers``: the timeline
    with ``record`` folded in; ``decided_at``: now, UTC (the store's format)."""
    if not wanted(record):
        return []
    subject = record["subject"]
    sid = subject_id(record)
    frm = day_of_date(record["effective_from"])
    out = []
    for c in candidates:
        period = providers.affecting(subject, sid, day_of_date(c["day"]))
        if period is None or period.frm != frm:
            continue  # the record does not decide that day (revoked, replaced, another period)
        found = _finding(engine, subject, sid, period, record["effective_from"], c, decided_at)
        if found is not None:
            out.append(found)
    return out


def lagging_findings(engine: AlertSource, providers: Providers, decisions: Iterable[Finding],
                     decided_at: str) -> list[Finding]:
    """Findings for decisions the sink stores after the status record that concerns them.

    A decision still in the sink's lag when a suspension's record arrives is not in the store when
    :func:`provider_findings` looks, so each decision the sink stores is also looked at against the
    timeline it holds: a settlement dated inside a suspension recorded (``updated_at``) after the
    decision was made, without the rule's alert, gets the same finding (same id) as if the record had
    come later. ``decisions``: (decision row, alert rows) as the sink stores them."""
    out = []
    for row, alerts in decisions:
        if row["scene"] not in SCENES:
            continue
        day = None
        for subject, column in (("institution", "institution_id"), ("doctor", "doctor_id")):
            sid = row.get(column)
            if not sid or not providers.known(subject, sid):
                continue
            day = day_of_date(row["day"]) if day is None else day
            period = providers.affecting(subject, sid, day)
            if period is None or utc_iso(period.updated_at) <= row["decided_at"]:
                continue  # none, or recorded before the decision: the worker's to flag live
            if any(a["rule_id"] == RULE_OF[subject] for a in alerts):
                continue  # flagged live
            found = _finding(engine, subject, sid, period, date_of_day(period.frm), row, decided_at)
            if found is not None:
                out.append(found)
    return out


def _finding(engine: AlertSource, subject: str, sid: str, period: Period, effective_from: str,
             c: dict[str, Any], decided_at: str) -> Finding | None:
    """The retrospective decision row and alert row of one decision ``c`` inside ``period``."""
    rule_id = RULE_OF[subject]
    day = day_of_date(c["day"])
    zh, en = _period(period)
    fields = {"provider": sid, "status_zh": STATUS_ZH.get(period.status, period.status),
              "status_en": STATUS_EN.get(period.status, period.status), "period_zh": zh, "period_en": en,
              "reason": period.reason or "-", "document_no": period.document_no or "-"}
    evidence = [{"kind": "event", "event_id": c["event_id"], "institution_id": c["institution_id"],
                 "date": c["day"], "decision_id": c["decision_id"], "doctor_id": c.get("doctor_id"),
                 "detail": "decided before the status was recorded (retrospective); judged at the event's date"},
                period.evidence(subject, sid)]
    got = engine.alert_of(rule_id, c.get("region"), day, fields, evidence)
    if got is None:
        return None
    alert, params = got
    if period.status not in params["statuses"]:
        return None
    dept = c.get("department") or ""
    if dept and dept.startswith(tuple(params.get("exempt_departments") or ())):
        return None  # R43: emergencies and rescue (急诊、抢救) are not judged
    decision_id = finding_id(subject, sid, effective_from, c["institution_id"], c["event_id"])
    alert = {**alert, "alert_id": alert_id_for(decision_id, rule_id, 1)}
    stored = {
        "decision_id": decision_id, "event_id": c["event_id"], "institution_id": c["institution_id"],
        "scene": None, "occurred_at": c["occurred_at"], "engine_status": "evaluated", "replayed": False,
        "alerts": [alert], "unchecked_lines": [], "rulebase_revision": None, "shadow_alerts": [],
        "engine_ms": 0.0, "decided_at": decided_at, "worker": "decision-log", "request_id": None,
        "institution_region": c.get("region"), "institution_level": c.get("institution_level"),
        "department": c.get("department"), "doctor_id": c.get("doctor_id"), "retrospective": True,
        "patient_ref": c["patient_ref"],
    }
    row = {
        "decision_id": decision_id, "event_id": c["event_id"], "institution_id": c["institution_id"],
        "region": c.get("region"), "patient_ref": c["patient_ref"], "scene": RETROSPECTIVE_SCENE,
        "occurred_at": c["occurred_at"], "day": c["day"], "decided_at": decided_at, "alert_count": 1,
        "amount": 0.0, "rulebase_revision": None, "engine_ms": 0.0, "request_id": None,
        "record": orjson.dumps(stored).decode(), "institution_level": c.get("institution_level"),
        "department": c.get("department"), "doctor_id": c.get("doctor_id"),
    }
    alert_row = {
        "alert_id": alert["alert_id"], "decision_id": decision_id, "rule_id": rule_id,
        "rule_version": alert.get("rule_version"), "severity": alert.get("severity"), "amount": 0.0,
        "institution_id": c["institution_id"], "region": c.get("region"), "patient_ref": c["patient_ref"],
        "doctor_id": c.get("doctor_id"), "department": c.get("department"), "day": c["day"],
        "occurred_at": c["occurred_at"],
    }
    return row, [alert_row]
