"""An independent audit (issue 10), second round: order time (scenes 4/5), events without lines judged at
their own date, evidence of the history rules, age thresholds at the boundary, consumables.

Written apart from the golden cases, from each rule's definition and docs/rules.md.
"""

from __future__ import annotations

from typing import Any

from services.rules.engine import Engine
from tests.rules.audit_kit import Story, ev, evidence_events, language_faults, line, status
from tests.rules.audit_kit import stay as kit_stay

ATORVASTATIN = "XC10AAA067A001010104321"
ROSUVASTATIN = "XC10AAR117A001010100561"
METFORMIN = "XA10BAH027A001010100729"
LIVER = ["002503050010000", "002503050020000", "002503070010000", "002503070020000"]
INPT_CONSULT = "001102000050000"
CONSULT = "001102000010000"
WARD = "001109000010000"
INCUBATOR = "001109000060000"
GERIATRIC = "001104000100000"    # 老年综合评估, 60 and over
STENT = "C04010000990000633520000001"  # cap 798, level 3
PCI = "003206000020000"
TURP = "003311010020000"
CLOPIDOGREL = "XB01ACD019A001010100766"
IHD = [("I21.900", "急性心肌梗死")]
BPH = [("N40.x00", "前列腺增生")]
HTN = [("I10.x00", "高血压")]


def stay(*args: Any, dx: list[tuple[str, str]] = HTN, **kw: Any) -> dict[str, Any]:
    return kit_stay(*args, dx=dx, **kw)


def rule_ids(alerts: list[dict[str, Any]]) -> set[str]:
    return {a["rule_id"] for a in alerts}


# ---------------------------------------------------------------- order time

def test_unbundled_panel_warned_when_ordered(engine: Engine) -> None:
    """R14 at scene 4: four liver-function components ordered one by one on the ward; three do not warn."""
    s = Story(engine)
    s.send(stay("P-m01", "m01-adm", 3, "2026-03-01", adm="2026-03-01"))
    assert s.one(stay("P-m01", "m01-o1", 4, "2026-03-02", [line(str(i + 1), c, "service", 1, 5.0, start="2026-03-02")
                                                          for i, c in enumerate(LIVER[:3])], adm="2026-03-01"), "R14") is None
    assert s.one(stay("P-m01", "m01-o2", 4, "2026-03-03", [line(str(i + 1), c, "service", 1, 5.0, start="2026-03-03")
                                                          for i, c in enumerate(LIVER)], adm="2026-03-01"), "R14")


def test_charge_before_admission_warned_when_ordered(engine: Engine) -> None:
    """R26 at scene 4: an order back-dated to the day before admission warns at once; one dated today does not."""
    s = Story(engine)
    s.send(stay("P-m02", "m02-adm", 3, "2026-03-05", adm="2026-03-05"))
    assert s.one(stay("P-m02", "m02-o1", 4, "2026-03-06", [line("1", INPT_CONSULT, "service", 1, 20.0, start="2026-03-04",
                                                              unit="日")], adm="2026-03-05"), "R26")
    assert s.one(stay("P-m02", "m02-o2", 4, "2026-03-06", [line("1", INPT_CONSULT, "service", 1, 20.0, start="2026-03-06",
                                                              unit="日")], adm="2026-03-05"), "R26") is None


def test_operation_limit_per_stay_across_orders(engine: Engine) -> None:
    """R15 max_per_enc: a TURP ordered on 03-02 and again on 03-04 of the same stay (once per stay) fires
    on the second order; the first alone does not."""
    s = Story(engine)
    s.send(stay("P-m03", "m03-adm", 3, "2026-03-01", adm="2026-03-01", dx=BPH))
    assert s.one(stay("P-m03", "m03-o1", 4, "2026-03-02", [line("1", TURP, "service", 1, 1500.0, start="2026-03-02")],
                      adm="2026-03-01", dx=BPH), "R15") is None
    assert s.one(stay("P-m03", "m03-o2", 4, "2026-03-04", [line("1", TURP, "service", 1, 1500.0, start="2026-03-04")],
                      adm="2026-03-01", dx=BPH), "R15")


