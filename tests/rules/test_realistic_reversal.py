"""Cancellations and refunds reverse every accumulator (issue 10): the per-stay counters, day masks,
amounts and first-line classes (``E``) and the courses (``C``), not only the ledger and the counters.

Each situation is run twice: with the cancellation (the rule no longer fires, or fires now) and
without it (the control, so the assertion can fail). Events go through the worker's own per-event
logic and the state through its codec, as in the worker.
"""

from __future__ import annotations

import copy
import random
from datetime import date, timedelta
from typing import Any

from services.contracts.event import Event
from services.rules import decision as dec
from services.rules import state as st
from services.rules.engine import Engine
from services.rules.timeutil import day_of_date
from tests.factories import dx, event

DAY0 = date(2026, 3, 2)
BED = "001109000010000"        # 床位费(普通病房三人间): bed
NURSING = "001201000040000"    # Ⅲ级护理: nursing, one a day
CONSULT = "001102000050000"    # 住院诊查费: consultation, one a day (R15)
ECG = "003107010080000"        # 心电监测: a treatment
INFUSION_1 = "001214000010000"  # 静脉输液(第一组): its content includes the next one (R13)
INFUSION_N = "001213000010000"
HEAD_CT = "002103000010000"    # imaging
CEFTRIAXONE = "XJ01DDF049C001010101691"  # J01DD: a first-line class of meropenem
MEROPENEM = "XJ01DHT051C001010101728"    # second line (R12)
EDARAVONE = "XN07XXD097C001010102912"    # course limited to 14 days (R17)


def on(day: int, hour: int = 9) -> str:
    return f"{(DAY0 + timedelta(days=day)).isoformat()}T{hour:02d}:00:00+08:00"


def svc(line: str, code: str, day: int, qty: float = 1, price: float = 10.0) -> dict[str, Any]:
    return {"line_id": line, "code": code, "kind": "service", "quantity": qty, "unit_price": price,
            "amount": round(qty * price, 2), "started_at": on(day, 0)}


def med(line: str, code: str, day: int, qty: float = 1, days: int = 1, price: float = 50.0) -> dict[str, Any]:
    return {"line_id": line, "code": code, "kind": "drug", "quantity": qty, "unit_price": price,
            "amount": round(qty * price, 2), "days_supply": days, "started_at": on(day, 0)}


def ward_day(day: int) -> list[dict[str, Any]]:
    """A day with bed, nursing and consultation charges only (挂床 if nothing else happens)."""
    return [svc("b", BED, day, price=50.0), svc("n", NURSING, day), svc("c", CONSULT, day)]


