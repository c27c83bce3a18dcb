"""One generic runner over every rule file's golden cases (a new rule needs no new test code)."""

from __future__ import annotations

import collections
import re

import pytest

from services.rules.engine import Engine
from tests.rules.golden import check, load_cases, replay

CASES = load_cases()
ENGLISH_WORD = re.compile(r"[a-z]{3,}")  # codes are upper case and digits; words are not
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
ALERT_KEYS = {
    "rule_id", "rule_version", "gz_code", "name_zh", "name_en", "result_type", "indicator",
    "severity", "message_zh", "message_en", "line_ids", "amount", "evidence", "policy_basis", "region",
}


@pytest.mark.parametrize(("rule_id", "index", "case"), CASES, ids=[f"{r}-{i}" for r, i, _ in CASES])
def test_case(engine: Engine, pinned_clock: float, rule_id: str, index: int, case: dict) -> None:
    alerts, _ = replay(engine, case)
    errors = check(rule_id, case, alerts)
    assert not errors, f"{rule_id} case {index} ({case['name']}):\n  " + "\n  ".join(errors)
    for alert in alerts:
        assert set(alert) == ALERT_KEYS, sorted(set(alert) ^ ALERT_KEYS)
        assert alert["severity"] == {"critical": "C", "warning": "W", "info": "I"}[alert["indicator"]]
        assert isinstance(alert["amount"], float)
        for ev in alert["evidence"]:
            assert ev["kind"] in ("event", "kb")
            if ev["kind"] == "event":
                assert "amount" in ev, ev
        # Chinese text fully Chinese, English fully English (a status reason is the bureau's free text).
        assert not ENGLISH_WORD.search(alert["message_zh"]), alert["message_zh"]
        if alert["rule_id"] != "R31":
            assert not CJK.search(alert["message_en"]), alert["message_en"]


@pytest.mark.parametrize(("rule_id", "index", "case"), CASES[::7], ids=[f"{r}-{i}" for r, i, _ in CASES[::7]])
def test_deterministic(engine: Engine, rule_id: str, index: int, case: dict) -> None:
    first, state1 = replay(engine, case)
    second, state2 = replay(engine, case)
    assert first == second and state1 == state2


def test_every_rule_has_cases_both_ways(engine: Engine) -> None:
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for rule_id, _, case in CASES:
        counts[rule_id][case["fires"]] += 1
    for rule in engine.rules:
        assert counts[rule.id][True] >= 2, f"{rule.id} has {counts[rule.id][True]} firing cases"
        assert counts[rule.id][False] >= 2, f"{rule.id} has {counts[rule.id][False]} non-firing cases"


def test_cases_are_self_contained() -> None:
    patients: dict[str, str] = {}
    event_ids: set[str] = set()
    for rule_id, index, case in CASES:
        events = case["history"] + [case["event"]]
        pids = {e["patient"]["id"] for e in events} | {s["patient_id"] for s in case.get("status", [])}
        assert len(pids) == 1, f"{rule_id} case {index} mixes patients {pids}"
        pid = pids.pop()
        assert patients.setdefault(pid, f"{rule_id}-{index}") == f"{rule_id}-{index}", f"patient {pid} reused"
        for e in events:
            key = (e["institution"]["id"], e["event_id"])
            assert e["event_id"] not in event_ids, f"event id {key} reused"
            event_ids.add(e["event_id"])
