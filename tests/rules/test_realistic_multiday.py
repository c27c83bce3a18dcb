"""A posting inside an earlier multi-day order of the same stay (issue 10, R13/R15/R40 at scene 5).

A ward orders per-day items ahead at scene 4 (special care for three days, the ward bed for three
nights) as one line with a quantity in days; the daily postings (执行医嘱, scene 5) then land on days
that line covers, not on its last day. Each situation has its control (a posting the day after the
order ends), so every assertion can fail.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.rules import state as st
from services.rules.engine import Engine
from services.rules.timeutil import day_of_date
from tests.rules.audit_kit import Story, line, stay

HTN = [("I10.x00", "高血压")]
SPECIAL = "001201000010000"  # 特级护理: its content includes level I/II nursing
NURSING_1 = "001201000020000"  # Ⅰ级护理: one a day
NURSING_2 = "001201000030000"  # Ⅱ级护理
WARD_BED = "001109000010000"  # 床位费(普通病房三人间)
ICU_BED = "001109000050000"  # 重症监护病房床位费


def _stay(pid: str, eid: str, scene: int, when: str, items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return stay(pid, eid, scene, when, items, adm="2026-03-01", dx=HTN)


def _per_day(code: str, days: int, price: float, start: str) -> dict[str, Any]:
    return line("1", code, "service", days, price, start=start, unit="日")


def _ordered(pid: str, code: str, days: int, price: float, start: str) -> Story:
    """Admitted 03-01; ``code`` ordered at scene 4 as one line of ``days`` days from ``start``."""
    s = Story(Engine.load())
    s.send(_stay(pid, f"{pid}-adm", 3, "2026-03-01"))
    s.send(_stay(pid, f"{pid}-order", 4, start, [_per_day(code, days, price, start)]))
    return s


def _post(s: Story, pid: str, eid: str, code: str, day: str, price: float, rule: str) -> dict[str, Any] | None:
    return s.one(_stay(pid, eid, 5, day, [_per_day(code, 1, price, day)]), rule)


def test_r13_included_item_posted_inside_an_earlier_multi_day_order() -> None:
    s = _ordered("P-md-13", SPECIAL, 3, 60.0, "2026-03-02")  # 03-02..03-04
    hit = _post(s, "P-md-13", "P-md-13-p", NURSING_2, "2026-03-03", 20.0, "R13")
    assert hit is not None and "2026-03-03" in hit["message_zh"] and hit["amount"] == 20.0
    earlier = [e for e in hit["evidence"] if e["kind"] == "event" and e["event_id"] != "P-md-13-p"]
    assert [(e["event_id"], e["date"], e["quantity"], e["amount"]) for e in earlier] == [
        ("P-md-13-order", "2026-03-03", 1.0, 60.0)]  # the day's share of the 3-day line (180)
    assert _post(s, "P-md-13", "P-md-13-after", NURSING_2, "2026-03-05", 20.0, "R13") is None  # control


def test_r15_second_unit_on_a_day_an_earlier_multi_day_order_covers() -> None:
    s = _ordered("P-md-15", NURSING_1, 3, 30.0, "2026-03-02")
    hit = _post(s, "P-md-15", "P-md-15-p", NURSING_1, "2026-03-03", 30.0, "R15")
    assert hit is not None and "2026-03-03当日计2次" in hit["message_zh"] and hit["amount"] == 30.0
    assert "P-md-15-order" in [e["event_id"] for e in hit["evidence"] if e["kind"] == "event"]
    assert _post(s, "P-md-15", "P-md-15-after", NURSING_1, "2026-03-05", 30.0, "R15") is None  # control


def test_r40_icu_bed_on_a_day_the_ward_bed_order_covers_is_a_same_day_bed_fee() -> None:
    s = _ordered("P-md-40", WARD_BED, 3, 50.0, "2026-03-01")  # 03-01..03-03
    hits = s.hits(_stay("P-md-40", "P-md-40-p", 5, "2026-03-02", [_per_day(ICU_BED, 1, 150.0, "2026-03-02")]), "R40")
    assert len(hits) == 1, [h["message_zh"] for h in hits]  # not also "bed days beyond the stay"
    [hit] = hits
    assert "2026-03-02同日收取2项床位费" in hit["message_zh"] and hit["amount"] == 50.0  # the cheaper one
    assert [e["event_id"] for e in hit["evidence"] if e["kind"] == "event"] == ["P-md-40-p", "P-md-40-order"]
    assert _post(s, "P-md-40", "P-md-40-after", ICU_BED, "2026-03-04", 150.0, "R40") is None  # control


def test_r40_an_icu_stay_of_two_days_inside_the_ward_bed_order_is_one_alert_for_both_days() -> None:
    s = _ordered("P-md-40b", WARD_BED, 3, 50.0, "2026-03-01")  # 03-01..03-03
    [hit] = s.hits(_stay("P-md-40b", "P-md-40b-p", 5, "2026-03-02", [_per_day(ICU_BED, 2, 150.0, "2026-03-02")]), "R40")
    assert "2026-03-02同日收取2项床位费" in hit["message_zh"] and "2026-03-02至2026-03-03共2日" in hit["message_zh"]
    assert hit["amount"] == 100.0  # the ward bed of each of the two days


def test_a_cancelled_multi_day_order_no_longer_covers_its_days() -> None:
    cancelled = _ordered("P-md-cx", NURSING_1, 3, 30.0, "2026-03-02")
    body = _stay("P-md-cx", "P-md-cx-cancel", 5, "2026-03-02")
    body.update(event_type="cancellation", cancels="P-md-cx-order", diagnoses=[])
    assert cancelled.send(body) == []
    assert [w[st.E_COUNTERS] for w in cancelled.state["E"]] == [[]]  # the order's counter and its days are gone
    assert _post(cancelled, "P-md-cx", "P-md-cx-p", NURSING_1, "2026-03-03", 30.0, "R15") is None
    kept = _ordered("P-md-cx2", NURSING_1, 3, 30.0, "2026-03-02")  # control: the same without the cancellation
    assert _post(kept, "P-md-cx2", "P-md-cx2-p", NURSING_1, "2026-03-03", 30.0, "R15") is not None


def test_a_multi_day_order_folded_out_of_the_log_still_covers_its_days() -> None:
    """Past E_LOG_LINES logged lines the oldest events fold into the base: the base's counter keeps the mask."""
    s = _ordered("P-md-fold", NURSING_1, 10, 30.0, "2026-03-02")  # 03-02..03-11
    for i in range(st.E_LOG_LINES + 1):  # one-day lines of another code push the order out of the log
        s.send(_stay("P-md-fold", f"P-md-fold-{i}", 5, "2026-03-02", [line("1", WARD_BED, "service", 1, 50.0,
                                                                            start="2026-03-02", unit="日")]))
    [w] = s.state["E"]
    assert all(e[0] != "P-md-fold-order" for e in w[st.E_LOG]) and len(w) > st.E_BASE
    hit = _post(s, "P-md-fold", "P-md-fold-p", NURSING_1, "2026-03-06", 30.0, "R15")
    assert hit is not None and "2026-03-06当日计2次" in hit["message_zh"]
    assert [e["event_id"] for e in hit["evidence"] if e["kind"] == "event"] == ["P-md-fold-p", None]  # from the base


