"""Pure: the records on the service's topics → the rows the decision log stores.

No I/O here. Patient ids never reach the database in clear: every row and every stored JSON
document carries ``patient_ref``, the keyed pseudonym of services/common/privacy.py (the same
one the logs use), passed in as ``pseudonym``. Look-ups by patient hash the query the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from services.contracts.common import CST

Pseudonym = Callable[[str], str]


def utc_iso(value: str) -> str:
    """An ISO-8601 time (any offset; none means China Standard Time) → UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    One fixed format, so times compare as text in SQLite and PostgreSQL alike."""
    text = value.strip().replace("Z", "+00:00")
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=CST)
    # isoformat, not strftime: the same text, five times faster (the sink's hot path)
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def cst_day(value: str) -> str:
    """The China Standard Time calendar day (``YYYY-MM-DD``) of an ISO-8601 time."""
    text = value.strip().replace("Z", "+00:00")
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=CST)
    return at.astimezone(CST).date().isoformat()


RETROSPECTIVE_SCENE = 0  # the decision log's scene for audit records with ``retrospective: true`` (scene null)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def decision_rows(record: dict[str, Any], pseudonym: Pseudonym) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An audit record (services.contracts.decision.AuditRecord) → its decision row and alert rows."""
    patient_ref = pseudonym(str(record["patient_id"]))
    stored = {k: v for k, v in record.items() if k != "patient_id"}
    stored["patient_ref"] = patient_ref
    alerts = list(record.get("alerts") or [])
    occurred = utc_iso(record["occurred_at"])
    day = cst_day(record["occurred_at"])
    region = record.get("institution_region")
    row = {
        "decision_id": record["decision_id"],
        "event_id": record["event_id"],
        "institution_id": record["institution_id"],
        "region": region,
        "patient_ref": patient_ref,
        # A retrospective finding (事后: a death recorded after the claim) has no scene: stored as 0.
        "scene": RETROSPECTIVE_SCENE if record.get("scene") is None else int(record["scene"]),
        "occurred_at": occurred,
        "day": day,
        "decided_at": utc_iso(record["decided_at"]),
        "alert_count": len(alerts),
        "amount": round(sum(float(a.get("amount") or 0) for a in alerts), 2),
        "rulebase_revision": record.get("rulebase_revision"),
        "engine_ms": float(record.get("engine_ms") or 0.0),
        "request_id": record.get("request_id"),
        "record": dumps(stored),
        "institution_level": record.get("institution_level"),
        "department": record.get("department"),
        "doctor_id": record.get("doctor_id"),
    }
    alert_rows = [{
        "alert_id": a["alert_id"],
        "decision_id": record["decision_id"],
        "rule_id": a["rule_id"],
        "rule_version": a.get("rule_version"),
        "severity": a.get("severity"),
        "amount": float(a.get("amount") or 0.0),
        "institution_id": record["institution_id"],
        "region": region,
        "patient_ref": patient_ref,
        "doctor_id": record.get("doctor_id"),
        "department": record.get("department"),
        "day": day,
        "occurred_at": occurred,
    } for a in alerts]
    return row, alert_rows


def feedback_row(record: dict[str, Any]) -> dict[str, Any]:
    """A feedback record (services.contracts.feedback.FeedbackRecord) → its row."""
    return {
        "alert_id": record["alert_id"],
        "outcome": record["outcome"],
        "decision_id": record["decision_id"],
        "rule_id": record["rule_id"],
        "institution_id": record["institution_id"],
        "reason": record.get("reason"),
        "dialect": record.get("dialect"),
        "received_at": utc_iso(record["received_at"]),
        "record": dumps(record),
    }


def status_row(record: dict[str, Any], pseudonym: Pseudonym, received_at: str) -> dict[str, Any]:
    """An insured-status update (services.contracts.status.PatientStatus wire form) → its row."""
    stored = {k: v for k, v in record.items() if k != "patient_id"}
    patient_ref = pseudonym(str(record["patient_id"]))
    stored["patient_ref"] = patient_ref
    key = "|".join([patient_ref, str(record.get("status")), str(record.get("effective_from")),
                    str(record.get("updated_at"))])
    return {
        "status_key": key,
        "patient_ref": patient_ref,
        "status": record.get("status"),
        "effective_from": record.get("effective_from"),
        "effective_to": record.get("effective_to"),
        "updated_at": record.get("updated_at"),
        "received_at": received_at,
        "record": dumps(stored),
    }


def rulebase_row(key: str, record: dict[str, Any], received_at: str) -> dict[str, Any] | None:
    """A rule-base topic record → a revision row (manifests and activations; bundle chunks are not stored)."""
    if key.startswith("manifest."):
        return {"revision_key": key, "kind": "manifest", "revision": key.partition(".")[2],
                "received_at": received_at, "record": dumps(record)}
    if key == "active":
        revision = str(record.get("revision") or "")
        at = str(record.get("activated_at") or received_at)
        return {"revision_key": f"active.{revision}.{at}", "kind": "active", "revision": revision,
                "received_at": received_at, "record": dumps(record)}
    return None
