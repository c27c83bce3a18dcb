"""An independent audit (issue 10), third round: thresholds at their edge and what real HIS data looks like
(lines split over a prescription, amounts without a unit price, unknown sex, department sub-codes,
re-sent scenes, discharge-day charges).

Written apart from the golden cases, from each rule's definition and docs/rules.md.
"""

from __future__ import annotations

from typing import Any

from services.rules.engine import Engine
from tests.rules.audit_kit import Story, ev, evidence_events, line, status
from tests.rules.audit_kit import stay as kit_stay

ATORVASTATIN = "XC10AAA067A001010104321"
AMOXICILLIN = "XJ01CAD045B001010101543"
AMLODIPINE = "XC08CAH001A001010100137"
METFORMIN = "XA10BAH027A001010100729"
FINASTERIDE = "XG04CBY074A001010102209"
HCG = "XG03GAC082C001010102431"          # 生育保险 only
HBA1C = "002503020050000"
ACUPUNCTURE = "004500000010000"
CONSULT = "001102000010000"
INPT_CONSULT = "001102000050000"
WARD = "001109000010000"
NURSING_2 = "001201000030000"
CEFTRIAXONE = "XJ01DDF049C001010101543"
GINSENG, AMERICAN_GINSENG = "T000014182", "T000027351"
REHAB = "003402000010000"                # 运动疗法, course 90 days, department A21
HTN = [("I10.x00", "高血压")]
STROKE = [("I63.900", "脑梗死")]
LIPID = [("E78.500", "高脂血症")]


def stay(*args: Any, dx: list[tuple[str, str]] = HTN, **kw: Any) -> dict[str, Any]:
    return kit_stay(*args, dx=dx, **kw)


def bed(lid: str, start: str, days: int) -> dict[str, Any]:
    return line(lid, WARD, "service", days, 50.0, start=start, unit="日")


def lines_of(alerts: list[dict[str, Any]], rule: str) -> list[str]:
    return sorted(lid for a in alerts if a["rule_id"] == rule for lid in a["line_ids"])


def test_duplicate_prescription_at_the_one_third_threshold(engine: Engine) -> None:
    """R19: 30 days bought; 11 days left at the refill fires, 10 days left does not."""
    def refill(pid: str, day: str) -> dict[str, Any] | None:
        s = Story(engine)
        s.send(ev(pid, f"{pid}-1", "2026-04-01", dx=LIPID, items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]))
        return s.one(ev(pid, f"{pid}-2", day, inst="H2", dx=LIPID,
                        items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]), "R19")
    assert refill("P-e01", "2026-04-20") is not None   # 30 − 19 = 11
    assert refill("P-e02", "2026-04-21") is None       # 30 − 20 = 10


def test_day_limit_over_lines_split_in_one_prescription(engine: Engine) -> None:
    """R18 分解处方: amoxicillin written as two 5-day lines (10 days) fires; two 3-day lines (6) do not."""
    assert Story(engine).one(ev("P-e03", "e03-1", "2026-04-01", dx=[("J02.900", "急性咽炎")], items=[
        line("1", AMOXICILLIN, qty=30, price=0.3, days=5), line("2", AMOXICILLIN, qty=30, price=0.3, days=5)]), "R18")
    assert Story(engine).one(ev("P-e04", "e04-1", "2026-04-01", dx=[("J02.900", "急性咽炎")], items=[
        line("1", AMOXICILLIN, qty=18, price=0.3, days=3), line("2", AMOXICILLIN, qty=18, price=0.3, days=3)]),
        "R18") is None


def test_daily_maximum_over_lines_split_in_one_prescription(engine: Engine) -> None:
    """R36 分解处方: atorvastatin 3 a day and 2 a day on two lines (5 > 4) fires; 2 + 2 does not."""
    assert Story(engine).one(ev("P-e05", "e05-1", "2026-04-01", dx=LIPID, items=[
        line("1", ATORVASTATIN, qty=30, price=0.3, days=10), line("2", ATORVASTATIN, qty=20, price=0.3, days=10)]), "R36")
    assert Story(engine).one(ev("P-e06", "e06-1", "2026-04-01", dx=LIPID, items=[
        line("1", ATORVASTATIN, qty=20, price=0.3, days=10), line("2", ATORVASTATIN, qty=20, price=0.3, days=10)]),
        "R36") is None