def test_a_counter_written_before_the_day_mask_is_read_as_its_last_day() -> None:
    """A release before the mask wrote counters of four fields: this release reads them as their last day
    only (a posting inside the order's earlier days is not compared) and gives them a mask when it next
    counts the code; a cancellation still refolds such a row."""
    s = _ordered("P-md-old", NURSING_1, 3, 30.0, "2026-03-02")  # last day 03-04
    state = s.state
    for w in state["E"]:
        w[st.E_COUNTERS] = [c[:st.K_DAYS] for c in w[st.E_COUNTERS]]
        if len(w) > st.E_BASE and w[st.E_BASE] is not None:
            w[st.E_BASE][st.E_COUNTERS] = [c[:st.K_DAYS] for c in w[st.E_BASE][st.E_COUNTERS]]
    s.blob = orjson.dumps(state)
    assert _post(s, "P-md-old", "P-md-old-last", NURSING_1, "2026-03-04", 30.0, "R15") is not None  # its last day
    [c] = s.state["E"][0][st.E_COUNTERS]
    assert c[st.K_DAYS] == st.span_bits(day_of_date("2026-03-04"), 1, day_of_date("2026-03-01"))  # last day + the posting's (the same)
    body = _stay("P-md-old", "P-md-old-cancel", 5, "2026-03-04")
    body.update(event_type="cancellation", cancels="P-md-old-last", diagnoses=[])
    s.send(body)
    [c] = s.state["E"][0][st.E_COUNTERS]
    assert c[st.K_QTY] == 3 and c[st.K_DAYS] == st.span_bits(day_of_date("2026-03-02"), 3, day_of_date("2026-03-01"))  # refolded


