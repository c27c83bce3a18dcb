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

An entry: ``{"i": institution, "t": epoch seconds issued, "a": {alert_id: [outcomes]}}``.
Entries older than ``WINDOW_S`` are evicted (feedback after that is refused).
"""

from __future__ import annotations

from typing import Any, Literal

WINDOW_S = 30 * 24 * 3600

Status = Literal["recorded", "duplicate", "unknown"]


def issue(entry: dict[str, Any] | None, institution: str, alert_ids: list[str], at: float) -> dict[str, Any]:
    """The entry after a decision's alerts were issued (a re-issue keeps the feedback already recorded)."""
    if entry is not None and entry.get("i") == institution:
        alerts = {a: list(entry["a"].get(a, [])) for a in alert_ids}
        return {"i": institution, "t": entry.get("t", int(at)), "a": alerts}
    return {"i": institution, "t": int(at), "a": {a: [] for a in alert_ids}}


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
