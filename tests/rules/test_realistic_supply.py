"""Realistic supply-ledger situations (issue 10), written apart from the golden cases.

Each test models one situation an audit team meets: a stockpile built from early refills (囤药),
discharge medication (出院带药), one drug split over several lines of one prescription (分解处方),
a purchase reported late, a prescription sent again at a later scene. Events go through the
native model (``Event``) and the state through its codec between events, as in the worker.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.contracts.event import Event
from services.rules import state as st
from services.rules.engine import Engine
from tests.factories import drug, dx, event

ATOR = "XC10AAA067A001010104321"  # atorvastatin 20 mg, 30 tablets = 30 days
HYPERLIPIDAEMIA = [dx("E78.500", name="高脂血症")]
DAY0 = date(2026, 3, 2)


def on(day: int, hour: int = 9) -> str:
    return f"{(DAY0 + timedelta(days=day)).isoformat()}T{hour:02d}:00:00+08:00"


def rx(patient: str, eid: str, day: int, *, inst: str = "H1", scene: int = 2, enc: str | None = None,
       items: list[dict[str, Any]] | None = None, etype: str = "outpatient", **encounter: Any) -> dict[str, Any]:
    body = event(patient=patient, event_id=eid, institution=inst, scene=scene, occurred_at=on(day),
                 encounter_type=etype, encounter_id=enc or f"{eid}-enc", diagnoses=HYPERLIPIDAEMIA,
                 items=items if items is not None else [drug(ATOR, 30, 30, unit_price=3.2)], **encounter)
    return Event.model_validate(body).to_wire()


class Patient:
    """One patient's state, carried through the codec between events as the worker does."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.blob: bytes | None = None

    def send(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        state, alerts = self.engine.process(st.loads(self.blob), ev)
        self.blob = st.dumps(state)
        return alerts

    def fired(self, ev: dict[str, Any], rule: str) -> dict[str, Any] | None:
        hits = [a for a in self.send(ev) if a["rule_id"] == rule]
        assert len(hits) <= 1
        return hits[0] if hits else None

    @property
    def state(self) -> dict[str, Any]:
        return st.loads(self.blob)


def event_ids(alert: dict[str, Any]) -> list[str]:
    return [e["event_id"] for e in alert["evidence"] if e["kind"] == "event"]


def test_early_refills_add_up_to_a_stockpile(engine: Engine) -> None:
    """30 days every 21 days: each refill alone leaves 9 days (under a third), but the stock grows."""
    p = Patient(engine)
    assert p.fired(rx("P-stock", "stock-1", 0), "R19") is None
    assert p.fired(rx("P-stock", "stock-2", 21), "R19") is None  # 9 days left: not yet
    alert = p.fired(rx("P-stock", "stock-3", 42, inst="H2"), "R19")  # 9 + 30 − 21 = 18 days held
    assert alert is not None
    assert "此前2次供药合计尚余18天" in alert["message_zh"]
    assert "18 days of the 2 earlier supplies remain" in alert["message_en"]
    assert event_ids(alert) == ["stock-1", "stock-2"]


def test_refills_a_little_early_stay_below_the_threshold(engine: Engine) -> None:
    """Near miss: refilled two days early three times, 6 days held, under a third of 30."""
    p = Patient(engine)
    for n, day in enumerate((0, 28, 56, 84)):
        assert p.fired(rx("P-ontime", f"ontime-{n}", day), "R19") is None


def test_discharge_medication_counts_as_a_supply(engine: Engine) -> None:
    """出院带药: 14 days of atorvastatin taken home; the family doctor prescribes 30 more 5 days later."""
    p = Patient(engine)
    adm = rx("P-dis", "dis-adm", 0, scene=3, etype="inpatient", enc="stay-1", items=[],
             admitted_at=on(0), med_type="21")
    p.send(adm)
    take_home = {**drug(ATOR, 14, 14, line_id="9", unit_price=3.2), "take_home": True, "started_at": on(6)}
    settle = rx("P-dis", "dis-settle", 6, scene=8, etype="inpatient", enc="stay-1", items=[take_home],
                admitted_at=on(0), discharged_at=on(6, 10), med_type="21")
    p.send(settle)
    alert = p.fired(rx("P-dis", "dis-gp", 11, inst="H2"), "R19")
    assert alert is not None and "尚余9天" in alert["message_zh"]
    assert event_ids(alert) == ["dis-settle"]


def test_ward_doses_used_during_the_stay_are_not_a_supply(engine: Engine) -> None:
    """Near miss: atorvastatin given on the ward every day of a stay; the outpatient refill after discharge is fine."""
    p = Patient(engine)
    p.send(rx("P-ward", "ward-adm", 0, scene=3, etype="inpatient", enc="stay-w", items=[], admitted_at=on(0), med_type="21"))
    ward = [{**drug(ATOR, 1, 1, line_id=str(n), unit_price=3.2), "started_at": on(n)} for n in range(5)]
    p.send(rx("P-ward", "ward-settle", 5, scene=8, etype="inpatient", enc="stay-w", items=ward,
              admitted_at=on(0), discharged_at=on(5, 10), med_type="21"))
    assert "L" not in p.state
    assert p.fired(rx("P-ward", "ward-gp", 6), "R19") is None


def test_a_ward_supply_running_past_discharge_goes_home(engine: Engine) -> None:
    """A 30-day order started two days before discharge, not flagged as take-home: 28 days go home."""
    p = Patient(engine)
    p.send(rx("P-run", "run-adm", 0, scene=3, etype="inpatient", enc="stay-r", items=[], admitted_at=on(0), med_type="21"))
    line = {**drug(ATOR, 30, 30, line_id="1", unit_price=3.2), "started_at": on(3)}
    p.send(rx("P-run", "run-settle", 5, scene=8, etype="inpatient", enc="stay-r", items=[line],
              admitted_at=on(0), discharged_at=on(5, 10), med_type="21"))
    alert = p.fired(rx("P-run", "run-gp", 8), "R19")
    assert alert is not None and "尚余25天" in alert["message_zh"]


def test_one_drug_split_over_two_lines_is_one_supply(engine: Engine) -> None:
    """分解处方: 2 × 15 days on one prescription is a 30-day supply; a refill 10 days later leaves 20 days."""
    p = Patient(engine)
    split = [drug(ATOR, 15, 15, line_id="1", unit_price=3.2), drug(ATOR, 15, 15, line_id="2", unit_price=3.2)]
    p.send(rx("P-split", "split-1", 0, items=split))
    [row] = p.state["L"]
    assert row[st.L_DAYS] == 30 and row[st.L_QTY] == 30
    alert = p.fired(rx("P-split", "split-2", 10, inst="H2"), "R19")
    assert alert is not None and "尚余20天" in alert["message_zh"]


def test_a_split_refill_is_judged_once_on_all_its_lines(engine: Engine) -> None:
    p = Patient(engine)
    p.send(rx("P-split2", "split2-1", 0))
    split = [drug(ATOR, 10, 10, line_id="1", unit_price=3.2), drug(ATOR, 20, 20, line_id="2", unit_price=3.2)]
    alert = p.fired(rx("P-split2", "split2-2", 12, items=split), "R19")
    assert alert is not None and alert["line_ids"] == ["1", "2"] and alert["amount"] == 96.0


def test_a_purchase_reported_late_counts_in_its_own_window(engine: Engine) -> None:
    """A pharmacy purchase of day 5 reaches the bureau after the clinic's prescription of day 20."""
    p = Patient(engine)
    p.send(rx("P-late", "late-clinic", 20))
    late = rx("P-late", "late-pharmacy", 5, inst="PH1", scene=10, etype="pharmacy")
    p.send(late)  # arrives now, dated day 5
    # day 42: the clinic's supply alone leaves 8 days; with the pharmacy's, 15 + 30 − 22 = 23
    alert = p.fired(rx("P-late", "late-next", 42), "R19")
    assert alert is not None and "尚余23天" in alert["message_zh"]
    assert event_ids(alert) == ["late-pharmacy", "late-clinic"]


def test_a_late_purchase_counts_in_the_month_it_was_made(engine: Engine) -> None:
    """R25 (more than 4 purchases a month): the fifth purchase of March arrives in April."""
    p = Patient(engine)
    for n in range(4):
        p.send(rx("P-month", f"month-{n}", n, inst="PH1", scene=10, etype="pharmacy",
                  items=[drug(ATOR, 7, 7, unit_price=3.2)]))
    p.send(rx("P-month", "april", 31, inst="PH1", scene=10, etype="pharmacy", items=[drug(ATOR, 7, 7, unit_price=3.2)]))
    late = rx("P-month", "march-late", 4, inst="PH2", scene=10, etype="pharmacy", items=[drug(ATOR, 7, 7, unit_price=3.2)])
    alert = p.fired(late, "R25")
    assert alert is not None and "2026-03月已第5次" in alert["message_zh"]
    assert event_ids(alert)[:4] == ["month-0", "month-1", "month-2", "month-3"]


def test_the_same_prescription_sent_again_is_not_a_second_supply(engine: Engine) -> None:
    """Scene 2 (prescribing) then 7 (settlement) of one encounter; then a refill on day 18 is fine (12 left > 10
    would fire, but the settlement did not double the supply: 30 − 18 = 12 fires, 30 − 21 = 9 does not)."""
    p = Patient(engine)
    p.send(rx("P-resend", "resend-2", 0, enc="visit"))
    assert p.fired(rx("P-resend", "resend-7", 0, enc="visit", scene=7), "R19") is None
    assert len(p.state["L"]) == 1
    assert p.fired(rx("P-resend", "resend-next", 21), "R19") is None
