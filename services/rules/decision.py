"""Decisions and idempotency: pure state arithmetic shared by the worker and replay.

A decision is the engine's answer to one event. Its id is derived from
(institution, event_id), so a HIS retry of the same event — which is normal —
maps to the same decision id even when the first attempt timed out.

The patient state keeps a short record of the events it has already applied
under the reserved key ``"seen"``: ``[[key, epoch_s, decision_id, alerts], ...]`` (state
format 1; format 2 drops the decision id, which the key determines).
A retry found there returns the recorded decision and is not applied again.
Other records are evicted by event time (``SEEN_WINDOW_S`` behind the newest
event) and by count (``SEEN_MAX``), so the idempotency window is bounded: a
retry arriving after either bound has passed is treated as a new event. The
record just written is always kept, however old its event time.

Next to it, under ``"pending_audit"``, the worker keeps a *pending-audit marker* per
event whose audit record is not yet confirmed: ``[key, decision_id, source offset,
audit offset]``. The worker writes the state before the decision's audit record, so a
state restored after a crash may hold an event whose audit record never reached the
audit topic; the marker says where to look for it (the audit partition from that offset
on). Markers are dropped on a later write once ``confirmed`` says the audit record is
there, and with their idempotency record.

Recorded alerts leave out what the rule table restores on a replay (names,
GZ code, policy basis, severity: ``STATIC_ALERT_KEYS``), which keeps the
state, serialized and written to the changelog on every event, small.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from services.contracts.decision import STATIC_ALERT_KEYS
from services.contracts.ids import alert_id_for, decision_id_for, parse_alert_id
from services.rules import state as state_codec

__all__ = ["STATIC_ALERT_KEYS", "confirm", "decision_id_for", "event_key", "find_pending", "find_seen",
           "handle_event", "number_alerts", "parse_alert_id", "remember"]

SEEN_KEY = "seen"
PENDING_KEY = "pending_audit"
Pending = list[int]  # [source offset, audit offset from which its audit record would be found]
Confirmed = Callable[[str, Pending], bool]  # (decision id, marker) → its audit record is known to be there
# An idempotency record: [key, epoch_s, (format 1: decision_id,) alerts] — alerts are always last.
SEEN_EVENT, SEEN_EPOCH, SEEN_ALERTS = 0, 1, -1
SEEN_WINDOW_S = 24 * 3600
SEEN_MAX = 16


def event_key(event: dict[str, Any]) -> str:
    return f"{event['institution']['id']}:{event['event_id']}"


def event_epoch_s(event: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(event["occurred_at"]).timestamp())


def find_seen(state: dict[str, Any], key: str) -> list[Any] | None:
    for record in state.get(SEEN_KEY, ()):
        if record[SEEN_EVENT] == key:
            return record
    return None


def find_pending(state: dict[str, Any], key: str) -> Pending | None:
    for marker in state.get(PENDING_KEY, ()):
        if marker[0] == key:
            return [marker[2], marker[3]]
    return None


def _keep_pending(state: dict[str, Any], confirmed: Confirmed | None) -> list[list[Any]]:
    """The markers still pending: their event still recorded, their audit record not confirmed."""
    recorded = {r[SEEN_EVENT] for r in state.get(SEEN_KEY, ())}
    return [m for m in state.get(PENDING_KEY, ())
            if m[0] in recorded and (confirmed is None or not confirmed(m[1], [m[2], m[3]]))]


def remember(
    state: dict[str, Any], key: str, epoch_s: int, decision_id: str, alerts: list[dict[str, Any]],
    pending: Pending | None = None, confirmed: Confirmed | None = None,
) -> dict[str, Any]:
    """Record an applied event (alerts without their static fields); evict old records, never this one.

    A record is ``[key, epoch_s, decision_id, alerts]`` in state format 1 and ``[key, epoch_s,
    alerts]`` in format 2 (the decision id is derived from the key): see ``state.WRITE_FORMAT``.
    ``pending`` marks this event's audit record as not yet confirmed; other markers for which
    ``confirmed`` holds are dropped."""
    compact = [{k: v for k, v in a.items() if k not in STATIC_ALERT_KEYS} for a in alerts]
    if state_codec.WRITE_FORMAT == 1:
        current = [key, epoch_s, decision_id, compact]
    else:
        current = [key, epoch_s, compact]
    others = [r for r in state.get(SEEN_KEY, ()) if r[SEEN_EVENT] != key]
    newest = max([epoch_s, *(r[SEEN_EPOCH] for r in others)])
    others = [r for r in others if newest - r[SEEN_EPOCH] <= SEEN_WINDOW_S]
    others.sort(key=lambda r: r[SEEN_EPOCH])
    state[SEEN_KEY] = [*others[-(SEEN_MAX - 1):], current]
    markers = [m for m in _keep_pending(state, confirmed) if m[0] != key]
    if pending is not None:
        markers.append([key, decision_id, *pending])
    if markers:
        state[PENDING_KEY] = markers
    else:
        state.pop(PENDING_KEY, None)
    return state


def number_alerts(decision_id: str, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each alert a stable id, ``<decision id>.<rule id>.<n>``, that feedback can name.

    The id carries its decision and rule, so any ingress instance can join a
    doctor's feedback (3103, CDS Hooks, native) to them without shared state.
    """
    for n, alert in enumerate(alerts, 1):
        alert["alert_id"] = alert_id_for(decision_id, alert["rule_id"], n)
    return alerts


