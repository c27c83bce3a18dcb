"""Decision and alert ids: deterministic, so any process can derive and join them without shared state."""

from __future__ import annotations

import hashlib
import re

DECISION_RE = re.compile(r"^d-[0-9a-f]{20}$")
RULE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")


def decision_id_for(institution_id: str, event_id: str) -> str:
    """``d-`` + 20 hex digits of (institution, event_id): a HIS retry maps to the same decision."""
    return decision_id_for_key(f"{institution_id}:{event_id}")


def decision_id_for_key(event_key: str) -> str:
    """The decision id of an event key ``"<institution>:<event_id>"`` (the idempotency record's key)."""
    return "d-" + hashlib.blake2b(event_key.encode(), digest_size=10).hexdigest()


def alert_id_for(decision_id: str, rule_id: str, n: int) -> str:
    """``<decision id>.<rule id>.<n>`` (n from 1 in the decision's alert order)."""
    return f"{decision_id}.{rule_id}.{n}"


def parse_alert_id(alert_id: str) -> tuple[str, str, int] | None:
    """``"d-0a1b.R19.1"`` → ``("d-0a1b", "R19", 1)``; None when it is not an alert id of ours."""
    parts = alert_id.split(".")
    if len(parts) != 3 or not parts[0].startswith("d-") or not parts[2].isdigit() or not parts[1]:
        return None
    return parts[0], parts[1], int(parts[2])
