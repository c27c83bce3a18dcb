"""The supply ledger folds spent supplies into the newest row of their ingredient (``state.L_PAST``):
fewer rows to scan, every supply R25 counts still named (event id, institution, date, quantity), and a
purchase reported up to ``PAST_MONTHS`` months late still counted in its own month."""

from __future__ import annotations

from typing import Any

from services.rules import state as st
from services.rules.engine import Engine
from services.rules.timeutil import day_of_date
from tests.factories import drug
from tests.rules.test_realistic_cancellation import cancellation
from tests.rules.test_realistic_supply import ATOR, DAY0, Patient, event_ids, rx


def buy(patient: str, eid: str, day: int, *, inst: str = "PH1", days: int = 7, **kw: Any) -> dict[str, Any]:
    return rx(patient, eid, day, inst=inst, scene=10, etype="pharmacy", items=[drug(ATOR, days, days, unit_price=3.2)], **kw)


def supplies(state: dict[str, Any]) -> list[str]:
    """Event ids of every supply the ledger holds, rows and folded entries alike."""
    out = []
    for r in state.get("L", ()):
        out.append(r[st.L_EVENT])
        out.extend(e[st.F_EVENT] for e in (r[st.L_PAST] if len(r) > st.L_PAST else ()))
    return sorted(out)


def test_a_spent_supply_folds_into_the_newest_row_with_its_fields(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-fold", "fold-1", 0, inst="H7"))  # 30 days
    p.send(rx("P-fold", "fold-2", 40))  # the first was used up 10 days before: spent
    rows = p.state["L"]
    assert len(rows) == 1 and rows[0][st.L_EVENT] == "fold-2"
    (entry,) = rows[0][st.L_PAST]
    assert entry[st.F_EVENT] == "fold-1" and entry[st.F_INST] == "H7" and len(entry) == st.F_CODE  # the row's code
    assert entry[st.F_START] == day_of_date(DAY0.isoformat()) and entry[st.F_QTY] == 30 and entry[st.F_DAYS] == 30
    assert st.past_rows(rows[0])[0][st.L_CODE] == ATOR


def test_a_supply_still_held_is_not_folded(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-held", "held-1", 0))
    p.send(rx("P-held", "held-2", 25))  # 5 days left: R19's stock walk still needs the first
    assert len(p.state["L"]) == 2 and not any(r[st.L_PAST] for r in p.state["L"])


def test_folded_purchases_count_and_are_named_in_r25(engine: Engine) -> None:
    p = Patient(engine)
    for n in range(4):  # 7 days each, a week apart: each used up when the next comes, so folded
        assert p.fired(buy("P-r25", f"r25-{n}", 7 * n, inst=f"PH{n}"), "R25") is None
    assert len(p.state["L"]) == 1 and len(p.state["L"][0][st.L_PAST]) == 3
    alert = p.fired(buy("P-r25", "r25-5th", 28), "R25")
    assert alert is not None and "2026-03月已第5次" in alert["message_zh"]
    named = [e for e in alert["evidence"] if e["kind"] == "event"]
    assert [e["event_id"] for e in named] == ["r25-0", "r25-1", "r25-2", "r25-3", "r25-5th"]
    assert [e["institution_id"] for e in named[:4]] == ["PH0", "PH1", "PH2", "PH3"]
    assert [e["date"] for e in named[:4]] == ["2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"]
    assert all(e["quantity"] == 7 for e in named[:4])


def test_a_purchase_reported_two_months_late_counts_in_its_own_month(engine: Engine) -> None:
    """Four March purchases, then April and May supplies; a fifth March purchase reported in May is
    still the fifth of March (the month before the previous one: dropped before issue 10's follow-up)."""
    p = Patient(engine)
    for n in range(4):
        p.send(buy("P-late2", f"late2-{n}", 7 * n))
    p.send(rx("P-late2", "late2-apr", 31))  # 2026-04-02, 30 days
    p.send(rx("P-late2", "late2-may", 61))  # 2026-05-02: April's used up → folded with March's
    assert [r[st.L_EVENT] for r in p.state["L"]] == ["late2-may"]
    alert = p.fired(buy("P-late2", "late2-mar", 25, inst="PH9"), "R25")  # dated 2026-03-27, arrives now
    assert alert is not None and "2026-03月已第5次" in alert["message_zh"]
    assert event_ids(alert) == ["late2-0", "late2-1", "late2-2", "late2-3", "late2-mar"]
    # it is recorded in its own month too: one more March purchase is the sixth
    assert sorted(supplies(p.state)) == sorted(["late2-0", "late2-1", "late2-2", "late2-3", "late2-mar", "late2-apr",
                                                "late2-may"])


def test_folded_purchases_beyond_the_bound_go(engine: Engine) -> None:
    """Folded purchases are kept for their month and the PAST_MONTHS months after it: March's go when a
    supply of the ingredient is recorded in June."""
    assert st.PAST_MONTHS == 2
    p = Patient(engine)
    for n in range(4):
        p.send(buy("P-bound", f"bound-{n}", 7 * n))
    for eid, day in (("bound-apr", 31), ("bound-may", 61)):
        p.send(rx("P-bound", eid, day))
    assert "bound-0" in supplies(p.state)
    p.send(rx("P-bound", "bound-jun", 92))  # 2026-06-02
    assert supplies(p.state) == ["bound-apr", "bound-jun", "bound-may"]


def test_a_cancelled_folded_purchase_no_longer_counts(engine: Engine) -> None:
    p = Patient(engine)
    bought = [buy("P-cxf", f"cxf-{n}", 7 * n) for n in range(4)]
    for ev in bought:
        p.send(ev)
    assert p.send(cancellation(bought[1], "cxf-1-cx", 22, cancels="cxf-1")) == []  # refunded, folded by now
    assert "cxf-1" not in supplies(p.state) and len(supplies(p.state)) == 3
    assert p.fired(buy("P-cxf", "cxf-5th", 28), "R25") is None  # the fourth of March now


def test_a_folded_encounter_sent_again_is_not_a_second_supply(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-refold", "refold-1", 0, enc="visit-1"))
    p.send(rx("P-refold", "refold-2", 40))
    assert len(p.state["L"]) == 1
    p.send(rx("P-refold", "refold-1b", 0, enc="visit-1", scene=7))  # the settlement of the first visit, late
    assert supplies(p.state) == ["refold-1b", "refold-2"]  # it replaced its order: still one supply
