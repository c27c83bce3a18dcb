"""A withdrawal (accepted feedback, 返回修改) takes out exactly the withdrawn event's supply, whether the
changed order of the same encounter arrives before or after it (a later sending of the encounter replaces
its supply, so the row is the changed order's); a cancellation (撤销 / 退费) still takes the whole
encounter's."""

from __future__ import annotations

from typing import Any

from services.rules import alert_index as index
from services.rules import state as st
from services.rules.engine import Engine
from tests.factories import drug
from tests.rules.test_realistic_cancellation import cancellation
from tests.rules.test_realistic_supply import ATOR, Patient, event_ids, rx


def alerted(p: Patient, ev: dict[str, Any], rule: str = "R19") -> dict[str, Any]:
    """Send ``ev``; its ``rule`` alert with the id the decision layer gives it."""
    hits = [a for a in p.send(ev) if a["rule_id"] == rule]
    assert hits, f"{rule} did not fire on {ev['event_id']}"
    return {**hits[0], "alert_id": f"d-{ev['event_id']}.{rule}.1"}


def withdrawal(ev: dict[str, Any], alert: dict[str, Any]) -> dict[str, Any]:
    entry = index.issue(None, ev["institution"]["id"], [alert["alert_id"]], 0, index.withdrawal_basis(ev, [alert]))
    out = index.withdrawal_event(entry, alert["alert_id"])
    assert out is not None and out["withdrawal"] is True
    return out


def visit_row(p: Patient) -> list[Any]:
    (row,) = [r for r in p.state["L"] if r[st.L_EVENT].startswith("wd") and r[st.L_EVENT] != "wd-first"]
    return row


def start(p: Patient, pid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """30 days on day 0, then on day 14 (16 left) 30 more at the visit: R19 fires on it."""
    p.send(rx(pid, "wd-first", 0))
    x = rx(pid, "wd-x", 14, enc="visit")
    return x, alerted(p, x)


CHANGED = [drug(ATOR, 10, 10, unit_price=3.2)]  # the doctor's changed order: 10 days instead of 30


def test_changed_order_before_the_withdrawal_stays(engine: Engine) -> None:
    p = Patient(engine)
    x, alert = start(p, "P-wd-before")
    p.send(rx("P-wd-before", "wd-y", 14, enc="visit", items=CHANGED))  # the changed order comes first
    p.send(withdrawal(x, alert))
    row = visit_row(p)
    assert row[st.L_EVENT] == "wd-y" and row[st.L_DAYS] == 10 and row[st.L_QTY] == 10
    assert row[st.L_PARTS] == []  # the row is one event's: no parts
    probe = [a for a in p.send(rx("P-wd-before", "wd-probe", 16)) if a["rule_id"] == "R19"]
    assert probe and event_ids(probe[0]) == ["wd-first", "wd-y"]


def test_changed_order_after_the_withdrawal_is_recorded(engine: Engine) -> None:
    p = Patient(engine)
    x, alert = start(p, "P-wd-after")
    p.send(withdrawal(x, alert))
    assert [r[st.L_EVENT] for r in p.state["L"]] == ["wd-first"]  # the withdrawn order is gone
    p.send(rx("P-wd-after", "wd-y", 14, enc="visit", items=CHANGED))
    row = visit_row(p)
    assert row[st.L_EVENT] == "wd-y" and row[st.L_DAYS] == 10 and row[st.L_QTY] == 10


def test_an_unchanged_settlement_before_the_withdrawal_stays(engine: Engine) -> None:
    """The same lines settled (scene 7) before the feedback: the settlement still supplies them."""
    p = Patient(engine)
    x, alert = start(p, "P-wd-same")
    p.send(rx("P-wd-same", "wd-s", 14, enc="visit", scene=7))
    row = visit_row(p)
    assert row[st.L_EVENT] == "wd-s" and row[st.L_RANK] == 1  # the pre-settlement replaced the order
    p.send(withdrawal(x, alert))
    row = visit_row(p)
    assert row[st.L_EVENT] == "wd-s" and row[st.L_DAYS] == 30


def test_the_changed_order_replaces_the_original_and_its_withdrawal_revives_nothing(engine: Engine) -> None:
    """The changed order (fewer days) replaces the original: withdrawing the original leaves it; withdrawing
    the changed one leaves nothing of the visit (the original it replaced is not revived)."""
    for gone, left in (("x", [("wd-y", 10)]), ("y", [])):
        p = Patient(engine)
        x, alert = start(p, f"P-wd-{gone}")
        y = rx(f"P-wd-{gone}", "wd-y", 14, enc="visit", items=CHANGED)
        p.send(y)
        assert [(r[st.L_EVENT], r[st.L_DAYS]) for r in p.state["L"]] == [("wd-first", 30), ("wd-y", 10)]
        target = (x, alert) if gone == "x" else (y, {**alert, "alert_id": "d-wd-y.R19.1", "line_ids": ["1"]})
        p.send(withdrawal(*target))
        assert [(r[st.L_EVENT], r[st.L_DAYS]) for r in p.state["L"]] == [("wd-first", 30), *left]


def test_a_cancellation_still_takes_the_whole_encounter(engine: Engine) -> None:
    p = Patient(engine)
    x, _ = start(p, "P-wd-cx")
    p.send(rx("P-wd-cx", "wd-y", 14, enc="visit", items=CHANGED))
    assert p.send(cancellation(x, "wd-x-cx", 14, cancels="wd-x")) == []  # refunded: nothing of the visit is held
    assert [r[st.L_EVENT] for r in p.state["L"]] == ["wd-first"]
