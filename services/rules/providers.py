"""Provider status timelines: institution 定点协议 and doctor 医保医师 payment qualification (pure).

:class:`Providers` folds the bureau's status records (services/contracts/provider_status.py,
wire form) into one timeline per institution and per doctor. Every worker holds all of it
(services/common/provider_feed.py reads the provider-status topic into one instance) and the
rules read it at each line's service date (services/rules/families/provider.py).

Timeline semantics, as for the patient's insured status but without a terminal state:

* a period covers ``effective_from`` .. ``effective_to`` (inclusive; open without an end);
* the status on a day is that of the most recently updated (``updated_at``) period covering
  it, whatever order the records arrive in;
* a newer update for the same ``effective_from`` replaces the period; ``revoked: true`` on it
  withdraws the period (an explicit revocation); an older update never replaces a newer one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from services.contracts.provider_status import DOCTOR_STATUSES, INSTITUTION_STATUSES, SUBJECTS, subject_id
from services.rules.timeutil import date_of_day, day_of_date


class Period(NamedTuple):
    """One status period of one provider (days: see services.rules.timeutil)."""

    status: str
    frm: int
    to: int | None
    updated: float  # epoch seconds of updated_at
    revoked: bool
    reason: str | None
    document_no: str | None
    updated_at: str  # as recorded (ISO)

    def covers(self, day: int) -> bool:
        return self.frm <= day and (self.to is None or day <= self.to)

    def evidence(self, subject: str, sid: str) -> dict[str, Any]:
        """The evidence entry naming this status record."""
        until = date_of_day(self.to) if self.to is not None else None
        detail = f"{subject} {sid} {self.status} from {date_of_day(self.frm)}" + (f" to {until}" if until else "")
        if self.document_no:
            detail += f"; document {self.document_no}"
        if self.reason:
            detail += f"; reason: {self.reason}"
        return {"kind": "kb", "table": f"{subject}_status", "code": self.status, "subject_id": sid,
                "effective_from": date_of_day(self.frm), "effective_to": until, "document_no": self.document_no,
                "reason": self.reason, "updated_at": self.updated_at, "detail": detail}


STATUSES = {"institution": INSTITUTION_STATUSES, "doctor": DOCTOR_STATUSES}


class Providers:
    """Every institution's and doctor's status timeline. Not thread-safe: one writer (the feed), read
    between awaits by the decisions of the same event loop."""

    def __init__(self) -> None:
        self.timelines: dict[str, dict[str, list[Period]]] = {s: {} for s in SUBJECTS}
        self.records = 0  # records folded (retries included)

    def apply(self, wire: dict[str, Any]) -> bool:
        """Fold one wire record; False when an update already recorded for that period is newer."""
        subject = wire["subject"]
        if subject not in STATUSES:
            raise ValueError(f"subject {subject!r} is not one of {SUBJECTS}")
        if wire["status"] not in STATUSES[subject]:
            raise ValueError(f"status {wire['status']!r} is not one of {STATUSES[subject]}")
        frm = day_of_date(wire["effective_from"])
        to = day_of_date(wire["effective_to"]) if wire.get("effective_to") else None
        if to is not None and to < frm:
            raise ValueError("effective_to is before effective_from")
        updated = datetime.fromisoformat(wire["updated_at"]).timestamp()
        period = Period(wire["status"], frm, to, updated, bool(wire.get("revoked")), wire.get("reason") or None,
                        wire.get("document_no") or None, wire["updated_at"])
        self.records += 1
        timeline = self.timelines[subject].setdefault(subject_id(wire), [])
        for i, old in enumerate(timeline):
            if old.frm == frm:
                if old.updated > updated:
                    return False
                timeline[i] = period
                return True
        timeline.append(period)
        return True

    def on(self, subject: str, sid: str | None, day: int) -> Period | None:
        """The period deciding ``day`` for one provider (revoked periods withdrawn), None if none."""
        if sid is None:
            return None
        timeline = self.timelines[subject].get(sid)
        if not timeline:
            return None
        best = None
        for p in timeline:
            if not p.revoked and p.covers(day) and (best is None or (p.updated, p.frm) > (best.updated, best.frm)):
                best = p
        return best

    def affecting(self, subject: str, sid: str | None, day: int) -> Period | None:
        """The period that makes care on ``day`` unpayable (a status other than active), or None."""
        p = self.on(subject, sid, day)
        return None if p is None or p.status == "active" else p

    def known(self, subject: str, sid: str | None) -> bool:
        return sid is not None and sid in self.timelines[subject]

    def timeline(self, subject: str, sid: str) -> list[dict[str, Any]]:
        """One provider's periods as recorded (for look-ups), oldest first."""
        return [{"status": p.status, "effective_from": date_of_day(p.frm),
                 "effective_to": date_of_day(p.to) if p.to is not None else None, "revoked": p.revoked,
                 "reason": p.reason, "document_no": p.document_no, "updated_at": p.updated_at}
                for p in sorted(self.timelines[subject].get(sid, ()), key=lambda p: (p.frm, p.updated))]

    def counts(self) -> dict[str, int]:
        return {s: len(t) for s, t in self.timelines.items()}