# -- a long-term drug order is treatment every day it runs (R27 挂床) ------------------------------------
CEFTRIAXONE = "XJ01DDF049C001010101691"
NURSING_3 = "001201000040000"  # Ⅲ级护理


def _ward_day(day: str) -> list[dict[str, Any]]:
    return [line("b", WARD_BED, "service", 1, 50.0, start=day, unit="日"),
            line("n", NURSING_3, "service", 1, 10.0, start=day, unit="日")]


def _idle_after_order(pid: str, order_days: int, *, cancel: bool = False, **extra: Any) -> dict[str, Any] | None:
    """Ceftriaxone ordered at scene 4 on 03-01 with ``order_days`` days of supply (then cancelled if
    ``cancel``); bed and nursing posted each day 03-01..03-06 (scene 5): R27 on the last posting, if any."""
    s = Story(Engine.load())
    s.send(_stay(pid, f"{pid}-adm", 3, "2026-03-01"))
    s.send(_stay(pid, f"{pid}-cef", 4, "2026-03-01",
                 [line("1", CEFTRIAXONE, "drug", order_days, 30.0, days=order_days, start="2026-03-01", **extra)]))
    if cancel:
        body = _stay(pid, f"{pid}-cef-cx", 5, "2026-03-01")
        body.update(event_type="cancellation", cancels=f"{pid}-cef", diagnoses=[])
        assert s.send(body) == []
    for d in range(1, 6):
        s.send(_stay(pid, f"{pid}-d{d}", 5, f"2026-03-0{d}", _ward_day(f"2026-03-0{d}")))
    return s.one(_stay(pid, f"{pid}-d6", 5, "2026-03-06", _ward_day("2026-03-06")), "R27")


def test_r27_a_long_term_drug_order_covers_the_days_it_runs() -> None:
    assert _idle_after_order("P-md-27a", 6) is None  # 03-01..03-06 under the ceftriaxone order
    hit = _idle_after_order("P-md-27b", 2)  # 03-01..03-02: then four days of bed and nursing only (挂床)
    assert hit is not None and "2026-03-03至2026-03-06连续4天" in hit["message_zh"]


def test_r27_a_cancelled_long_term_order_no_longer_covers_its_days() -> None:
    hit = _idle_after_order("P-md-27x", 6, cancel=True)
    assert hit is not None and "2026-03-01至2026-03-06连续6天" in hit["message_zh"]


def test_r27_discharge_medication_is_not_care_in_the_stay() -> None:
    hit = _idle_after_order("P-md-27c", 6, take_home=True)
    assert hit is not None and "2026-03-02至2026-03-06连续5天" in hit["message_zh"]