class Stay:
    """One inpatient stay at H1 admitted on day 0, its state carried through the codec."""

    def __init__(self, engine: Engine, patient: str) -> None:
        self.engine, self.patient = engine, patient
        self.blob: bytes | None = None
        self.send(self.order(f"{patient}-adm", 3, 0, []))

    def order(self, eid: str, scene: int, day: int, items: list[dict[str, Any]], *,
              dis: int | None = None) -> dict[str, Any]:
        enc: dict[str, Any] = {"med_type": "21", "admitted_at": on(0, 8)}
        if dis is not None:
            enc["discharged_at"] = on(dis, 10)
        body = event(patient=self.patient, event_id=eid, institution="H1", scene=scene, occurred_at=on(day, 18),
                     encounter_type="inpatient", encounter_id=f"{self.patient}-stay",
                     diagnoses=[dx("I63.900", name="脑梗死")], items=items, **enc)
        return Event.model_validate(body).to_wire()

    def cancel(self, eid: str, day: int, *, cancels: str | None = None,
               items: list[dict[str, Any]] | None = None) -> None:
        body = self.order(eid, 5, day, [])
        body.update(event_type="cancellation", cancels=cancels, items=items or [], diagnoses=[])
        assert self.send(Event.model_validate(body).to_wire()) == []  # not judged

    def send(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        new, outcome = dec.handle_event(self.engine, self.blob, ev)
        self.blob = new if new is not None else self.blob
        return list(outcome["alerts"])

    def fired(self, ev: dict[str, Any], rule: str) -> dict[str, Any] | None:
        hits = [a for a in self.send(ev) if a["rule_id"] == rule]
        return hits[0] if hits else None

    @property
    def state(self) -> dict[str, Any]:
        return st.loads(self.blob)

    def work(self) -> list[Any]:
        [w] = self.state["E"]
        return w


# -- R15 frequency / R13 duplicate charge: the stay's counters per code -------------------------------
def _consult_twice(engine: Engine, patient: str, refund: bool) -> dict[str, Any] | None:
    s = Stay(engine, patient)
    s.send(s.order(f"{patient}-1", 5, 2, [svc("1", CONSULT, 2)]))
    if refund:
        s.cancel(f"{patient}-1-cx", 2, cancels=f"{patient}-1")
    return s.fired(s.order(f"{patient}-2", 5, 2, [svc("1", CONSULT, 2)]), "R15")


def test_a_refunded_consultation_no_longer_makes_the_next_one_a_second_on_the_day(engine: Engine) -> None:
    assert _consult_twice(engine, "P-rv-freq", refund=True) is None


def test_without_the_refund_the_second_consultation_of_the_day_fires(engine: Engine) -> None:
    hit = _consult_twice(engine, "P-rv-freq0", refund=False)
    assert hit is not None
    # 可追溯: the earlier charge is named by its event (from the open-stay log), with its quantity and amount
    earlier = [e for e in hit["evidence"] if e["kind"] == "event" and e["event_id"] != "P-rv-freq0-2"]
    assert [(e["event_id"], e["quantity"], e["amount"]) for e in earlier] == [("P-rv-freq0-1", 1.0, 10.0)]


def _infusion(engine: Engine, patient: str, refund: bool) -> dict[str, Any] | None:
    s = Stay(engine, patient)
    s.send(s.order(f"{patient}-1", 5, 3, [svc("1", INFUSION_N, 3), svc("2", ECG, 3)]))
    if refund:  # a partial refund naming only the infusion line, not the event
        s.cancel(f"{patient}-1-cx", 3, items=[svc("1", INFUSION_N, 3)])
        assert {c[st.K_CODE] for c in s.work()[st.E_COUNTERS]} == {ECG}  # the ECG stays
    return s.fired(s.order(f"{patient}-2", 5, 3, [svc("1", INFUSION_1, 3)]), "R13")


def test_a_refunded_infusion_is_no_longer_charged_twice_by_the_first_group(engine: Engine) -> None:
    assert _infusion(engine, "P-rv-dup", refund=True) is None


def test_without_the_refund_the_first_group_duplicates_the_infusion(engine: Engine) -> None:
    hit = _infusion(engine, "P-rv-dup0", refund=False)
    assert hit is not None and hit["line_ids"] == ["1"]
    assert [e["event_id"] for e in hit["evidence"] if e["kind"] == "event"] == ["P-rv-dup0-2", "P-rv-dup0-1"]


# -- R27 idle stay: the charged and active day masks --------------------------------------------------
def _idle(engine: Engine, patient: str, refund: bool) -> dict[str, Any] | None:
    s = Stay(engine, patient)
    s.send(s.order(f"{patient}-d0", 5, 0, ward_day(0)))
    s.send(s.order(f"{patient}-ecg", 5, 1, [*ward_day(1), svc("e", ECG, 1, qty=4)]))
    s.send(s.order(f"{patient}-d2", 5, 2, ward_day(2)))
    if refund:  # the ECG monitoring of day 1 was refunded: day 1 had only ward charges
        s.cancel(f"{patient}-ecg-cx", 2, cancels=f"{patient}-ecg", items=[svc("e", ECG, 1, qty=4)])
    return s.fired(s.order(f"{patient}-d3", 5, 3, ward_day(3)), "R27")


def test_a_refunded_treatment_leaves_its_day_idle(engine: Engine) -> None:
    hit = _idle(engine, "P-rv-idle", refund=True)
    assert hit is not None and "2026-03-02" in hit["message_en"] and "2026-03-05" in hit["message_en"]


def test_without_the_refund_the_treated_day_breaks_the_idle_run(engine: Engine) -> None:
    assert _idle(engine, "P-rv-idle0", refund=False) is None


def test_a_cancelled_day_of_charges_is_no_longer_a_charged_day(engine: Engine) -> None:
    """Day 1's whole order is cancelled: day 1 is no longer charged, so the run breaks there."""
    s = Stay(engine, "P-rv-day")
    for d in range(3):
        s.send(s.order(f"P-rv-day-{d}", 5, d, ward_day(d)))
    assert s.work()[st.E_CHARGED] == 0b111
    s.cancel("P-rv-day-1-cx", 2, cancels="P-rv-day-1")
    assert s.work()[st.E_CHARGED] == 0b101 and s.work()[st.E_AMOUNT] == 140.0
    assert s.fired(s.order("P-rv-day-3", 5, 3, ward_day(3)), "R27") is None


# -- R30 low acuity: the stay's amount and examination amount ---------------------------------------
def _low_acuity(engine: Engine, patient: str, refund: bool) -> dict[str, Any] | None:
    s = Stay(engine, patient)
    s.send(s.order(f"{patient}-ct", 5, 0, [svc("1", HEAD_CT, 0, price=300.0)]))
    s.send(s.order(f"{patient}-rx", 5, 1, [svc("1", ECG, 1, qty=4, price=25.0), *ward_day(1)]))
    if refund:  # the treatment was refunded: what is left is mostly the CT
        s.cancel(f"{patient}-rx-cx", 1, cancels=f"{patient}-rx", items=[svc("1", ECG, 1)])
    work = s.work()
    assert work[st.E_EXAM] == 300.0
    return s.fired(s.order(f"{patient}-settle", 8, 2, [], dis=2), "R30")  # settled without lines: the stay's sums


def test_a_refunded_treatment_leaves_a_stay_of_examinations(engine: Engine) -> None:
    hit = _low_acuity(engine, "P-rv-low", refund=True)
    assert hit is not None and "81%" in hit["message_en"]  # 300 of 370 after the refund (300 of 470 before)


def test_without_the_refund_the_examinations_are_not_most_of_the_stay(engine: Engine) -> None:
    assert _low_acuity(engine, "P-rv-low0", refund=False) is None


# -- R12 second line: the first-line classes the stay used ------------------------------------------
def _second_line(engine: Engine, patient: str, refund: bool) -> dict[str, Any] | None:
    s = Stay(engine, patient)
    s.send(s.order(f"{patient}-1", 5, 0, [med("1", CEFTRIAXONE, 0)]))
    assert s.work()[st.E_CLASSES] == ["J01DD"]
    if refund:  # 返回修改 as an accepted feedback sends it: the event and the withdrawn line's code
        s.cancel(f"{patient}-1-wd", 1, cancels=f"{patient}-1", items=[med("1", CEFTRIAXONE, 0)])
        assert s.work()[st.E_CLASSES] == []
    return s.fired(s.order(f"{patient}-2", 5, 2, [med("1", MEROPENEM, 2)]), "R12")


def test_a_withdrawn_first_line_drug_no_longer_counts_as_tried(engine: Engine) -> None:
    assert _second_line(engine, "P-rv-2l", refund=True) is not None


def test_without_the_withdrawal_the_first_line_drug_counts(engine: Engine) -> None:
    assert _second_line(engine, "P-rv-2l0", refund=False) is None


# -- R17 course: the course rows -------------------------------------------------------------------
def _course(engine: Engine, patient: str, refund: bool) -> dict[str, Any] | None:
    s = Stay(engine, patient)
    s.send(s.order(f"{patient}-1", 5, 0, [med("1", EDARAVONE, 0, qty=10, days=10)]))
    s.send(s.order(f"{patient}-2", 5, 6, [med("1", EDARAVONE, 6, qty=4, days=4)]))
    if refund:  # the first ten days were never given (cancelled order)
        s.cancel(f"{patient}-1-cx", 6, cancels=f"{patient}-1")
        [row] = s.state["C"]
        assert (row[st.C_FIRST], row[st.C_LAST]) == (s.state["d"], s.state["d"] + 3)
    return s.fired(s.order(f"{patient}-3", 5, 10, [med("1", EDARAVONE, 10, qty=6, days=6)]), "R17")


def test_a_cancelled_first_part_of_a_course_no_longer_counts(engine: Engine) -> None:
    assert _course(engine, "P-rv-course", refund=True) is None


def test_without_the_cancellation_the_course_is_too_long(engine: Engine) -> None:
    hit = _course(engine, "P-rv-course0", refund=False)
    assert hit is not None and "2026-03-02" in hit["message_en"]


def test_cancelling_the_only_event_of_a_course_removes_it(engine: Engine) -> None:
    s = Stay(engine, "P-rv-c1")
    s.send(s.order("P-rv-c1-1", 5, 0, [med("1", EDARAVONE, 0, qty=5, days=5)]))
    s.cancel("P-rv-c1-1-cx", 0, cancels="P-rv-c1-1")
    assert "C" not in s.state


# -- state formats: rows written before the log, logs past their cap ---------------------------------
def test_rows_written_before_the_log_keep_what_they_hold_and_reverse_what_comes_after(engine: Engine) -> None:
    """A stay and a course from the release before (rows without log): the cancellation of a later event
    takes out only that event; the earlier charges, unknown per event, stay."""
    s = Stay(engine, "P-rv-old")
    s.send(s.order("P-rv-old-1", 5, 0, [*ward_day(0), med("e", EDARAVONE, 0, qty=3, days=3)]))
    state = s.state
    state["E"] = [w[:st.E_LOG] for w in state["E"]]  # as the release before wrote them
    state["C"] = [r[:st.C_LOG] for r in state["C"]]
    before = copy.deepcopy(state["E"][0])
    s.blob = st.dumps(state)
    s.cancel("P-rv-old-1-cx", 0, cancels="P-rv-old-1")  # not reversible: left as it was
    assert s.state["E"][0] == before and len(s.state["C"][0]) == st.C_LOG
    s.send(s.order("P-rv-old-2", 5, 1, [*ward_day(1), med("e", EDARAVONE, 1, qty=3, days=3)]))
    w = s.work()
    # day 0 from the row before, days 1-3 from the edaravone given for 3 days (treatment each day it runs)
    assert w[st.E_BASE][st.E_AMOUNT] == before[st.E_AMOUNT] and w[st.E_CHARGED] == 0b1111
    s.cancel("P-rv-old-2-cx", 1, cancels="P-rv-old-2")
    w = s.work()
    assert w[:st.E_LOG] == before and w[st.E_LOG] == []
    [row] = s.state["C"]
    assert (row[st.C_FIRST], row[st.C_LAST]) == (before_day := s.state["d"] - 1, before_day + 2)


def test_a_row_an_older_release_added_to_without_logging_is_left_alone(engine: Engine) -> None:
    s = Stay(engine, "P-rv-mixed")
    s.send(s.order("P-rv-mixed-1", 5, 0, ward_day(0)))
    state = s.state
    state["E"][0][st.E_AMOUNT] += 99.0  # what an older worker's unlogged line would leave
    s.blob = st.dumps(state)
    before = copy.deepcopy(s.work())
    s.cancel("P-rv-mixed-1-cx", 0, cancels="P-rv-mixed-1")
    assert s.work() == before


def test_a_long_stay_folds_its_oldest_events_and_still_adds_up(engine: Engine) -> None:
    """Random orders over a long stay: the log stays within its cap, base + log always give the
    accumulators, and cancelling a logged event equals never having sent it."""
    rnd = random.Random(5)
    codes = [BED, NURSING, CONSULT, ECG, INFUSION_N, INFUSION_1, HEAD_CT]
    s, twin = Stay(engine, "P-rv-long"), Stay(engine, "P-rv-long")
    dropped = "P-rv-long-25"
    for n in range(30):
        day = n // 2
        items = [svc(str(i), rnd.choice(codes), day, qty=rnd.choice([1, 2]), price=rnd.choice([5.0, 12.5]))
                 for i in range(rnd.randint(1, 5))]
        if rnd.random() < 0.3:
            items.append(med("m", CEFTRIAXONE, day))
        ev = s.order(f"P-rv-long-{n}", rnd.choice([4, 5]), day, items)
        s.send(copy.deepcopy(ev))
        if ev["event_id"] != dropped:
            twin.send(ev)
        w = s.work()
        assert sum(len(e) - 1 for e in w[st.E_LOG]) <= st.E_LOG_LINES
        assert st.refold_stay(w, day_of_date(DAY0.isoformat()))[:st.E_LOG] == w[:st.E_LOG]
    assert len(s.work()) > st.E_BASE  # the cap was reached: a base holds the oldest events
    assert _sums(s.work()) != _sums(twin.work())  # the dropped event counts until it is cancelled
    s.cancel("P-rv-long-cx", 15, cancels=dropped)
    assert _sums(s.work()) == _sums(twin.work())


def _sums(w: list[Any]) -> tuple[Any, ...]:
    return (sorted(w[st.E_COUNTERS]), w[st.E_CHARGED], w[st.E_ACTIVE], w[st.E_AMOUNT], w[st.E_EXAM], sorted(w[st.E_CLASSES]))


def test_a_second_bed_fee_of_the_day_names_the_earlier_one_and_not_once_refunded(engine: Engine) -> None:
    """R40 at scene 5: the ward bed posted in the morning, the ICU bed in the evening of the same day."""
    icu = "001109000050000"
    s = Stay(engine, "P-rv-bed")
    s.send(s.order("P-rv-bed-ward", 5, 2, [svc("1", BED, 2, price=50.0)]))
    hit = s.fired(s.order("P-rv-bed-icu", 5, 2, [svc("1", icu, 2, price=200.0)]), "R40")
    assert hit is not None
    assert [(e["event_id"], e["item_code"]) for e in hit["evidence"] if e["kind"] == "event"] == [
        ("P-rv-bed-icu", icu), ("P-rv-bed-ward", BED)]
    s.cancel("P-rv-bed-ward-cx", 2, cancels="P-rv-bed-ward")
    assert s.fired(s.order("P-rv-bed-icu2", 5, 2, [svc("1", icu, 2, price=200.0)]), "R40") is None  # the ward bed no longer counts