def test_second_line_with_a_first_line_agent_earlier_in_the_stay(engine: Engine) -> None:
    """R12 near miss inside a stay: ceftriaxone (J01DD, first line) ordered on 03-02, meropenem on 03-05:
    no alert; meropenem as the first antibiotic of another stay: alert."""
    mero = "XJ01DHT051C001010101728"
    s = Story(engine)
    s.send(stay("P-m04", "m04-adm", 3, "2026-03-01", adm="2026-03-01", dx=[("J15.900", "细菌性肺炎")]))
    s.send(stay("P-m04", "m04-o1", 4, "2026-03-02", [line("1", "XJ01DDF049C001010101543", qty=2, price=20.0,
                                                          start="2026-03-02")], adm="2026-03-01",
                dx=[("J15.900", "细菌性肺炎")]))
    assert s.one(stay("P-m04", "m04-o2", 4, "2026-03-05", [line("1", mero, qty=3, price=60.0, start="2026-03-05")],
                      adm="2026-03-01", dx=[("J15.900", "细菌性肺炎")]), "R12") is None
    t = Story(engine)
    t.send(stay("P-m05", "m05-adm", 3, "2026-03-01", adm="2026-03-01", dx=[("J15.900", "细菌性肺炎")]))
    assert t.one(stay("P-m05", "m05-o1", 4, "2026-03-02", [line("1", mero, qty=3, price=60.0, start="2026-03-02")],
                      adm="2026-03-01", dx=[("J15.900", "细菌性肺炎")]), "R12")


def test_indication_from_the_stay_when_the_order_carries_no_diagnosis(engine: Engine) -> None:
    """R11 inside a stay: the ward order carries no diagnosis; the stay's main diagnosis (myocardial
    infarction) covers clopidogrel. A stay for hypertension does not."""
    s = Story(engine)
    s.send(stay("P-m06", "m06-adm", 3, "2026-03-01", adm="2026-03-01", dx=IHD))
    assert s.one(stay("P-m06", "m06-o1", 4, "2026-03-02", [line("1", CLOPIDOGREL, qty=1, price=2.5, start="2026-03-02")],
                      adm="2026-03-01", dx=[]), "R11") is None
    t = Story(engine)
    t.send(stay("P-m07", "m07-adm", 3, "2026-03-01", adm="2026-03-01", dx=HTN))
    assert t.one(stay("P-m07", "m07-o1", 4, "2026-03-02", [line("1", CLOPIDOGREL, qty=1, price=2.5, start="2026-03-02")],
                      adm="2026-03-01", dx=[]), "R11")


# ---------------------------------------------------------------- events without lines, at their own date

def test_an_admission_after_death_and_on_the_day_of_death(engine: Engine) -> None:
    """R31 for an event without lines (an admission): on the day after the death it fires; on the day of
    the death it does not (care up to and including that day is payable)."""
    death = status("P-m08", "deceased", "2026-03-05", "2026-03-05T23:00:00+08:00")
    assert Story(engine).status(death).one(stay("P-m08", "m08-adm", 3, "2026-03-06", adm="2026-03-06"), "R31")
    death2 = status("P-m09", "deceased", "2026-03-05", "2026-03-05T23:00:00+08:00")
    assert Story(engine).status(death2).one(stay("P-m09", "m09-adm", 3, "2026-03-05T06:00:00+08:00",
                                                 adm="2026-03-05T06:00:00+08:00"), "R31") is None


def test_a_terminated_agreement_without_an_end(engine: Engine) -> None:
    """R42: a pharmacy's agreement terminated from 2026-02-01 (no end): a purchase in June fires;
    a purchase in January does not."""
    rec = {"subject": "institution", "institution_id": "PH-TERM-1", "status": "terminated",
           "effective_from": "2026-02-01", "updated_at": "2026-01-25T10:00:00+08:00",
           "document_no": "杭医保协〔2026〕3号", "reason": "解除服务协议"}
    s = Story(engine).provider(rec)
    buy = [line("1", METFORMIN, qty=90, price=0.1, days=30)]
    assert s.one(ev("P-m10", "m10-1", "2026-06-10", scene=10, inst="PH-TERM-1", etype="pharmacy", items=buy), "R42")
    assert s.one(ev("P-m10", "m10-2", "2026-01-20", scene=10, inst="PH-TERM-1", etype="pharmacy", items=buy), "R42") is None


