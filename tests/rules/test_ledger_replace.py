"""A later sending of an encounter replaces its supplies in the ledger (what was settled is what the patient
holds): an order cut down before settlement holds only what was settled; a (pre-)settlement drops the drugs
it no longer lists; an earlier stage arriving after the settlement changes nothing; other encounters'
supplies are untouched, and lines of one ingredient within one request still add up (分解处方)."""

from __future__ import annotations

from typing import Any

from services.rules import state as st
from services.rules.engine import Engine
from tests.factories import drug
from tests.rules.audit_kit import Story, ev, line
from tests.rules.test_realistic_cancellation import cancellation
from tests.rules.test_realistic_supply import ATOR, Patient, event_ids, on, rx

AMLO = "XC08CAH001A001010100137"  # amlodipine 5 mg


def ator(days: int, line_id: str = "1") -> dict[str, Any]:
    return drug(ATOR, days, days, line_id=line_id, unit_price=3.2)


def rows(p: Patient) -> list[tuple[str, str, int, float]]:
    """(ingredient, event id, days, qty) of every ledger row."""
    return sorted((r[st.L_ING], r[st.L_EVENT], r[st.L_DAYS], r[st.L_QTY]) for r in p.state.get("L", ()))


def test_h4_a_prescription_cut_down_before_settlement_holds_what_was_settled(engine: Engine) -> None:
    """The audit's handover probe h4: 30 days of atorvastatin prescribed (scene 2), cut to 14 after the
    warning and settled with 14 (scene 6, same encounter, new event id). Twelve days later 2 days are held,
    under a third of 14: no R19 (the ledger kept the union, 30 days, and fired)."""
    lipid = [("E78.500", "高脂血症")]
    s = Story(engine)
    s.send(ev("P-h4", "h4-2", "2026-04-01", scene=2, enc="h4-visit", dx=lipid,
              items=[line("1", ATOR, qty=30, price=0.3, days=30)]))
    s.send(ev("P-h4", "h4-6", "2026-04-01T10:00:00+08:00", scene=6, enc="h4-visit", dx=lipid,
              items=[line("1", ATOR, qty=14, price=0.3, days=14)]))
    assert s.one(ev("P-h4", "h4-next", "2026-04-13", inst="H2", dx=lipid,
                    items=[line("1", ATOR, qty=30, price=0.3, days=30)]), "R19") is None


def test_settled_as_prescribed_the_refill_still_fires(engine: Engine) -> None:
    """Control: the settlement keeps the 30 days, so 18 are held twelve days later; the evidence names the
    settlement (the sending that replaced the prescription)."""
    p = Patient(engine)
    p.send(rx("P-rp-keep", "keep-2", 0, enc="visit"))
    p.send(rx("P-rp-keep", "keep-6", 0, enc="visit", scene=6))
    assert rows(p) == [("atorvastatin", "keep-6", 30, 30)]
    alert = p.fired(rx("P-rp-keep", "keep-next", 12, inst="H2"), "R19")
    assert alert is not None and "尚余18天" in alert["message_zh"] and event_ids(alert) == ["keep-6"]


def test_a_prescription_arriving_after_its_settlement_does_not_re_add(engine: Engine) -> None:
    """The settlement (14 days) reaches the service before the prescription (30) it settled."""
    p = Patient(engine)
    p.send(rx("P-rp-late", "late-6", 0, enc="visit", scene=6, items=[ator(14)]))
    p.send(rx("P-rp-late", "late-2", 0, enc="visit", items=[ator(30)]))
    assert rows(p) == [("atorvastatin", "late-6", 14, 14)]
    [row] = p.state["L"]
    assert row[st.L_RANK] == 2
    assert p.fired(rx("P-rp-late", "late-next", 12, inst="H2"), "R19") is None


