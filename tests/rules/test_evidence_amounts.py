"""Evidence of earlier events names their amount (issue 10: 可追溯 — id, institution, date, quantity and amount):
supplies in the ledger (R19, R25) and period counters (R16) keep it; spent supplies folded into
a row (state.L_PAST) do not."""

from __future__ import annotations

from typing import Any

from services.rules import state as st
from services.rules.engine import Engine
from tests.factories import drug
from tests.rules.audit_kit import Story, ev, line
from tests.rules.test_realistic_supply import ATOR, Patient, rx

DIALYSIS = "003112010010000"  # 血液透析: period limit 3 per 7 days


def earlier(alert: dict[str, Any]) -> list[tuple[str, float | None]]:
    return [(e["event_id"], e["amount"]) for e in alert["evidence"] if e["kind"] == "event" and e.get("event_id")]


def test_r19_names_each_earlier_supplys_amount(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-amt-19", "amt-1", 0, items=[drug(ATOR, 30, 30, unit_price=3.2)]))
    p.send(rx("P-amt-19", "amt-2", 21, items=[drug(ATOR, 30, 30, unit_price=3.2), drug(ATOR, 10, 10, line_id="2",
                                                                                       unit_price=3.2)]))
    alert = p.fired(rx("P-amt-19", "amt-3", 30, inst="H2"), "R19")
    assert alert is not None and earlier(alert)[:2] == [("amt-1", 96.0), ("amt-2", 128.0)]  # split lines add up


def test_r25_names_the_amount_of_purchases_held_but_not_of_folded_ones(engine: Engine) -> None:
    """Five pharmacy purchases of 7 days in March, each after the one before was used up: the earlier ones
    are folded into the newest row (spent) and named without their amount (a folded entry keeps none: the
    state's size); the newest, still a row, with it."""
    p = Patient(engine)
    for n, day in enumerate((0, 8, 16, 24)):
        p.send(rx("P-amt-25", f"buy-{n}", day, inst="PH1", scene=10, etype="pharmacy",
                  items=[drug(ATOR, 7, 7, unit_price=3.0 + n)]))
    assert any(r[st.L_PAST] for r in p.state["L"])  # spent purchases were folded
    alert = p.fired(rx("P-amt-25", "buy-4", 26, inst="PH2", scene=10, etype="pharmacy",
                       items=[drug(ATOR, 7, 7, unit_price=3.0)]), "R25")
    assert alert is not None
    assert earlier(alert)[:4] == [("buy-0", None), ("buy-1", None), ("buy-2", None), ("buy-3", 42.0)]


def test_r16_names_the_amount_of_earlier_sessions(engine: Engine) -> None:
    s = Story(engine)
    for n, day in enumerate(("2026-03-01", "2026-03-03", "2026-03-05")):
        s.send(ev("P-amt-16", f"hd-{n}", day, enc=f"hd-{n}", items=[line("1", DIALYSIS, "service", 1, 400.0 + n,
                                                                           start=day)]))
    alert = s.one(ev("P-amt-16", "hd-3", "2026-03-07", enc="hd-3", items=[line("1", DIALYSIS, "service", 1, 400.0,
                                                                              start="2026-03-07")]), "R16")
    assert alert is not None
    assert earlier(alert)[:3] == [("hd-0", 400.0), ("hd-1", 401.0), ("hd-2", 402.0)]


def test_a_row_written_before_amounts_gives_none(engine: Engine) -> None:
    assert st.amount_of(["atorvastatin", ATOR, 1, 30, 30.0, "H1", "e", 1, 202603, [1]]) is None
    assert st.amount_of(["atorvastatin", ATOR, 1, 30, 30.0, "H1", "e", 1, 202603, [1], [], [], 0, 96.0]) == 96.0


def test_a_late_death_names_the_amount_of_the_supply_it_finds(engine: Engine) -> None:
    from tests.rules.test_realistic_status import claims_of, death

    p = Patient(engine)
    claims_of(p, "P-amt-death")
    [supply, _] = engine.retrospective(p.state, death("P-amt-death"))
    [alert] = supply["alerts"]
    assert [(e["event_id"], e["amount"]) for e in alert["evidence"] if e["kind"] == "event"] == [("P-amt-death-d6", 6.0)]