def test_the_encounter_doctor_stands_for_lines_without_their_own(engine: Engine) -> None:
    """R43: the encounter's doctor is suspended and the lines name no doctor: every line is flagged; a
    visit with another doctor is not."""
    rec = {"subject": "doctor", "doctor_id": "D-SUSP-9", "status": "suspended", "effective_from": "2026-03-01",
           "updated_at": "2026-02-27T10:00:00+08:00", "reason": "医保医师记分"}
    s = Story(engine).provider(rec)
    a = s.one(ev("P-m11", "m11-1", "2026-03-10", scene=6, doctor_id="D-SUSP-9", dx=HTN, items=[
        line("1", CONSULT, "service", 1, 10.0), line("2", METFORMIN, qty=90, price=0.1, days=30)]), "R43")
    assert a is not None and sorted(a["line_ids"]) == ["1", "2"] and language_faults(a) == []
    assert s.one(ev("P-m11", "m11-2", "2026-03-11", scene=6, doctor_id="D-OTHER-1", dx=HTN,
                    items=[line("1", CONSULT, "service", 1, 10.0)]), "R43") is None


# ---------------------------------------------------------------- evidence of the history rules

def test_frequent_admission_evidence_names_each_earlier_admission(engine: Engine) -> None:
    """R23 evidence: the earlier admissions' event ids, institutions and dates."""
    s = Story(engine)
    for n, (adm, dis, inst) in enumerate([("2026-01-05", "2026-01-12", "H1"), ("2026-03-02", "2026-03-09", "H2"),
                                          ("2026-05-04", "2026-05-10", "H3")]):
        s.send(stay("P-m12", f"m12-{n}", 3, adm, adm=adm, inst=inst))
        s.send(stay("P-m12", f"m12-{n}-set", 8, dis, [line("1", WARD, "service", 5, 50.0, start=adm, unit="日")],
                    adm=adm, dis=dis, inst=inst))
    a = s.one(stay("P-m12", "m12-3", 3, "2026-07-06", adm="2026-07-06"), "R23")
    assert a is not None
    named = {(e["event_id"], e["institution_id"]) for e in evidence_events(a)}
    assert {("m12-0", "H1"), ("m12-1", "H2"), ("m12-2", "H3")} <= named


def test_readmission_evidence_names_the_discharge(engine: Engine) -> None:
    """R29 evidence: the earlier stay at another hospital, with its institution and discharge date."""
    s = Story(engine)
    s.send(stay("P-m13", "m13-adm", 3, "2026-03-01", adm="2026-03-01", inst="H2"))
    s.send(stay("P-m13", "m13-set", 8, "2026-03-08", [line("1", WARD, "service", 7, 50.0, start="2026-03-01", unit="日")],
                adm="2026-03-01", dis="2026-03-08", inst="H2"))
    a = s.one(stay("P-m13", "m13-adm2", 3, "2026-03-20", adm="2026-03-20"), "R29")
    assert a is not None and "2026-03-08" in a["message_zh"]
    assert any(e["event_id"] in ("m13-adm", "m13-set") and e["institution_id"] == "H2" for e in evidence_events(a))


def test_frequent_visit_and_same_day_evidence_name_the_visits(engine: Engine) -> None:
    """R24 (three visits in one day) and R34 (two institutions) name the earlier visits' events."""
    s = Story(engine)
    s.send(ev("P-m14", "m14-1", "2026-04-01T08:00:00+08:00", scene=6, dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]))
    s.send(ev("P-m14", "m14-2", "2026-04-01T11:00:00+08:00", scene=6, inst="H2", dx=HTN,
              items=[line("1", CONSULT, "service", 1, 10.0)]))
    alerts = s.send(ev("P-m14", "m14-3", "2026-04-01T16:00:00+08:00", scene=6, inst="H3", dx=HTN,
                       items=[line("1", CONSULT, "service", 1, 10.0)]))
    by = {a["rule_id"]: a for a in alerts}
    assert {"R24", "R34"} <= set(by)
    for rid in ("R24", "R34"):
        assert {"m14-1", "m14-2"} <= {e["event_id"] for e in evidence_events(by[rid])}, rid