def test_price_cap_from_the_amount_when_no_unit_price_is_sent(engine: Engine) -> None:
    """R32: 30 amlodipine tablets for 24.00 with no unit price (0.80 each, cap 0.50) fires with 9.00."""
    body = line("1", AMLODIPINE, qty=30, price=0.8, days=30)
    del body["unit_price"]
    a = Story(engine).one(ev("P-e07", "e07-1", "2026-04-01", dx=HTN, items=[body]), "R32")
    assert a is not None and a["amount"] == 9.0
    ok = line("1", AMLODIPINE, qty=30, price=0.5, days=30)
    del ok["unit_price"]
    assert Story(engine).one(ev("P-e08", "e08-1", "2026-04-01", dx=HTN, items=[ok]), "R32") is None


def test_unknown_sex_is_not_judged(engine: Engine) -> None:
    """R01/R03 with gender U (the HIS did not record it): no definite alert; with F they fire."""
    items = [line("1", FINASTERIDE, qty=30, price=1.5, days=30)]
    assert not {"R01", "R03"} & {a["rule_id"] for a in Story(engine).send(
        ev("P-e09", "e09-1", "2026-04-01", gender="U", dx=[("N40.x00", "前列腺增生")], items=items))}
    assert {"R01", "R03"} <= {a["rule_id"] for a in Story(engine).send(
        ev("P-e10", "e10-1", "2026-04-01", gender="F", dx=[("N40.x00", "前列腺增生")], items=items))}


def test_department_sub_codes_match_by_prefix(engine: Engine) -> None:
    """R09: acupuncture in department A50.03 (a TCM sub-department) is paid; in A03.01 it is not."""
    item = [line("1", ACUPUNCTURE, "service", 1, 20.0)]
    assert Story(engine).one(ev("P-e11", "e11-1", "2026-04-01", scene=6, department="A50.03",
                                dx=[("M54.500", "腰痛")], items=item), "R09") is None
    assert Story(engine).one(ev("P-e12", "e12-1", "2026-04-01", scene=6, department="A03.01",
                                dx=[("M54.500", "腰痛")], items=item), "R09")


def test_birth_insurance_drug_and_unknown_level(engine: Engine) -> None:
    """R07: chorionic gonadotrophin (生育保险 only) for a resident-scheme (390) woman fires. R08: a
    level-restricted drug at an institution that sends no level is not judged."""
    assert Story(engine).one(ev("P-e13", "e13-1", "2026-04-01", gender="F", birth="1994-01-01", ins="390", scene=6,
                                dx=[("N97.900", "女性不孕症")], items=[line("1", HCG, qty=1, price=30.0)]), "R07")
    mero = "XJ01DHT051C001010101728"
    assert Story(engine).one(stay("P-e14", "e14-set", 8, "2026-04-05", [line("1", mero, qty=3, price=60.0,
                                                                             start="2026-04-02")],
                                  adm="2026-04-01", dis="2026-04-05", level=None, dx=[("J15.900", "细菌性肺炎")]),
                             "R08") is None


def test_herbs_all_on_the_single_unpaid_list(engine: Engine) -> None:
    """R10: 人参 with 西洋参 — both on the 单方不予支付 list — is still not a paid formula."""
    assert Story(engine).one(ev("P-e15", "e15-1", "2026-04-01", dx=[("R53.x00", "乏力")], items=[
        line("1", GINSENG, "herb", 10, 2.0), line("2", AMERICAN_GINSENG, "herb", 10, 3.0)]), "R10")


def test_a_secondary_diagnosis_meets_the_indication(engine: Engine) -> None:
    """R11 near miss: clopidogrel at a visit whose main diagnosis is hypertension and whose second
    diagnosis is a cerebral infarction."""
    assert Story(engine).one(ev("P-e16", "e16-1", "2026-04-01", dx=HTN + STROKE, items=[
        line("1", "XB01ACD019A001010100766", qty=28, price=2.5, days=28)]), "R11") is None


def test_a_re_sent_encounter_counts_once(engine: Engine) -> None:
    """R16/R24: the HbA1c of one outpatient encounter sent at scene 2 and again at settlement (6) is one
    test; a second encounter 30 days later is a second test."""
    s = Story(engine)
    s.send(ev("P-e17", "e17-2", "2026-04-01", scene=2, enc="e17-visit", dx=[("E11.900", "2型糖尿病")],
              items=[line("1", HBA1C, "service", 1, 60.0)]))
    assert s.one(ev("P-e17", "e17-6", "2026-04-01T10:00:00+08:00", scene=6, enc="e17-visit",
                    dx=[("E11.900", "2型糖尿病")], items=[line("1", HBA1C, "service", 1, 60.0)]), "R16") is None
    assert s.one(ev("P-e17", "e17-b", "2026-05-01", scene=6, dx=[("E11.900", "2型糖尿病")],
                    items=[line("1", HBA1C, "service", 1, 60.0)]), "R16")