class _Engine(Protocol):
    def process(self, state: dict[str, Any], event: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]: ...

    def decide(
        self, state: dict[str, Any], event: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]: ...

    def decide_all(
        self, state: dict[str, Any], event: dict[str, Any], providers: Any = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]: ...

    def unchecked_lines(self, event: dict[str, Any]) -> list[dict[str, Any]]: ...

    def apply(self, state: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]: ...

    def rule_static(self, rule_id: str, version: str) -> dict[str, Any]: ...


def handle_event(
    engine: _Engine, state_bytes: bytes | None, event: dict[str, Any], evaluate: bool = True,
    pending: Pending | None = None, confirmed: Confirmed | None = None, providers: Any = None,
) -> tuple[bytes | None, dict[str, Any]]:
    """One event against one patient's serialized state: what the worker does per event.

    Returns (new state bytes, or None when unchanged; outcome {decision_id,
    alerts, unchecked_lines, replayed, pending, shadow_alerts}). ``shadow_alerts`` are the would-be
    alerts of rules in mode shadow (numbered like alerts, never recorded in the state: a retry has none). ``unchecked_lines`` are the lines no
    catalogue rule could judge (Engine.unchecked_lines), recomputed for a retry.
    A retry found in the idempotency record is answered from
    it and not applied again. ``evaluate=False`` merges an earlier encounter
    into the history (the NHSA dialects' history encounters): applied once, no
    rules, no alerts. ``pending``/``confirmed``: see :func:`remember`; a replay's outcome
    carries its event's marker (``pending``: None once confirmed or never set). ``providers``: the
    institution and doctor status timelines the rules read (services.rules.providers; None: none).
    """
    state = state_codec.loads(state_bytes)
    key = event_key(event)
    decision_id = decision_id_for(event["institution"]["id"], event["event_id"])
    seen = find_seen(state, key)
    if seen is not None:
        # The recorded decision id is the one derived from the key (format 1 stores it too); the
        # alerts are the record's last field in every format.
        alerts = [{**a, **engine.rule_static(a["rule_id"], a["rule_version"])} for a in seen[SEEN_ALERTS]]
        return None, {"decision_id": decision_id, "alerts": alerts, "unchecked_lines": engine.unchecked_lines(event),
                      "replayed": True, "pending": find_pending(state, key), "shadow_alerts": []}
    shadow: list[dict[str, Any]] = []
    if evaluate:
        new_state, alerts, unchecked, shadow = engine.decide_all(state, event, providers)
    else:
        new_state, alerts, unchecked = engine.apply(state, event), [], []
    number_alerts(decision_id, alerts)
    if shadow:
        number_alerts(decision_id, shadow)
    remember(new_state, key, event_epoch_s(event), decision_id, alerts, pending, confirmed)
    return state_codec.dumps(new_state), {"decision_id": decision_id, "alerts": alerts, "unchecked_lines": unchecked,
                                          "replayed": False, "pending": pending, "shadow_alerts": shadow}


def confirm(state_bytes: bytes | None, confirmed: Confirmed) -> bytes | None:
    """The state without the markers ``confirmed`` accepts; None when nothing changed."""
    state = state_codec.loads(state_bytes)
    markers = state.get(PENDING_KEY, [])
    kept = _keep_pending(state, confirmed)
    if len(kept) == len(markers):
        return None
    if kept:
        state[PENDING_KEY] = kept
    else:
        state.pop(PENDING_KEY, None)
    return state_codec.dumps(state)