def test_purchase_frequency_evidence_and_the_year_boundary(engine: Engine) -> None:
    """R25: four metformin purchases in December then one on 01-02 do not fire (a new month); a fifth in
    December fires naming the four earlier purchases."""
    s = Story(engine)
    buy = [line("1", METFORMIN, qty=21, price=0.1, days=7)]
    for n, d in enumerate(("2025-12-03", "2025-12-10", "2025-12-17", "2025-12-24")):
        s.send(ev("P-m15", f"m15-{n}", d, scene=10, inst=f"PH{n % 2 + 1}", etype="pharmacy", items=buy))
    assert s.one(ev("P-m15", "m15-jan", "2026-01-02", scene=10, inst="PH1", etype="pharmacy", items=buy), "R25") is None
    a = s.one(ev("P-m15", "m15-dec", "2026-01-03", scene=10, inst="PH2", etype="pharmacy",
                 items=[line("1", METFORMIN, qty=21, price=0.1, days=7, start="2025-12-30")]), "R25")
    assert a is not None and {"m15-0", "m15-1", "m15-2", "m15-3"} <= {e["event_id"] for e in evidence_events(a)}


def test_same_class_against_a_running_supply_elsewhere(engine: Engine) -> None:
    """R20 with a running supply: atorvastatin for 30 days at H1, rosuvastatin at H2 ten days later fires
    naming the H1 supply; 25 days later (5 days left, under a third) it does not."""
    s = Story(engine)
    s.send(ev("P-m16", "m16-1", "2026-04-01", dx=[("E78.500", "高脂血症")],
              items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]))
    a = s.one(ev("P-m16", "m16-2", "2026-04-11", inst="H2", dx=[("E78.500", "高脂血症")],
                 items=[line("1", ROSUVASTATIN, qty=30, price=1.0, days=30)]), "R20")
    assert a is not None and any(e["event_id"] == "m16-1" and e["institution_id"] == "H1" for e in evidence_events(a))
    t = Story(engine)
    t.send(ev("P-m17", "m17-1", "2026-04-01", dx=[("E78.500", "高脂血症")],
              items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]))
    assert t.one(ev("P-m17", "m17-2", "2026-04-26", inst="H2", dx=[("E78.500", "高脂血症")],
                    items=[line("1", ROSUVASTATIN, qty=30, price=1.0, days=30)]), "R20") is None


# ---------------------------------------------------------------- ages at the boundary, consumables

def test_neonate_only_incubator_by_age_in_days(engine: Engine) -> None:
    """R05 neonate (≤ 28 days): the incubator on day 28 of life is paid; on day 30 it is not."""
    def settle(pid: str, start: str) -> dict[str, Any]:
        return stay(pid, f"{pid}-set", 8, "2026-04-05", [line("1", INCUBATOR, "service", 1, 60.0, start=start, unit="日")],
                    adm="2026-03-25", dis="2026-04-05", birth="2026-03-01", dx=[("P07.300", "早产儿")])
    assert Story(engine).one(settle("P-m18", "2026-03-29"), "R05") is None
    assert Story(engine).one(settle("P-m19", "2026-03-31"), "R05")


def test_minimum_age_reached_on_the_service_day(engine: Engine) -> None:
    """R05 minimum age: the geriatric assessment (60 and over) on the 60th birthday is paid; the day
    before it is not."""
    assert Story(engine).one(ev("P-m20", "m20-1", "2026-05-01", scene=6, birth="1966-05-01", dx=HTN,
                                items=[line("1", GERIATRIC, "service", 1, 50.0)]), "R05") is None
    assert Story(engine).one(ev("P-m21", "m21-1", "2026-04-30", scene=6, birth="1966-05-01", dx=HTN,
                                items=[line("1", GERIATRIC, "service", 1, 50.0)]), "R05")


def test_a_coronary_stent_price_and_level(engine: Engine) -> None:
    """R32/R08 for a consumable (27-character code): a stent at 850 (cap 798) at a level-2 hospital fires
    both, amount 52 for R32; at 798 in a level-3 hospital neither."""
    def settle(pid: str, level: int, price: float) -> list[dict[str, Any]]:
        return Story(engine).send(stay(pid, f"{pid}-set", 8, "2026-03-06", [
            line("1", STENT, "consumable", 1, price, start="2026-03-02"),
            line("2", PCI, "service", 1, 3000.0, start="2026-03-02")], adm="2026-03-01", dis="2026-03-06", level=level,
            dx=IHD))
    bad = settle("P-m22", 2, 850.0)
    r32 = [a for a in bad if a["rule_id"] == "R32" and a["line_ids"] == ["1"]]
    assert r32 and r32[0]["amount"] == 52.0 and "R08" in rule_ids(bad)
    good = settle("P-m23", 3, 798.0)
    assert not {"R32", "R08", "R38", "R39"} & rule_ids(good)