def test_split_admission_gap_edge(engine: Engine) -> None:
    """R22: discharged 03-10; readmitted to the same hospital with the same stroke on 03-25 (15 days)
    fires, on 03-26 (16 days) does not."""
    def readmit(pid: str, day: str) -> dict[str, Any] | None:
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-03-01", adm="2026-03-01", dx=STROKE))
        s.send(stay(pid, f"{pid}-set", 8, "2026-03-10", [bed("1", "2026-03-01", 9)], adm="2026-03-01",
                    dis="2026-03-10", dx=STROKE))
        return s.one(stay(pid, f"{pid}-adm2", 3, day, adm=day, dx=STROKE), "R22")
    a = readmit("P-e18", "2026-03-25")
    assert a is not None and "15天" in a["message_zh"]
    assert readmit("P-e19", "2026-03-26") is None


def test_charges_on_and_after_the_discharge_day(engine: Engine) -> None:
    """R26/R40: discharged 03-05 at 10:00. A consultation dated 03-06 is after the discharge (R26); the
    bed charged for 03-05 too makes 5 bed days for 4 nights (R40); a drug given on the morning of 03-05 is fine."""
    alerts = Story(engine).send(stay("P-e20", "e20-set", 8, "2026-03-06", [
        bed("1", "2026-03-01", 5), line("2", CEFTRIAXONE, qty=2, price=20.0, start="2026-03-05T08:00:00+08:00"),
        line("3", INPT_CONSULT, "service", 1, 20.0, start="2026-03-06", unit="日")], adm="2026-03-01", dis="2026-03-05"))
    assert lines_of(alerts, "R26") == ["3"]
    assert lines_of(alerts, "R40") == ["1"]


def test_idle_days_broken_by_treatment(engine: Engine) -> None:
    """R27: treatment on 03-03 and 03-06 of a stay 03-01..03-09 leaves idle runs of 2, 2 and 2 days: no
    alert; treatment only on 03-06 leaves 03-01..03-05 idle (5 days): alert."""
    def settle(pid: str, treated: list[str]) -> dict[str, Any]:
        items = [bed("1", "2026-03-01", 8), line("2", NURSING_2, "service", 8, 20.0, start="2026-03-01", unit="日")]
        items += [line(str(10 + n), CEFTRIAXONE, qty=2, price=20.0, start=d) for n, d in enumerate(treated)]
        return stay(pid, f"{pid}-set", 8, "2026-03-09", items, adm="2026-03-01", dis="2026-03-09")
    assert Story(engine).one(settle("P-e21", ["2026-03-03", "2026-03-06"]), "R27") is None
    a = Story(engine).one(settle("P-e22", ["2026-03-06"]), "R27")
    assert a is not None and "2026-03-01" in a["message_zh"]


def test_an_uninsured_period_and_the_day_it_ends(engine: Engine) -> None:
    """R31 uninsured (断缴) 01-01..03-31: a visit on 03-31 fires; on 04-01 (contributions resumed) not."""
    s = Story(engine).status(status("P-e23", "uninsured", "2026-01-01", "2026-01-05", reason="断缴", until="2026-03-31"))
    assert s.one(ev("P-e23", "e23-1", "2026-03-31", scene=6, dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]), "R31")
    assert s.one(ev("P-e23", "e23-2", "2026-04-01", scene=6, dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]),
                 "R31") is None


def test_an_admission_while_the_hospital_is_suspended(engine: Engine) -> None:
    """R42 for an event without lines: an admission (scene 3) on a day of the suspension fires; the day
    before it does not."""
    rec = {"subject": "institution", "institution_id": "H-SUSP-5", "status": "suspended",
           "effective_from": "2026-03-01", "effective_to": "2026-03-31", "updated_at": "2026-02-20T10:00:00+08:00",
           "document_no": "杭医保稽〔2026〕9号", "reason": "暂停协议"}
    assert Story(engine).provider(rec).one(stay("P-e24", "e24-adm", 3, "2026-03-02", adm="2026-03-02",
                                                inst="H-SUSP-5"), "R42")
    assert Story(engine).provider(rec).one(stay("P-e25", "e25-adm", 3, "2026-02-28", adm="2026-02-28",
                                                inst="H-SUSP-5"), "R42") is None


def test_same_institution_twice_a_day_is_not_multiple_institutions(engine: Engine) -> None:
    """R34 near miss: morning and afternoon visits at the same hospital; R34 fires only for another one."""
    s = Story(engine)
    s.send(ev("P-e26", "e26-1", "2026-04-01T08:00:00+08:00", scene=6, dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]))
    assert s.one(ev("P-e26", "e26-2", "2026-04-01T15:00:00+08:00", scene=6, dx=HTN,
                    items=[line("1", CONSULT, "service", 1, 10.0)]), "R34") is None