def test_r27_on_the_shipped_nhsa_3102_example() -> None:
    """The example's ceftriaxone long-term order (long_drord_flag 1, 7 vials, 02-20 → 02-27) runs through the
    7 bed days (02-20..02-26): no day of the stay is bed-only. Without its days of supply it would be."""
    import json
    from pathlib import Path

    from services.dialects import nhsa
    from services.rules import decision as dec

    engine = Engine.load()
    body = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "examples" /
                       "nhsa-analysis.request.3102-inpatient.json").read_text(encoding="utf-8"))

    def r27(strip_days: bool) -> list[dict[str, Any]]:
        [plan] = nhsa.plan_analysis(nhsa.NhsaAnalysisRequest.model_validate(body))
        blob = None
        for e in plan.history:
            blob, _ = dec.handle_event(engine, blob, e.to_wire(), evaluate=False)
        current = plan.current.to_wire()
        if strip_days:
            for it in current["items"]:
                it["days_supply"] = None
        _, outcome = dec.handle_event(engine, blob, current)
        return [a for a in outcome["alerts"] if a["rule_id"] == "R27"]

    assert r27(strip_days=False) == []
    assert r27(strip_days=True) != []  # control: the order's days are what makes the difference


# -- a per-day line across the discharge day (R26) ------------------------------------------------------
def test_r26_nursing_billed_past_the_discharge_day_is_reported_for_its_days_after_it() -> None:
    s = Story(Engine.load())
    s.send(_stay("P-md-26", "P-md-26-adm", 3, "2026-03-01"))
    settle = stay("P-md-26", "P-md-26-settle", 8, "2026-03-03", [_per_day(NURSING_1, 5, 30.0, "2026-03-01")],
                  adm="2026-03-01", dis="2026-03-03", dx=HTN)
    hit = s.one(settle, "R26")
    assert hit is not None and "2026-03-04晚于出院日期2026-03-03" in hit["message_zh"] and hit["amount"] == 60.0
    within = stay("P-md-26b", "P-md-26b-settle", 8, "2026-03-03", [_per_day(NURSING_1, 3, 30.0, "2026-03-01")],
                  adm="2026-03-01", dis="2026-03-03", dx=HTN)
    assert Story(Engine.load()).one(within, "R26") is None  # control: the discharge day is the last


def test_the_day_counts_of_random_orders_match_a_recount_of_every_line() -> None:
    """Random per-day orders and postings over a stay (multi-day lines, repeats, out of order): for every
    code and day, ``qty_on`` equals a recount of the lines sent while the log holds them all, and after
    the oldest fold into the base it never reports a covered day as uncharged."""
    import random

    rnd = random.Random(11)
    codes = [NURSING_1, WARD_BED, SPECIAL]
    s = Story(Engine.load())
    s.send(_stay("P-md-rnd", "P-md-rnd-adm", 3, "2026-03-01"))
    adm = day_of_date("2026-03-01")
    sent: list[tuple[str, int, int, float]] = []  # code, start, span, qty
    for n in range(40):
        code, start, days = rnd.choice(codes), adm + rnd.randrange(0, 12), rnd.choice([1, 1, 2, 3, 5])
        when = f"2026-03-{1 + start - adm:02d}"
        s.send(_stay("P-md-rnd", f"P-md-rnd-{n}", rnd.choice([4, 5]), when, [_per_day(code, days, 10.0, when)]))
        sent.append((code, start, days, float(days)))
        [w] = s.state["E"]
        folded = len(w) > st.E_BASE and w[st.E_BASE] is not None
        counters = {c[st.K_CODE]: c for c in w[st.E_COUNTERS]}
        for code_ in codes:
            for day in range(adm, adm + 20):
                want = sum(1.0 if span > 1 else qty for c_, a, span, qty in sent if c_ == code_ and a <= day < a + span)
                got = st.qty_on(w, counters.get(code_), day, adm)
                if folded:
                    assert (got > 0) == (want > 0), (n, code_, day, got, want)
                else:
                    assert got == want, (n, code_, day, got, want)
    assert folded  # the cap was reached: the base held the oldest events at the end
