"""The generic golden-case runner: replays ``services/data/rules/R*.json`` cases through the pure engine.

Cases are native events (validated here with services.contracts.event.Event, so they
are valid ``POST /v1/events`` bodies too); the state goes through the same
codec as in the worker between events.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.contracts.event import Event
from services.contracts.status import PatientStatus
from services.rules import state as state_codec
from services.rules.engine import DEFAULT_DATA, Engine

RULES_DIR = DEFAULT_DATA / "rules"


def load_cases() -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for path in sorted(RULES_DIR.glob("R*.json")):
        doc = orjson.loads(path.read_bytes())
        for i, case in enumerate(doc.get("cases", [])):
            out.append((path.stem, i, case))
    return out


def wire(event: dict[str, Any]) -> dict[str, Any]:
    return Event.model_validate(event).to_wire()


def replay(engine: Engine, case: dict[str, Any]) -> tuple[list[dict[str, Any]], bytes]:
    """Status updates, then history, then the event; returns (alerts for the event, final state bytes)."""
    blob = state_codec.dumps({})
    for status in case.get("status", []):
        s = PatientStatus.model_validate(status).to_wire()
        blob = state_codec.dumps(engine.apply_status(state_codec.loads(blob), s))
    for event in case["history"]:
        new_state, _ = engine.process(state_codec.loads(blob), wire(event))
        blob = state_codec.dumps(new_state)
    new_state, alerts = engine.process(state_codec.loads(blob), wire(case["event"]))
    return alerts, state_codec.dumps(new_state)


def _subset(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    return all(actual.get(k) == v for k, v in expected.items())


def check(rule_id: str, case: dict[str, Any], alerts: list[dict[str, Any]]) -> list[str]:
    """Failures (empty when the case holds)."""
    errors = []
    expect = case["expect"]
    got = {a["rule_id"] for a in alerts}
    present = set(expect.get("present", []))
    absent = set(expect.get("absent", []))
    if case["fires"] != (rule_id in present) or (not case["fires"] and rule_id not in absent):
        errors.append(f"case says fires={case['fires']} but expect does not list {rule_id} accordingly")
    for rid in sorted(present - got):
        errors.append(f"expected {rid} to fire; got {sorted(got)}")
    for rid in sorted(absent & got):
        msgs = [a["message_en"] for a in alerts if a["rule_id"] == rid]
        errors.append(f"expected {rid} not to fire; it did: {msgs}")
    for want in expect.get("alerts", []):
        cands = [a for a in alerts if a["rule_id"] == want["rule_id"]]
        if "line_ids" in want:
            cands = [a for a in cands if a["line_ids"] == want["line_ids"]]
        if not cands:
            errors.append(f"no {want['rule_id']} alert with line_ids {want.get('line_ids')}")
            continue
        a = cands[0]
        for key in ("amount", "region", "indicator", "severity", "result_type"):
            if key in want and a[key] != want[key]:
                errors.append(f"{want['rule_id']}.{key} = {a[key]!r}, expected {want[key]!r}")
        for text in want.get("message_contains", []):
            if text not in a["message_zh"] and text not in a["message_en"]:
                errors.append(f"{want['rule_id']} message lacks {text!r}: {a['message_zh']} / {a['message_en']}")
        for kind, key in (("event", "evidence_events"), ("kb", "evidence_kb")):
            for ev in want.get(key, []):
                if not any(e["kind"] == kind and _subset(ev, e) for e in a["evidence"]):
                    errors.append(f"{want['rule_id']} evidence lacks {kind} {ev}: {a['evidence']}")
    return errors

