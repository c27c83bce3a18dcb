"""The golden-case runner: replays a rule file's cases through the pure engine and checks them.

Each rule file (``rules/R*.json``) carries golden cases next to the rule: native events
(validated with services.contracts.event.Event, so they are valid ``POST /v1/events``
bodies too), an optional history and status updates, and what must (not) fire. The state
goes through the same codec as in the worker between events.

Used by the test suite (tests/rules/test_golden.py) and by ``POST /v1/admin/rulebase`` and
``presettle rules validate``: a bundle is accepted only when every case of every rule in it
holds. Cases check a rule's logic, so they run with every rule evaluated as active whatever
its ``mode`` (a shadow or off rule must still be right before it is switched on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from services.contracts.event import Event
from services.contracts.provider_status import parse as parse_provider
from services.contracts.status import PatientStatus
from services.rules import state as state_codec
from services.rules.engine import Engine
from services.rules.exceptions import DataError
from services.rules.providers import Providers

Case = tuple[str, int, dict[str, Any]]


def cases_of(files: Mapping[str, bytes]) -> list[Case]:
    """``(rule id, index, case)`` for every case of every ``rules/R*.json`` of a bundle, in file order."""
    out = []
    for rel, data in sorted(files.items()):
        if not (rel.startswith("rules/") and rel.endswith(".json")):
            continue
        doc = orjson.loads(data)
        for i, case in enumerate(doc.get("cases", []) if isinstance(doc, dict) else []):
            out.append((rel[6:-5], i, case))
    return out


def wire(event: dict[str, Any]) -> dict[str, Any]:
    return Event.model_validate(event).to_wire()


def replay(engine: Engine, case: dict[str, Any]) -> tuple[list[dict[str, Any]], bytes]:
    """Status updates, then history, then the event; returns (alerts for the event, final state bytes).
    ``providers`` (institution and doctor status updates) are known to every event of the case."""
    providers = Providers()
    for record in case.get("providers", []):
        providers.apply(parse_provider(record).to_wire())
    blob = state_codec.dumps({})
    for status in case.get("status", []):
        s = PatientStatus.model_validate(status).to_wire()
        blob = state_codec.dumps(engine.apply_status(state_codec.loads(blob), s))
    for event in case["history"]:
        new_state, _ = engine.process(state_codec.loads(blob), wire(event), providers)
        blob = state_codec.dumps(new_state)
    new_state, alerts = engine.process(state_codec.loads(blob), wire(case["event"]), providers)
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


def run_cases(engine: Engine, cases: list[Case]) -> list[dict[str, Any]]:
    """Every failing case as ``{"rule_id", "case", "name", "errors"}`` (empty: all hold). Modes are ignored."""
    engine = engine.with_modes(False)
    failures = []
    for rule_id, index, case in cases:
        try:
            alerts, _ = replay(engine, case)
            errors = check(rule_id, case, alerts)
        except Exception as exc:  # a case that is not even a valid event, a KeyError in expect, …
            errors = [f"the case could not run: {type(exc).__name__}: {str(exc)[:300]}"]
        if errors:
            name = case.get("name", "") if isinstance(case, dict) else ""
            failures.append({"rule_id": rule_id, "case": index, "name": name, "errors": errors})
    return failures


class BundleRejected(Exception):
    """A bundle that does not load (``errors``: one entry naming the file and field) or whose golden cases fail."""

    def __init__(self, message: str, failures: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures


def check_bundle(files: Mapping[str, bytes]) -> tuple[Engine, int]:
    """Load ``files`` with the start-up loader and run every golden case of every rule in it.

    Returns (the engine, honouring modes; the number of cases run). Raises :class:`BundleRejected`
    listing what failed: the loader's error (``{"rule_id": null, "file", "errors"}``) or each failing case.
    """
    try:
        engine = Engine.from_files(files)
        cases = cases_of(files)
    except DataError as exc:
        where = str(exc).split(":", 1)[0]
        raise BundleRejected(f"the bundle does not load: {exc}",
                             [{"rule_id": None, "file": where, "errors": [str(exc)]}]) from None
    except orjson.JSONDecodeError as exc:
        raise BundleRejected(f"the bundle does not load: {exc}", [{"rule_id": None, "errors": [str(exc)]}]) from None
    without = sorted({r.id for r in engine.rules} - {rule_id for rule_id, _, _ in cases})
    if without:
        raise BundleRejected(f"rule(s) without golden cases: {without}",
                             [{"rule_id": r, "errors": ["the rule file has no golden cases"]} for r in without])
    failures = run_cases(engine, cases)
    if failures:
        rules = sorted({f["rule_id"] for f in failures})
        raise BundleRejected(f"{len(failures)} golden case(s) failed, of rule(s) {rules}", failures)
    return engine, len(cases)