def test_a_late_prescription_does_not_re_add_a_drug_the_settlement_dropped(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-rp-drop-late", "dl-6", 0, enc="visit", scene=6, items=[ator(14)]))
    p.send(rx("P-rp-drop-late", "dl-2", 0, enc="visit", items=[ator(30), drug(AMLO, 30, 30, line_id="2")]))
    assert rows(p) == [("atorvastatin", "dl-6", 14, 14)]


def test_a_pre_settlement_after_the_settlement_changes_nothing(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-rp-7", "s7-6", 0, enc="visit", scene=6, items=[ator(14)]))
    p.send(rx("P-rp-7", "s7-7", 0, enc="visit", scene=7, items=[ator(30)]))
    assert rows(p) == [("atorvastatin", "s7-6", 14, 14)]


def test_a_settlement_drops_a_drug_the_doctor_removed(engine: Engine) -> None:
    """Prescribed atorvastatin and amlodipine; the settlement lists atorvastatin alone: amlodipine is not held."""
    p = Patient(engine)
    p.send(rx("P-rp-drop", "drop-2", 0, enc="visit", items=[ator(30), drug(AMLO, 30, 30, line_id="2")]))
    assert [r[0] for r in rows(p)] == ["amlodipine", "atorvastatin"]
    p.send(rx("P-rp-drop", "drop-7", 0, enc="visit", scene=7, items=[ator(30)]))
    assert rows(p) == [("atorvastatin", "drop-7", 30, 30)]
    amlo = p.fired(rx("P-rp-drop", "drop-next", 5, inst="H2", items=[drug(AMLO, 30, 30)]), "R19")
    assert amlo is None


def test_a_settlement_without_drugs_drops_the_orders_supplies(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-rp-none", "none-2", 0, enc="visit"))
    p.send(rx("P-rp-none", "none-6", 0, enc="visit", scene=6, items=[line("1", "001102000010000", "service", 1, 10.0)]))
    assert "L" not in p.state


def test_a_second_settlement_of_the_encounter_keeps_the_first_ones_drugs(engine: Engine) -> None:
    """分次结算: one visit settled in two parts; the second does not list the first's drug, which stays."""
    p = Patient(engine)
    p.send(rx("P-rp-parts", "parts-6a", 0, enc="visit", scene=6, items=[ator(30)]))
    p.send(rx("P-rp-parts", "parts-6b", 0, enc="visit", scene=6, items=[drug(AMLO, 30, 30)]))
    assert rows(p) == [("amlodipine", "parts-6b", 30, 30), ("atorvastatin", "parts-6a", 30, 30)]


def test_a_re_sent_prescription_replaces_but_a_prescription_does_not_drop(engine: Engine) -> None:
    """Scene 2 twice: the second replaces the first's atorvastatin; amlodipine, which it does not list,
    stays (an encounter may have several prescriptions; only a settlement lists everything)."""
    p = Patient(engine)
    p.send(rx("P-rp-rx", "rx-a", 0, enc="visit", items=[ator(30), drug(AMLO, 30, 30, line_id="2")]))
    p.send(rx("P-rp-rx", "rx-b", 0, enc="visit", items=[ator(10)]))
    assert rows(p) == [("amlodipine", "rx-a", 30, 30), ("atorvastatin", "rx-b", 10, 10)]


def test_split_lines_of_the_settlement_add_up_and_other_encounters_stay(engine: Engine) -> None:
    """分解处方 at the settlement: 2 × 15 days replace the prescription's 20; the supply of another visit of
    the same ingredient is untouched."""
    p = Patient(engine)
    p.send(rx("P-rp-split", "split-other", 0, inst="H2"))
    p.send(rx("P-rp-split", "split-2", 3, enc="visit", items=[ator(20)]))
    p.send(rx("P-rp-split", "split-6", 3, enc="visit", scene=6, items=[ator(15), ator(15, "2")]))
    assert rows(p) == [("atorvastatin", "split-6", 30, 30), ("atorvastatin", "split-other", 30, 30)]


def test_a_refund_after_the_settlement_still_takes_the_encounter(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-rp-refund", "rf-2", 0, enc="visit"))
    settled = rx("P-rp-refund", "rf-6", 0, enc="visit", scene=6, items=[ator(14)])
    p.send(settled)
    p.send(cancellation(settled, "rf-cx", 0, cancels="rf-6"))
    assert "L" not in p.state


def test_discharge_medication_changed_at_settlement(engine: Engine) -> None:
    """出院带药 ordered for 30 days at scene 4, settled with 14 at discharge (scene 8): 14 go home."""
    p = Patient(engine)
    stay = {"etype": "inpatient", "enc": "stay", "admitted_at": on(0), "med_type": "21"}
    p.send(rx("P-rp-dis", "dis-adm", 0, scene=3, items=[], **stay))
    home = {**ator(30), "take_home": True, "started_at": on(6)}
    p.send(rx("P-rp-dis", "dis-4", 6, scene=4, items=[home], discharged_at=on(6, 10), **stay))
    home = {**ator(14), "take_home": True, "started_at": on(6)}
    p.send(rx("P-rp-dis", "dis-8", 6, scene=8, items=[home], discharged_at=on(6, 10), **stay))
    assert rows(p) == [("atorvastatin", "dis-8", 14, 14)]


def test_a_row_with_an_older_releases_parts_is_replaced_and_they_go() -> None:
    """A row written by the release that kept the union and each event's part (L_PARTS): the settlement
    replaces it, the parts go, the stage is kept."""
    from services.rules.context import Ctx
    from services.rules.engine import Engine as E

    engine = E.load()
    ench_of = rx("P-rp-old", "old-6", 0, enc="visit", scene=6, items=[ator(14)])
    cx = Ctx(engine.kb, {}, ench_of)
    row = ["atorvastatin", ATOR, cx.day, 30, 30.0, "H1", "old-2", cx.ench, st.month_of_day(cx.day), [cx.ench], [],
           ["old-2", ["old-2b", cx.day, 10, 10.0, ATOR]]]
    state: dict[str, Any] = {"d": cx.day, "L": [row]}
    state = st.apply_event(state, cx, engine.windows)
    [got] = state["L"]
    assert got[st.L_EVENT] == "old-6" and got[st.L_DAYS] == 14 and got[st.L_PARTS:] == [[], 2, 44.8]
