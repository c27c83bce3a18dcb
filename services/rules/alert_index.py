"""Which alerts were issued, to whom, and which feedback they already got: pure arithmetic.

Feedback names an alert by its id alone (``<decision_id>.<rule_id>.<n>``; neither
NHSA 3103 nor CDS Hooks feedback carries a patient id), so the patient state cannot
be reached from it. The worker therefore keeps a second table keyed by **decision
id**, fed from one topic keyed by decision id (``<prefix>.alert-index``) that
carries two kinds of record, in order within a partition:

* ``issued``: written by the worker for every decision with alerts, acknowledged
  by the broker *before* the HIS gets its answer — so feedback on an alert, which
  the HIS can only send after it got the alert, always comes after it;
* ``feedback``: written by the ingress, with reply headers; the worker answers
  ``recorded``, ``duplicate`` or ``unknown``.

An entry: ``{"i": institution, "t": epoch seconds issued, "a": {alert_id: [outcomes]}}``, and,
for alerts that name lines, ``"w"``: what an ``accepted`` feedback (the doctor changed the order,
返回修改) needs to take those lines back out of the patient's state — the event without its items
(``ev``) and each alert's line codes (``l``); see :func:`withdrawal_event`.
Entries older than ``WINDOW_S`` are evicted (feedback after that is refused).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

WINDOW_S = 30 * 24 * 3600

Status = Literal["recorded", "duplicate", "unknown"]


def issue(entry: dict[str, Any] | None, institution: str, alert_ids: list[str], at: float,
          withdraw: dict[str, Any] | None = None) -> dict[str, Any]:
    """The entry after a decision's alerts were issued (a re-issue keeps the feedback already recorded).
    ``withdraw``: :func:`withdrawal_basis` of the decision (None: accepted feedback withdraws nothing)."""
    if entry is not None and entry.get("i") == institution:
        alerts = {a: list(entry["a"].get(a, [])) for a in alert_ids}
        out = {"i": institution, "t": entry.get("t", int(at)), "a": alerts}
        withdraw = withdraw or entry.get("w")
    else:
        out = {"i": institution, "t": int(at), "a": {a: [] for a in alert_ids}}
    if withdraw:
        out["w"] = withdraw
    return out


WITHDRAW_FIELDS = ("event_id", "scene", "occurred_at", "institution", "patient", "encounter")


def withdrawal_basis(event: dict[str, Any], alerts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What withdrawing an alert's lines needs: the event without items or diagnoses, and per alert
    (by ``alert_id``) the ``[code, kind]`` of each line it names. None when no alert names a line."""
    items = {it["line_id"]: it for it in event.get("items") or ()}
    lines = {}
    for a in alerts:
        named = [[items[lid]["code"], items[lid]["kind"]] for lid in a.get("line_ids") or () if lid in items]
        if named and a.get("alert_id"):
            lines[a["alert_id"]] = named
    if not lines:
        return None
    return {"ev": {k: event[k] for k in WITHDRAW_FIELDS if k in event}, "l": lines}


def withdrawal_event(entry: dict[str, Any] | None, alert_id: str) -> dict[str, Any] | None:
    """The native cancellation that takes an alert's lines back out of the patient's state after an
    ``accepted`` feedback (返回修改: the order was changed, so what the alert judged was never supplied).
    Its id is derived from the alert id, so a re-sent withdrawal is applied once. None when the entry
    keeps no lines for the alert (an alert that names no line withdraws nothing)."""
    w = (entry or {}).get("w")
    if not w:
        return None
    named = w["l"].get(alert_id)
    if not named:
        return None
    ev = w["ev"]
    return {
        **ev, "event_id": "wd-" + hashlib.blake2b(alert_id.encode(), digest_size=12).hexdigest(),
        "event_type": "cancellation", "cancels": ev["event_id"], "withdrawal": True, "diagnoses": [],
        "items": [{"line_id": str(n + 1), "code": code, "kind": kind, "quantity": 1.0}
                  for n, (code, kind) in enumerate(named)],
    }


def feedback(
    entry: dict[str, Any] | None, institution: str, alert_id: str, outcome: str
) -> tuple[dict[str, Any] | None, Status]:
    """(new entry or None when unchanged, status) for one feedback on one alert.

    ``unknown`` both when the alert was never issued and when it was issued to another
    institution: a caller learns nothing about other institutions' alerts.
    """
    if entry is None or entry.get("i") != institution or alert_id not in entry.get("a", {}):
        return None, "unknown"
    outcomes = entry["a"][alert_id]
    if outcome in outcomes:
        return None, "duplicate"
    return {**entry, "a": {**entry["a"], alert_id: [*outcomes, outcome]}}, "recorded"


def expired(entry: dict[str, Any], now: float, window_s: float = WINDOW_S) -> bool:
    return now - float(entry.get("t", 0)) > window_s