# ---------------------------------------------------------------- third batch: look-backs, fallbacks, plain limits

LIRAGLUTIDE = "XA10BJL035C001010101173"
ALBUMIN = "XB05AAI094C001010102801"
PAED_COLD = "XN02BEB067D001010102061"
DM2 = [("E11.900", "2型糖尿病")]


def test_second_line_look_back_is_90_days(engine: Engine) -> None:
    """R12: a 30-day metformin supply whose last day is 102 days before liraglutide fires; one whose last
    day is 71 days before does not (the look-back runs from the supply's last day, R12 1.2.0), nor one
    begun 95 days before that ran 10 days (its last day 86 days before)."""
    def story(pid: str, first: str) -> dict[str, Any] | None:
        s = Story(engine)
        s.send(ev(pid, f"{pid}-1", first, dx=DM2, items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]))
        return s.one(ev(pid, f"{pid}-2", "2026-04-11", dx=DM2, items=[line("1", LIRAGLUTIDE, qty=1, price=280.0, days=30)]),
                     "R12")
    assert story("P-m24", "2025-12-01") is not None
    assert story("P-m25", "2026-01-01") is None
    s = Story(engine)
    s.send(ev("P-m25b", "P-m25b-1", "2026-01-06", dx=DM2, items=[line("1", METFORMIN, qty=30, price=0.1, days=10)]))
    assert s.one(ev("P-m25b", "P-m25b-2", "2026-04-11", dx=DM2, items=[line("1", LIRAGLUTIDE, qty=1, price=280.0, days=30)]),
                 "R12") is None


def test_second_line_look_back_reads_folded_supplies_by_their_last_day(engine: Engine) -> None:
    """R12 1.2.0: a 10-day metformin course from 2026-01-06 is folded into the newer metformin supply of
    04-12 (spent when it was recorded); liraglutide dated 04-11 arrives after both (a late upload): the
    folded course ended 86 days before it — within the look-back, no alert; begun 2025-12-27 (ended
    01-05, 96 days before): flagged."""
    for pid, first, fires in (("P-m25c", "2026-01-06", False), ("P-m25d", "2025-12-27", True)):
        s = Story(engine)
        s.send(ev(pid, f"{pid}-1", first, dx=DM2, items=[line("1", METFORMIN, qty=30, price=0.1, days=10)]))
        s.send(ev(pid, f"{pid}-2", "2026-04-12", dx=DM2, items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]))
        a = s.one(ev(pid, f"{pid}-3", "2026-04-11", dx=DM2, items=[line("1", LIRAGLUTIDE, qty=1, price=280.0, days=30)]), "R12")
        assert (a is not None) is fires


def test_an_open_stay_counts_for_sixty_days(engine: Engine) -> None:
    """R35: a stay at H1 never discharged in the data: a visit elsewhere 50 days in fires; 65 days in it
    no longer counts as open (max_open_days 60)."""
    def visit(pid: str, day: str) -> dict[str, Any] | None:
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-01-01", adm="2026-01-01"))
        return s.one(ev(pid, f"{pid}-op", day, scene=6, inst="H2", dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]),
                     "R35")
    assert visit("P-m26", "2026-02-20") is not None
    assert visit("P-m27", "2026-03-07") is None


def test_region_overrides_fall_back_to_the_patients_region(engine: Engine) -> None:
    """When the institution sends no region, the patient's poolarea's parameters apply: R05 in Shanghai
    (children under 14) fires for a 15-year-old; R21 in Beijing (no moderate pairs) stays silent."""
    assert Story(engine).one(ev("P-m28", "m28-1", "2026-04-01", birth="2010-09-01", region=None, pregion="310100",
                                dx=[("J06.900", "急性上呼吸道感染")], items=[line("1", PAED_COLD, qty=6, price=1.2, days=2)]),
                             "R05")
    assert Story(engine).one(ev("P-m29", "m29-1", "2026-04-01", region=None, pregion="110100", dx=[("I48.000", "房颤")],
                                items=[line("1", "XB01AAH031A001010101887", qty=30, price=0.3, days=30),
                                       line("2", "XJ01MAH053A001010100137", qty=7, price=1.0, days=7)]), "R21") is None