def test_rehabilitation_course_restarts_after_a_long_pause(engine: Engine) -> None:
    """R17: 运动疗法 is paid for a 90-day course. Sessions every 25 days from 01-01: the one on 04-06 (day
    96 of the course) fires; sessions on 01-01 and 03-02, then after a 40-day pause on 04-11, do not
    (a pause longer than 30 days starts a new course)."""
    def session(pid: str, eid: str, d: str) -> dict[str, Any]:
        return ev(pid, eid, d, scene=6, department="A21", dx=STROKE, items=[line("1", REHAB, "service", 1, 40.0)])
    s = Story(engine)
    for n, d in enumerate(("2026-01-01", "2026-01-26", "2026-02-20", "2026-03-17")):  # pauses under 30 days
        s.send(session("P-e27", f"e27-{n}", d))
    a = s.one(session("P-e27", "e27-4", "2026-04-06"), "R17")
    assert a is not None and "2026-01-01" in a["message_zh"]
    t = Story(engine)
    t.send(session("P-e28", "e28-1", "2026-01-01"))
    t.send(session("P-e28", "e28-2", "2026-03-02"))
    assert t.one(session("P-e28", "e28-3", "2026-04-11"), "R17") is None


def test_interaction_with_discharge_medication_from_another_hospital(engine: Engine) -> None:
    """R21: warfarin taken home from H1 on 03-10 (30 days); aspirin prescribed at a clinic on 03-15 fires,
    naming the H1 settlement; on 04-20 (warfarin used up) it does not."""
    warfarin = "XB01AAH031A001010101887"
    aspirin = "XB01ACA056A001010100217"

    def story(pid: str) -> Story:
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-03-01", adm="2026-03-01", dx=[("I48.000", "房颤")]))
        s.send(stay(pid, f"{pid}-set", 8, "2026-03-10", [
            bed("1", "2026-03-01", 9),
            line("2", warfarin, qty=30, price=0.3, days=30, start="2026-03-10", take_home=True)],
            adm="2026-03-01", dis="2026-03-10", dx=[("I48.000", "房颤")]))
        return s
    a = story("P-e29").one(ev("P-e29", "e29-c", "2026-03-15", inst="C1", dx=[("I25.100", "冠心病")],
                              items=[line("1", aspirin, qty=30, price=0.2, days=30)]), "R21")
    assert a is not None and any(e["event_id"] == "P-e29-set" for e in evidence_events(a))
    assert story("P-e30").one(ev("P-e30", "e30-c", "2026-04-20", inst="C1", dx=[("I25.100", "冠心病")],
                                 items=[line("1", aspirin, qty=30, price=0.2, days=30)]), "R21") is None


def test_a_visit_reported_late_counts_with_the_visits_after_it(engine: Engine) -> None:
    """R24: a clinic uploads its April batch late: ten visits 04-10..04-28 are recorded, then the visit of
    04-05 arrives — 04-05..05-04 holds 11 visits. A visit of 03-20 arriving the same way (6 in its
    busiest window) does not fire."""
    def late(pid: str, day: str) -> dict[str, Any] | None:
        s = Story(engine)
        for n in range(10):
            s.send(ev(pid, f"{pid}-{n}", f"2026-04-{10 + 2 * n:02d}", scene=6, dx=HTN,
                      items=[line("1", CONSULT, "service", 1, 10.0)]))
        return s.one(ev(pid, f"{pid}-late", day, scene=6, inst="C9", dx=HTN,
                        items=[line("1", CONSULT, "service", 1, 10.0)]), "R24")
    a = late("P-e31", "2026-04-05")
    assert a is not None and "11次" in a["message_zh"]
    assert {e["event_id"] for e in evidence_events(a)} == {f"P-e31-{n}" for n in range(10)}
    assert late("P-e32", "2026-03-20") is None


def test_a_test_reported_late_counts_with_the_tests_after_it(engine: Engine) -> None:
    """R16: HbA1c (once per 60 days) recorded on 03-01; a test done on 01-15 at H2 is uploaded on 03-20
    (started_at 01-15) — two in one 60-day period. A test done on 12-15 (76 days before) does not fire."""
    def late(pid: str, done: str) -> dict[str, Any] | None:
        s = Story(engine)
        s.send(ev(pid, f"{pid}-1", "2026-03-01", scene=6, dx=[("E11.900", "2型糖尿病")],
                  items=[line("1", HBA1C, "service", 1, 60.0)]))
        return s.one(ev(pid, f"{pid}-2", "2026-03-20", scene=6, inst="H2", dx=[("E11.900", "2型糖尿病")],
                        items=[line("1", HBA1C, "service", 1, 60.0, start=done)]), "R16")
    assert late("P-e33", "2026-01-15") is not None
    assert late("P-e34", "2025-12-15") is None