def test_albumin_setting_and_indication(engine: Engine) -> None:
    """R09/R11: human albumin at an outpatient visit fires R09; on the ward for liver cancer it is within
    its indication, for plain hypertension it is not (R11)."""
    assert Story(engine).one(ev("P-m30", "m30-1", "2026-04-01", scene=6, dx=[("K74.600", "肝硬化")],
                                items=[line("1", ALBUMIN, qty=1, price=400.0)]), "R09")
    def ward(pid: str, dx: list[tuple[str, str]]) -> dict[str, Any] | None:
        return Story(engine).one(stay(pid, f"{pid}-set", 8, "2026-03-05", [line("1", ALBUMIN, qty=1, price=400.0,
                                                                                start="2026-03-02")],
                                      adm="2026-03-01", dis="2026-03-05", dx=dx), "R11")
    assert ward("P-m31", [("C22.000", "肝细胞癌")]) is None
    assert ward("P-m32", HTN) is not None


def test_low_acuity_stay_length_edge(engine: Engine) -> None:
    """R30: a 2-night stay with 80 % of its charges for a liver panel fires; the same share over 3 nights does not."""
    def settle(pid: str, nights: int) -> dict[str, Any] | None:
        dis = f"2026-03-{1 + nights:02d}"
        return Story(engine).one(stay(pid, f"{pid}-set", 8, dis, [
            line("1", "002503059000000", "service", 1, 300.0, start="2026-03-01"),
            line("2", WARD, "service", nights, 75.0 / nights, start="2026-03-01", unit="日")],
            adm="2026-03-01", dis=dis), "R30")
    assert settle("P-m33", 2) is not None
    assert settle("P-m34", 3) is None


def test_never_paid_piece_alone_and_two_ppis(engine: Engine) -> None:
    """R10: 冬虫夏草 alone is never paid. R20: omeprazole with pantoprazole (both A02BC) on one prescription."""
    assert Story(engine).one(ev("P-m35", "m35-1", "2026-04-01", dx=[("R53.x00", "乏力")],
                                items=[line("1", "T000030390", "herb", 2, 200.0)]), "R10")
    a = Story(engine).one(ev("P-m36", "m36-1", "2026-04-01", dx=[("K21.000", "反流性食管炎")], items=[
        line("1", "XA02BCS036B002010101210", qty=14, price=0.5, days=14),
        line("2", "XA02BCZ037A003010101099", qty=14, price=1.0, days=14)]), "R20")
    assert a is not None and "A02BC" in a["message_zh"]


def test_registration_while_suspended(engine: Engine) -> None:
    """R31 at scene 1 (挂号, no lines): a 失信-suspended patient registering fires; before the suspension not."""
    s = Story(engine).status(status("P-m37", "suspended", "2026-03-01", "2026-02-27", reason="失信"))
    assert s.one(ev("P-m37", "m37-1", "2026-03-10", scene=1, dx=HTN), "R31")
    assert s.one(ev("P-m37", "m37-0", "2026-02-20", scene=1, dx=HTN), "R31") is None


def test_an_incubator_line_running_past_the_newborn_period(engine: Engine) -> None:
    """R05 on each day of a multi-day line: the incubator billed as one line of 5 days from day 26 of life
    covers days 29 and 30, which are not payable (amount 2 × 60); 3 days from day 26 are all payable."""
    def settle(pid: str, days: int) -> dict[str, Any] | None:
        return Story(engine).one(stay(pid, f"{pid}-set", 8, "2026-04-05", [
            line("1", INCUBATOR, "service", days, 60.0, start="2026-03-27", unit="日")], adm="2026-03-25", dis="2026-04-05",
            birth="2026-03-01", dx=[("P07.300", "早产儿")]), "R05")
    a = settle("P-m38", 5)
    assert a is not None and a["amount"] == 120.0 and "29天" in a["message_zh"]
    assert settle("P-m39", 3) is None
