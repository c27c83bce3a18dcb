"""A second independent audit (issue 10): realistic situations for the least-audited rules.

Written from each rule's definition (its ``description`` and ``policy_basis``), docs/rules.md and the
catalogues under services/data/kb — apart from the golden cases and from the first audit. Each test
is one situation as a hospital's real day produces it (multi-line prescriptions, a stay sent at scenes
3/4/5/8, a pharmacy purchase, a patient with history at two hospitals, month/year boundaries, birthdays,
catalogue rows dated in and out), with its near miss: what a careful supervisor would NOT flag.

Every alert of every situation is checked by ``Story.send``: Chinese text without English words,
English text without Chinese. History-based rules are checked for evidence naming the earlier events
(event id, institution, date).
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

from services.rules.engine import DEFAULT_DATA, Engine
from tests.rules.audit_kit import Story, ev, evidence_events, line, stay
from tests.rules.conftest import edit_json

# drugs
PROGESTERONE = "XG03DAA078B001010102209"      # 黄体酮胶囊, women only
KUNTAI = "ZB02AAA130B001010103541"            # 坤泰胶囊, women only, N95
TAMSULOSIN = "XG04CAF075B003010102283"        # 坦索罗辛, men only
BICALUTAMIDE = "XL02BBM076A001010100285"      # 比卡鲁胺, men only, C61
AMLODIPINE_PFIZER = "XC08CAH001A001010100100"  # not selected in 集采
AMLODIPINE_JX, AMLODIPINE_YZJ = "XC08CAH001A001010100137", "XC08CAH001A001010100174"  # selected
VALSARTAN_VBP = "XC09CAQ006B001010100359"
FELODIPINE = "XC08CAV003A004010100285"        # no selected product of its ingredient and form
METFORMIN_VBP, METFORMIN_BMS = "XA10BAH027A001010100729", "XA10BAH027A001010100951"
METFORMIN_JF = "XA10BAH027A001010100988"
HCG = "XG03GAC082C001010102431"               # 注射用绒促性素, maternity insurance (510) only
MIFEPRISTONE = "XG03XBQ084A001010102505"      # 510, 310, 390
MOUSE_NGF = "XN07XXX085C001010102542"         # 工伤 (410) only
OMEPRAZOLE_INJ = "XA02BCS036C001010101247"    # inpatient only, selected
OMEPRAZOLE_CAP = "XA02BCS036B002010101210"
MEROPENEM = "XJ01DHT051C001010101728"         # inpatient only
CLOPIDOGREL = "XB01ACD019A001010100766"       # I20 I21 I25 I63 G45 I70
ALBUMIN = "XB05AAI094C001010102801"           # inpatient; K74 R18 E88.0 C T31 N04
OXYTOCIN = "XH01BBJ083C001010102468"          # women, chapter O
AMOXICILLIN = "XJ01CAD045B001010101543"
AMBROXOL = "XR05CBS062A001010100914"
EDARAVONE = "XN07XXD097C001010102912"         # course 14 days
GINKGO = "XN06DXK098C001010102949"            # course 14 days
CEFTRIAXONE_ROCHE, CEFTRIAXONE_VBP = "XJ01DDF049C001010101691", "XJ01DDF049C001010101543"
IBUPROFEN_SUSP, IBUPROFEN_CAP = "XM01AEI068E002010102098", "XM01AEI068B003010102135"
ATORVASTATIN_VBP = "XC10AAA067A001010104321"
ASPIRIN = "XB01ACA056A001010100217"
GANCAO = "T000001013"
# services and consumables
PSA, SEMEN, TCT = "002504040100000", "002501060010000", "002708000050000"
HCG_TEST, CA125 = "002503090070000", "002504040260000"
TRANSVAGINAL_US = "002206000300000"
IUD = "C09010002090001425420000001"           # 宫内节育器, women; 510 310 390
TURP, PROSTATE_BIOPSY, ORCHIECTOMY = "003311010020000", "003311010100000", "003312010010000"
HYSTERECTOMY, CAESAREAN, TUBAL_LIGATION = "003315020010000", "003316000010000", "003314010010000"
APPENDECTOMY = "003310030010000"
EXERCISE_THERAPY = "003402000010000"          # 运动疗法, department A21, course 90 days
HYPERBARIC = "003114000010000"                # 高压氧舱治疗, course 30 days
ALT, AST, TBIL, DBIL, ALB_TEST = ("002503050010000", "002503050020000", "002503070010000", "002503070020000",
                                  "002503010020000")
LIVER_PANEL = "002503059000000"
UREA, CREATININE, URIC = "002503070210000", "002503070220000", "002503070230000"
TC, TG, HDL = "002503030010000", "002503030020000", "002503030040000"
CT_HEAD, CT_CHEST, MRI_HEAD = "002103000010000", "002103000020000", "002104000010000"
BLOOD_COUNT = "002501010150000"
WARD = "001109000020000"                      # 双人间 bed, per day
NURSING_2 = "001201000030000"
INPT_CONSULT = "001102000050000"
CONSULT = "001102000010000"

HTN = [("I10.x00", "高血压")]
STROKE = [("I63.900", "脑梗死")]
PNEUMONIA = [("J18.900", "肺炎")]
BRONCHITIS = [("J20.900", "急性支气管炎")]
DM2 = [("E11.900", "2型糖尿病")]
CHEMO = [("Z51.100", "肿瘤化学治疗疗程"), ("C34.900", "肺恶性肿瘤")]


def rule_alerts(alerts: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a["rule_id"] == rule]


def bed(lid: str, start: str, days: int, price: float = 60.0) -> dict[str, Any]:
    return line(lid, WARD, "service", days, price, start=start, unit="日")


def cancellation(of: dict[str, Any], eid: str, when: str) -> dict[str, Any]:
    """The HIS takes an earlier order back (撤销): same encounter, ``cancels`` its event id, no items."""
    body = json.loads(json.dumps(of))
    body.update(event_id=eid, event_type="cancellation", cancels=of["event_id"], occurred_at=when, items=[])
    return body


# -- R01 药品区分性别使用 ----------------------------------------------------------------------------------


def test_r01_progesterone_in_a_mans_multi_line_prescription(engine: Engine) -> None:
    """R01: a man's hypertension prescription (amlodipine, valsartan) carries 黄体酮胶囊 by a wrong pick in
    the HIS drop-down: only that line is flagged, with its amount. His wife's identical prescription is
    not flagged."""
    items = [line("1", AMLODIPINE_JX, qty=28, price=0.5, days=28), line("2", PROGESTERONE, qty=20, price=3.0, days=10),
             line("3", VALSARTAN_VBP, qty=28, price=1.0, days=28)]
    a = Story(engine).one(ev("P-b01m", "b01-m", "2026-05-11", gender="M", dx=HTN, items=items), "R01")
    assert a is not None and a["line_ids"] == ["2"] and a["amount"] == 60.0
    assert "女" in a["message_zh"] and "男" in a["message_zh"] and "female" in a["message_en"]
    assert Story(engine).one(ev("P-b01f", "b01-f", "2026-05-11", gender="F", birth="1975-03-02", dx=HTN,
                                items=items), "R01") is None


def test_r01_pharmacy_purchase_on_the_husbands_card(engine: Engine) -> None:
    """R01 at a pharmacy (scene 10): 坤泰胶囊 (a menopause remedy for women) bought on a man's card — the
    typical 冒名购药 — is flagged; the same purchase on a woman's card is not."""
    buy = [line("1", KUNTAI, qty=48, price=1.1, days=4)]
    a = Story(engine).one(ev("P-b01p", "b01-p", "2026-05-12", scene=10, inst="PH7", level=None, etype="pharmacy",
                             items=buy), "R01")
    assert a is not None and a["line_ids"] == ["1"]
    assert Story(engine).one(ev("P-b01q", "b01-q", "2026-05-12", scene=10, inst="PH7", level=None, etype="pharmacy",
                                gender="F", birth="1970-01-01", items=buy), "R01") is None


def test_r01_local_suffix_and_unknown_sex(engine: Engine) -> None:
    """R01 on a code the HIS sends as ``<national>-<local>``: tamsulosin for a woman is still flagged (the
    national part decides); a patient registered with sex unknown (U, e.g. an unconscious emergency
    patient) is not the other sex and is not flagged."""
    item = [line("1", f"{TAMSULOSIN}-HIS00917", qty=14, price=2.0, days=14)]
    a = Story(engine).one(ev("P-b01s", "b01-s", "2026-05-13", gender="F", dx=[("N20.000", "肾结石")], items=item), "R01")
    assert a is not None and a["evidence"][-1]["code"] == TAMSULOSIN
    assert Story(engine).one(ev("P-b01u", "b01-u", "2026-05-13", gender="U", dx=[("N20.000", "肾结石")],
                                items=item), "R01") is None


# -- R02 项目区分性别使用 ----------------------------------------------------------------------------------


def test_r02_husbands_semen_analysis_on_the_wifes_card(engine: Engine) -> None:
    """R02: a couple's infertility work-up settled on the wife's card (scene 6): her hCG test and
    transvaginal ultrasound are hers, the semen analysis is not — only that line is flagged."""
    alerts = Story(engine).send(ev("P-b02a", "b02-a", "2026-06-02", scene=6, gender="F", birth="1992-08-08",
                                   dx=[("N97.900", "女性不孕症")],
                                   items=[line("1", HCG_TEST, "service", 1, 45.0), line("2", TRANSVAGINAL_US, "service", 1, 160.0),
                                          line("3", SEMEN, "service", 1, 80.0)]))
    r02 = rule_alerts(alerts, "R02")
    assert [a["line_ids"] for a in r02] == [["3"]] and r02[0]["amount"] == 80.0


def test_r02_consumable_at_order_time(engine: Engine) -> None:
    """R02 on a consumable at scene 4: an IUD (宫内节育器) ordered in a man's stay (the bed's previous
    occupant's order copied) is warned when entered; the same order for a woman is not."""
    for pid, gender, fires in (("P-b02m", "M", True), ("P-b02f", "F", False)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-06-03", adm="2026-06-03", gender=gender, birth="1985-01-01",
                    dx=[("K35.800", "急性阑尾炎")]))
        a = s.one(stay(pid, f"{pid}-ord", 4, "2026-06-04", [line("1", IUD, "consumable", 1, 120.0, start="2026-06-04")],
                       adm="2026-06-03", gender=gender, birth="1985-01-01", dx=[("K35.800", "急性阑尾炎")]), "R02")
        assert (a is not None) is fires


def test_r02_leaves_operations_to_r04_and_psa_for_a_man(engine: Engine) -> None:
    """R02 excludes surgery: a prostate biopsy on a woman's settlement is R04's, not R02's (no double
    alert); a PSA test for a man is not flagged at all."""
    alerts = Story(engine).send(stay("P-b02s", "b02-s", 8, "2026-06-08", [line("1", PROSTATE_BIOPSY, "service", 1, 600.0,
                                                                                start="2026-06-06")],
                                     adm="2026-06-05", dis="2026-06-08", gender="F", dx=[("N39.000", "尿路感染")]))
    assert not rule_alerts(alerts, "R02") and [a["line_ids"] for a in rule_alerts(alerts, "R04")] == [["1"]]
    assert Story(engine).one(ev("P-b02p", "b02-p", "2026-06-08", scene=6, dx=[("N40.x00", "前列腺增生")],
                                items=[line("1", PSA, "service", 1, 60.0)]), "R02") is None


# -- R04 手术与性别不符 ------------------------------------------------------------------------------------


def test_r04_hysterectomy_on_a_mans_settlement(engine: Engine) -> None:
    """R04 at the inpatient settlement: a man's appendicitis stay carries 经腹全子宫切除术 (a coding slip
    for the appendectomy); the appendectomy beside it is not flagged, nor the same hysterectomy for a
    woman."""
    def settle(pid: str, gender: str) -> dict[str, Any]:
        return stay(pid, f"{pid}-set", 8, "2026-07-06", [line("1", APPENDECTOMY, "service", 1, 900.0, start="2026-07-02"),
                                                         line("2", HYSTERECTOMY, "service", 1, 2500.0, start="2026-07-02"),
                                                         bed("3", "2026-07-01", 5)],
                    adm="2026-07-01", dis="2026-07-06", gender=gender, birth="1970-01-01", dx=[("K35.800", "急性阑尾炎")])
    a = Story(engine).one(settle("P-b04m", "M"), "R04")
    assert a is not None and a["line_ids"] == ["2"] and a["amount"] == 2500.0 and "手术" in a["message_zh"]
    assert Story(engine).one(settle("P-b04f", "F"), "R04") is None


def test_r04_orchiectomy_ordered_for_a_woman(engine: Engine) -> None:
    """R04 at order time (scene 4): 睾丸切除术 entered for a woman is warned; a caesarean section for her is not."""
    s = Story(engine)
    s.send(stay("P-b04o", "b04-adm", 3, "2026-07-10", adm="2026-07-10", gender="F", birth="1994-02-02",
                dx=[("O80.000", "单胎顺产")]))
    alerts = s.send(stay("P-b04o", "b04-ord", 4, "2026-07-11", [line("1", CAESAREAN, "service", 1, 1800.0, start="2026-07-11"),
                                                              line("2", ORCHIECTOMY, "service", 1, 1200.0, start="2026-07-11")],
                         adm="2026-07-10", gender="F", birth="1994-02-02", dx=[("O80.000", "单胎顺产")]))
    assert [a["line_ids"] for a in rule_alerts(alerts, "R04")] == [["2"]]


def test_r04_outpatient_operation_at_settlement(engine: Engine) -> None:
    """R04 "at settlement": a prostate biopsy is often an outpatient operation (门诊手术). Billed on a
    woman's outpatient settlement (scene 6) it contradicts her sex as much as in a stay — and R02 leaves
    surgery to R04, so without R04 the line would pass unchecked. For a man it is not flagged."""
    item = [line("1", PROSTATE_BIOPSY, "service", 1, 600.0)]
    a = Story(engine).one(ev("P-b04p", "b04-p", "2026-07-12", scene=6, gender="F", dx=[("N39.000", "尿路感染")],
                             items=item), "R04")
    assert a is not None and a["line_ids"] == ["1"]
    assert Story(engine).one(ev("P-b04q", "b04-q", "2026-07-12", scene=6, gender="M", dx=[("N40.x00", "前列腺增生")],
                                items=item), "R04") is None


# -- R03 诊断与性别不符 ------------------------------------------------------------------------------------


def test_r03_husbands_diagnosis_on_the_wifes_visit(engine: Engine) -> None:
    """R03: a woman's outpatient visit carries 前列腺增生 (the doctor reused the husband's record); her own
    visit with hypertension is not flagged, nor the husband's."""
    a = Story(engine).one(ev("P-b03a", "b03-a", "2026-08-03", gender="F", dx=[("N40.x00", "前列腺增生"), *HTN],
                             items=[line("1", AMLODIPINE_JX, qty=28, price=0.5, days=28)]), "R03")
    assert a is not None and "N40" in a["message_zh"] and "female" in a["message_en"]
    assert a["evidence"] == [{"kind": "kb", "table": "diagnoses", "code": "N40", "detail": "sex=M"}]
    assert Story(engine).one(ev("P-b03b", "b03-b", "2026-08-03", gender="M", dx=[("N40.x00", "前列腺增生"), *HTN]),
                             "R03") is None


def test_r03_delivery_chapter_for_a_man_at_admission(engine: Engine) -> None:
    """R03 at admission (scene 3), from the chapter row: 单胎顺产 (O80, chapter O) for a male patient;
    the same admission for a woman is not flagged."""
    assert Story(engine).one(stay("P-b03c", "b03-c", 3, "2026-08-04", adm="2026-08-04", gender="M", birth="1990-01-01",
                                  dx=[("O80.000", "单胎顺产")]), "R03")
    assert Story(engine).one(stay("P-b03d", "b03-d", 3, "2026-08-04", adm="2026-08-04", gender="F", birth="1990-01-01",
                                  dx=[("O80.000", "单胎顺产")]), "R03") is None


def test_r03_one_alert_per_contradicting_diagnosis(engine: Engine) -> None:
    """R03 on a list of diagnoses: a man's settlement with hypertension, diabetes and 绝经后骨质疏松 (M81.0,
    women only) flags M81.0 alone; plain osteoporosis (M81) for him is not flagged; a woman with
    postmenopausal osteoporosis neither."""
    alerts = Story(engine).send(ev("P-b03e", "b03-e", "2026-08-05", scene=6, gender="M",
                                   dx=[*HTN, *DM2, ("M81.000", "绝经后骨质疏松")]))
    r03 = rule_alerts(alerts, "R03")
    assert len(r03) == 1 and "M81.0" in r03[0]["message_zh"]
    assert Story(engine).one(ev("P-b03f", "b03-f", "2026-08-05", scene=6, gender="M",
                                dx=[("M81.900", "骨质疏松")]), "R03") is None
    assert Story(engine).one(ev("P-b03g", "b03-g", "2026-08-05", scene=6, gender="F",
                                dx=[("M81.000", "绝经后骨质疏松")]), "R03") is None


# -- R06 诊断与年龄不符 ------------------------------------------------------------------------------------


def test_r06_menopause_diagnosis_the_day_before_her_40th_birthday(engine: Engine) -> None:
    """R06 at a birthday: 绝经期状态 (N95.1, from 40) recorded the day before a woman's 40th birthday is
    flagged; on the birthday itself it is not."""
    a = Story(engine).one(ev("P-b06a", "b06-a", "2026-09-14", gender="F", birth="1986-09-15",
                             dx=[("N95.100", "绝经期状态")]), "R06")
    assert a is not None and "39岁" in a["message_zh"] and "39 years" in a["message_en"]
    assert Story(engine).one(ev("P-b06b", "b06-b", "2026-09-15", gender="F", birth="1986-09-15",
                                dx=[("N95.100", "绝经期状态")]), "R06") is None


def test_r06_newborn_jaundice_judged_at_admission(engine: Engine) -> None:
    """R06 inside a stay (docs/rules.md, *Dates*: "age for diagnosis rules (R06) — inpatient: the age at
    admission"): a baby admitted on day 20 of life with 新生儿黄疸 (P59, first 28 days) and settled on
    day 35 is not flagged; a baby admitted on day 40 with the same diagnosis is."""
    born = "2026-01-01"
    assert Story(engine).one(stay("P-b06c", "b06-c", 8, "2026-02-05", [bed("1", "2026-01-21", 15)], adm="2026-01-21",
                                  dis="2026-02-05", birth=born, gender="F", dx=[("P59.900", "新生儿黄疸")]), "R06") is None
    a = Story(engine).one(stay("P-b06d", "b06-d", 3, "2026-02-10", adm="2026-02-10", birth=born, gender="F",
                               dx=[("P59.900", "新生儿黄疸")]), "R06")
    assert a is not None and "40天" in a["message_zh"]


def test_r06_upper_age_bounds(engine: Engine) -> None:
    """R06 upper bounds: 月经过多 (N92, up to 60) for a woman of 61 is flagged, for one of 60 years and
    11 months it is not; 老年 (R54, from 60) for a man of 59 is flagged."""
    assert Story(engine).one(ev("P-b06e", "b06-e", "2026-09-20", gender="F", birth="1965-09-01",
                                dx=[("N92.000", "月经过多")]), "R06")
    assert Story(engine).one(ev("P-b06f", "b06-f", "2026-09-20", gender="F", birth="1965-10-25",
                                dx=[("N92.000", "月经过多")]), "R06") is None
    assert Story(engine).one(ev("P-b06g", "b06-g", "2026-09-20", birth="1967-01-01", dx=[("R54.x00", "老年")]), "R06")


# -- R07 限工伤/生育保险 -----------------------------------------------------------------------------------


def test_r07_hcg_for_an_employee_insured_woman(engine: Engine) -> None:
    """R07: 注射用绒促性素 (maternity insurance only) in a fertility clinic on employee insurance (310) is
    flagged; the same injection settled on maternity insurance (510) is not; mifepristone (510, 310, 390)
    for the 310 patient is not."""
    items = [line("1", HCG, qty=2, price=18.0), line("2", MIFEPRISTONE, qty=1, price=30.0, days=1)]
    alerts = Story(engine).send(ev("P-b07a", "b07-a", "2026-10-08", scene=6, gender="F", birth="1990-01-01", ins="310",
                                   dx=[("N97.900", "女性不孕症")], items=items))
    r07 = rule_alerts(alerts, "R07")
    assert [a["line_ids"] for a in r07] == [["1"]] and "310" in r07[0]["message_zh"] and "510" in r07[0]["message_zh"]
    assert Story(engine).one(ev("P-b07b", "b07-b", "2026-10-08", scene=6, gender="F", birth="1990-01-01", ins="510",
                                dx=[("N97.900", "女性不孕症")], items=items), "R07") is None


def test_r07_work_injury_drug_ordered_in_a_residents_stay(engine: Engine) -> None:
    """R07 at order time (scene 4): 鼠神经生长因子 (工伤 only) ordered for a resident-insured (390) patient
    after a fall at home is warned; for the worker whose stay is a work injury (410) it is not."""
    for pid, ins, fires in (("P-b07c", "390", True), ("P-b07d", "410", False)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-10-09", adm="2026-10-09", ins=ins, dx=[("S72.000", "股骨颈骨折")]))
        a = s.one(stay(pid, f"{pid}-ord", 4, "2026-10-10", [line("1", MOUSE_NGF, qty=1, price=160.0, start="2026-10-10")],
                       adm="2026-10-09", ins=ins, dx=[("S72.000", "股骨颈骨折")]), "R07")
        assert (a is not None) is fires


def test_r07_tubal_ligation_and_no_insurance_type(engine: Engine) -> None:
    """R07 on a service at settlement: 输卵管结扎术 (maternity insurance only) settled on a caesarean stay
    under employee insurance is flagged; an event that carries no insurance type is not judged (R07's
    description: "Not judged when the event carries no insurance_type")."""
    def settle(pid: str, ins: str | None) -> dict[str, Any]:
        return stay(pid, f"{pid}-set", 8, "2026-10-16", [line("1", CAESAREAN, "service", 1, 1800.0, start="2026-10-12"),
                                                         line("2", TUBAL_LIGATION, "service", 1, 500.0, start="2026-10-12")],
                    adm="2026-10-11", dis="2026-10-16", gender="F", birth="1991-01-01", ins=ins,
                    dx=[("O82.000", "经剖宫产术的单胎分娩")])
    assert [a["line_ids"] for a in rule_alerts(Story(engine).send(settle("P-b07e", "310")), "R07")] == [["2"]]
    assert not rule_alerts(Story(engine).send(settle("P-b07f", None)), "R07")


# -- R09 限就医方式/科室 -----------------------------------------------------------------------------------


def test_r09_inpatient_only_injection_in_the_clinic(engine: Engine) -> None:
    """R09: 注射用奥美拉唑钠 (限住院) on an outpatient prescription with omeprazole capsules: the injection
    alone is flagged; the same injection ordered in a stay is not."""
    alerts = Story(engine).send(ev("P-b09a", "b09-a", "2026-11-02", dx=[("K25.900", "胃溃疡")],
                                   items=[line("1", OMEPRAZOLE_CAP, qty=14, price=1.0, days=7),
                                          line("2", OMEPRAZOLE_INJ, qty=3, price=30.0)]))
    r09 = rule_alerts(alerts, "R09")
    assert [a["line_ids"] for a in r09] == [["2"]] and "门诊" in r09[0]["message_zh"]
    s = Story(engine)
    s.send(stay("P-b09b", "b09-adm", 3, "2026-11-02", adm="2026-11-02", dx=[("K25.900", "胃溃疡")]))
    assert s.one(stay("P-b09b", "b09-ord", 4, "2026-11-02", [line("1", OMEPRAZOLE_INJ, qty=2, price=30.0, start="2026-11-02")],
                      adm="2026-11-02", dx=[("K25.900", "胃溃疡")]), "R09") is None


def test_r09_rehabilitation_outside_the_rehabilitation_department(engine: Engine) -> None:
    """R09 by department: 运动疗法 (限康复科 A21) billed by the TCM department (A50) is flagged; billed by a
    sub-unit of rehabilitation (A21.02, sent as ``A2102``) it is not; an event that names no department
    is not judged (R09: "The department check is skipped when the event names none")."""
    def visit(pid: str, dept: str | None) -> dict[str, Any]:
        return ev(pid, f"{pid}-v", "2026-11-03", scene=6, dx=[("M54.500", "腰痛")], department=dept,
                  items=[line("1", EXERCISE_THERAPY, "service", 1, 40.0)])
    a = Story(engine).one(visit("P-b09c", "A50"), "R09")
    assert a is not None and "A50" in a["message_zh"] and "A21" in a["message_zh"]
    assert Story(engine).one(visit("P-b09d", "A2102"), "R09") is None
    assert Story(engine).one(visit("P-b09e", None), "R09") is None


def test_r09_inpatient_antibiotic_bought_at_a_pharmacy(engine: Engine) -> None:
    """R09 at a pharmacy (scene 10): 注射用美罗培南 (限住院) bought at a retail pharmacy is flagged;
    amoxicillin bought with it is not."""
    alerts = Story(engine).send(ev("P-b09f", "b09-f", "2026-11-04", scene=10, inst="PH3", level=None, etype="pharmacy",
                                   items=[line("1", AMOXICILLIN, qty=24, price=0.6, days=4),
                                          line("2", MEROPENEM, qty=6, price=80.0)]))
    assert [a["line_ids"] for a in rule_alerts(alerts, "R09")] == [["2"]]


# -- R11 限适应症 ------------------------------------------------------------------------------------------


def test_r11_clopidogrel_for_hypertension_only(engine: Engine) -> None:
    """R11: clopidogrel on a hypertension-only visit is flagged, naming the diagnoses; the same visit with
    a recorded old cerebral infarction (I63) besides is not."""
    items = [line("1", CLOPIDOGREL, qty=28, price=1.2, days=28), line("2", AMLODIPINE_JX, qty=28, price=0.5, days=28)]
    a = Story(engine).one(ev("P-b11a", "b11-a", "2026-12-01", dx=HTN, items=items), "R11")
    assert a is not None and a["line_ids"] == ["1"] and "I10.x00" in a["message_zh"]
    assert Story(engine).one(ev("P-b11b", "b11-b", "2026-12-01", dx=[*HTN, ("I63.900", "陈旧性脑梗死")], items=items),
                             "R11") is None


def test_r11_order_without_diagnosis_reads_the_stays(engine: Engine) -> None:
    """R11 inside a stay: the scene-4 order of human albumin carries no diagnosis, so the stay's main
    diagnosis recorded at admission decides — cirrhosis (K74) is an indication, pneumonia is not."""
    for pid, dx, fires in (("P-b11c", [("K74.600", "肝硬化")], False), ("P-b11d", PNEUMONIA, True)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-12-02", adm="2026-12-02", dx=dx))
        a = s.one(stay(pid, f"{pid}-ord", 4, "2026-12-03", [line("1", ALBUMIN, qty=2, price=400.0, start="2026-12-03")],
                       adm="2026-12-02", dx=[]), "R11")
        assert (a is not None) is fires


def test_r11_no_diagnosis_at_all_is_r37s(engine: Engine) -> None:
    """R11 without any diagnosis (docs/rules.md, *Limits and choices*: "R11 does not judge a request with
    no diagnosis at all … R37 reports those instead"): clopidogrel prescribed with no diagnosis gets R37,
    not R11; oxytocin for a delivery (chapter O) is within its indication."""
    alerts = Story(engine).send(ev("P-b11e", "b11-e", "2026-12-04", items=[line("1", CLOPIDOGREL, qty=28, price=1.2, days=28)]))
    assert not rule_alerts(alerts, "R11") and rule_alerts(alerts, "R37")
    s = Story(engine)
    s.send(stay("P-b11f", "b11-adm", 3, "2026-12-04", adm="2026-12-04", gender="F", birth="1995-01-01",
                dx=[("O80.000", "单胎顺产")]))
    assert s.one(stay("P-b11f", "b11-ord", 4, "2026-12-04", [line("1", OXYTOCIN, qty=1, price=5.0, start="2026-12-04")],
                      adm="2026-12-04", gender="F", birth="1995-01-01", dx=[("O80.000", "单胎顺产")]), "R11") is None


# -- R37 处方无诊断 ----------------------------------------------------------------------------------------


def test_r37_two_line_prescription_without_diagnosis(engine: Engine) -> None:
    """R37: an outpatient prescription of amoxicillin and ambroxol with no diagnosis names both lines;
    the same prescription with 急性支气管炎 is not flagged."""
    items = [line("1", AMOXICILLIN, qty=24, price=0.6, days=4), line("2", AMBROXOL, qty=12, price=0.5, days=4)]
    a = Story(engine).one(ev("P-b37a", "b37-a", "2026-03-02", scene=6, items=items), "R37")
    assert a is not None and a["line_ids"] == ["1", "2"] and "共2项" in a["message_zh"] and a["amount"] == 20.4
    assert Story(engine).one(ev("P-b37b", "b37-b", "2026-03-02", scene=6, dx=BRONCHITIS, items=items), "R37") is None


def test_r37_pharmacy_purchase_and_tests_only(engine: Engine) -> None:
    """R37 out of scope: a pharmacy purchase (scene 10) without a diagnosis (R37: "Pharmacy purchases …
    are out of scope") and a lab-only visit without one are not flagged; decoction pieces prescribed
    without a diagnosis are."""
    assert Story(engine).one(ev("P-b37c", "b37-c", "2026-03-03", scene=10, inst="PH1", level=None, etype="pharmacy",
                                items=[line("1", AMOXICILLIN, qty=24, price=0.6, days=4)]), "R37") is None
    assert Story(engine).one(ev("P-b37d", "b37-d", "2026-03-03", scene=6,
                                items=[line("1", BLOOD_COUNT, "service", 1, 20.0)]), "R37") is None
    a = Story(engine).one(ev("P-b37e", "b37-e", "2026-03-03", scene=2,
                             items=[line("1", GANCAO, "herb", 10, 0.2, days=7)]), "R37")
    assert a is not None and a["line_ids"] == ["1"]


def test_r37_prescription_sent_again_with_its_diagnosis(engine: Engine) -> None:
    """R37 through the day of a visit: the order (scene 2) without a diagnosis is warned; the doctor adds
    the diagnosis and the pre-settlement (scene 7) of the same encounter is not flagged."""
    s = Story(engine)
    items = [line("1", AMLODIPINE_JX, qty=28, price=0.5, days=28)]
    assert s.one(ev("P-b37f", "b37-f1", "2026-03-04", enc="b37-f", items=items), "R37")
    assert s.one(ev("P-b37f", "b37-f2", "2026-03-04T09:20:00+08:00", scene=7, enc="b37-f", dx=HTN, items=items),
                 "R37") is None


# -- R14 分解收费 ------------------------------------------------------------------------------------------


def test_r14_liver_tests_charged_one_by_one_at_the_clinic(engine: Engine) -> None:
    """R14 at an outpatient settlement (scene 6): ALT, AST, total bilirubin and albumin charged as four
    single tests instead of 肝功能组合 (4 of its components: its minimum) are flagged, naming the bundle;
    three of them are not (below the minimum)."""
    four = [line("1", ALT, "service", 1, 5.0), line("2", AST, "service", 1, 5.0), line("3", TBIL, "service", 1, 5.0),
            line("4", ALB_TEST, "service", 1, 5.0), line("5", BLOOD_COUNT, "service", 1, 20.0)]
    a = Story(engine).one(ev("P-b14a", "b14-a", "2026-03-09", scene=6, dx=[("K74.600", "肝硬化")], items=four), "R14")
    assert a is not None and a["line_ids"] == ["1", "2", "3", "4"] and a["amount"] == 20.0 and LIVER_PANEL in a["message_zh"]
    assert Story(engine).one(ev("P-b14b", "b14-b", "2026-03-09", scene=6, dx=[("K74.600", "肝硬化")],
                                items=four[1:]), "R14") is None


def test_r14_renal_tests_at_order_time_and_with_the_panel(engine: Engine) -> None:
    """R14 at order time (scene 4): urea, creatinine and uric acid ordered apart in a stay are warned; an
    order of 肾功能组合 itself with a repeat creatinine is not R14's (the panel is charged)."""
    s = Story(engine)
    s.send(stay("P-b14c", "b14-adm", 3, "2026-03-10", adm="2026-03-10", dx=[("N18.900", "慢性肾脏病")]))
    a = s.one(stay("P-b14c", "b14-o1", 4, "2026-03-10", [line("1", UREA, "service", 1, 6.0, start="2026-03-10"),
                                                        line("2", CREATININE, "service", 1, 6.0, start="2026-03-10"),
                                                        line("3", URIC, "service", 1, 6.0, start="2026-03-10")],
                   adm="2026-03-10", dx=[("N18.900", "慢性肾脏病")]), "R14")
    assert a is not None and a["line_ids"] == ["1", "2", "3"]
    t = Story(engine)
    t.send(stay("P-b14d", "b14d-adm", 3, "2026-03-10", adm="2026-03-10", dx=[("N18.900", "慢性肾脏病")]))
    assert t.one(stay("P-b14d", "b14d-o1", 4, "2026-03-10", [line("1", "002503079000000", "service", 1, 15.0, start="2026-03-10"),
                                                            line("2", CREATININE, "service", 1, 6.0, start="2026-03-10")],
                      adm="2026-03-10", dx=[("N18.900", "慢性肾脏病")]), "R14") is None


# -- R17 限支付疗程 ----------------------------------------------------------------------------------------


def test_r17_edaravone_beyond_fourteen_days_of_a_stay(engine: Engine) -> None:
    """R17 inside a stay (scene 4 orders): edaravone (paid for 14 days) first ordered on 05-01; an order
    dated 05-15 (day 15 of the course) is flagged naming the first date; one dated 05-14 (day 14) is not."""
    for pid, last, fires in (("P-b17a", "2026-05-15", True), ("P-b17b", "2026-05-14", False)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-05-01", adm="2026-05-01", dx=STROKE))
        s.send(stay(pid, f"{pid}-o1", 4, "2026-05-01", [line("1", EDARAVONE, qty=2, price=40.0, start="2026-05-01")],
                    adm="2026-05-01", dx=STROKE))
        a = s.one(stay(pid, f"{pid}-o2", 4, last, [line("1", EDARAVONE, qty=2, price=40.0, start=last)],
                       adm="2026-05-01", dx=STROKE), "R17")
        assert (a is not None) is fires
        if a is not None:
            assert "2026-05-01" in a["message_zh"] and "15天" in a["message_zh"] and "14天" in a["message_zh"]


def test_r17_course_continues_across_a_transfer(engine: Engine) -> None:
    """R17 across institutions: ginkgo-leaf injection (14 days) started at H1 on 05-01, the patient is
    transferred and H2 orders it again on 05-20 — the same course (pause 19 days ≤ 30), day 20: flagged.
    A patient whose H2 stay starts 45 days after the H1 course is on a new course: not flagged."""
    for pid, again, fires in (("P-b17c", "2026-05-20", True), ("P-b17d", "2026-06-15", False)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-o1", 4, "2026-05-01", [line("1", GINKGO, qty=1, price=30.0, start="2026-05-01")],
                    adm="2026-05-01", dx=STROKE))
        a = s.one(stay(pid, f"{pid}-o2", 4, again, [line("1", GINKGO, qty=1, price=30.0, start=again)], inst="H2",
                       adm=again, dx=STROKE), "R17")
        assert (a is not None) is fires


def test_r14_liver_panel_split_over_two_orders_of_one_day(engine: Engine) -> None:
    """R14 (window ``enc``): ALT + AST in one scene-4 order and TBIL + albumin in the next order five minutes
    later, same stay, same day — four components of 肝功能组合 charged apart: should be flagged.
    Handed over by h21a, fixed in R14 1.2.0 (docs/rules.md *Bundles by service day and across a stay's orders*):
    the stay's earlier charges of the day count, and the evidence names the earlier order."""
    s = Story(engine)
    s.send(stay("P-z14a", "z14a-adm", 3, "2026-03-10", adm="2026-03-10", dx=[("K74.600", "肝硬化")]))
    s.send(stay("P-z14a", "z14a-o1", 4, "2026-03-10T09:00:00+08:00",
                [line("1", ALT, "service", 1, 5.0, start="2026-03-10"), line("2", AST, "service", 1, 5.0, start="2026-03-10")],
                adm="2026-03-10", dx=[("K74.600", "肝硬化")]))
    a = s.one(stay("P-z14a", "z14a-o2", 4, "2026-03-10T09:05:00+08:00",
                   [line("1", TBIL, "service", 1, 5.0, start="2026-03-10"), line("2", ALB_TEST, "service", 1, 5.0, start="2026-03-10")],
                   adm="2026-03-10", dx=[("K74.600", "肝硬化")]), "R14")
    assert a is not None
    assert a["line_ids"] == ["1", "2"]
    assert {(e["event_id"], e["item_code"]) for e in evidence_events(a)} >= {("z14a-o1", ALT), ("z14a-o1", AST)}


def test_r14_single_lipid_tests_on_different_weeks_of_one_settlement(engine: Engine) -> None:
    """R14 near miss: a 25-day stay settled with total cholesterol on 03-02, triglycerides on 03-09 and HDL
    on 03-16 (single follow-up tests a week apart) is not one 血脂四项 split up: should NOT be flagged.
    Handed over by h21a, fixed in R14 1.2.0: components count per service day."""
    a = Story(engine).one(stay("P-z14b", "z14b-set", 8, "2026-03-25", [
        line("1", TC, "service", 1, 5.0, start="2026-03-02"), line("2", TG, "service", 1, 5.0, start="2026-03-09"),
        line("3", HDL, "service", 1, 5.0, start="2026-03-16"), bed("4", "2026-03-01", 24)],
        adm="2026-03-01", dis="2026-03-25", dx=[("E78.500", "高脂血症")]), "R14")
    assert a is None


def test_r17_settlement_carrying_sixteen_daily_edaravone_lines(engine: Engine) -> None:
    """R17 (handed over by h21a, fixed in R17 1.1.0): a HIS that sends no scene-4 orders settles a stroke stay
    with one edaravone line a day from 05-01 to 05-16 (course limit 14 days): the lines of day 15 and 16 are
    flagged; 14 daily lines are not (docs/rules.md *Courses within one request*: the request's own earlier
    lines count, by service date)."""
    for n, expected in ((16, ["15", "16"]), (14, [])):
        items = [line(str(i + 1), EDARAVONE, qty=2, price=40.0, start=f"2026-05-{i + 1:02d}") for i in range(n)]
        alerts = Story(engine).send(stay(f"P-z17a{n}", f"z17a{n}-set", 8, "2026-05-20", items, adm="2026-05-01",
                                         dis="2026-05-20", dx=STROKE))
        assert sorted(lid for a in rule_alerts(alerts, "R17") for lid in a["line_ids"]) == expected
        for a in rule_alerts(alerts, "R17"):
            assert "2026-05-01" in a["message_zh"]


def test_r17_evidence_names_the_course_start(engine: Engine) -> None:
    """R17 is history-based (the course began in an earlier event, here at another hospital): its evidence
    names the earlier event(s) of the course — event id, institution, date (issue 10, *Texts and evidence*;
    docs/rules.md *Courses within one request*)."""
    s = Story(engine)
    s.send(stay("P-z17c", "z17c-o1", 4, "2026-05-01", [line("1", GINKGO, qty=1, price=30.0, start="2026-05-01")],
                adm="2026-05-01", dx=STROKE))
    s.send(stay("P-z17c", "z17c-o2", 4, "2026-05-05", [line("1", GINKGO, qty=1, price=30.0, start="2026-05-05")],
                adm="2026-05-01", dx=STROKE))
    a = s.one(stay("P-z17c", "z17c-o3", 4, "2026-05-20", [line("1", GINKGO, qty=1, price=30.0, start="2026-05-20")],
                   inst="H2", adm="2026-05-20", dx=STROKE), "R17")
    assert a is not None
    assert [(e["event_id"], e["institution_id"], e["date"]) for e in evidence_events(a)] == [
        ("z17c-o1", "H1", "2026-05-01"), ("z17c-o2", "H1", "2026-05-05"), ("z17c-o3", "H2", "2026-05-20")]


def test_r37_settlement_of_an_encounter_whose_order_carried_the_diagnosis(engine: Engine) -> None:
    """R37: the prescription was ordered (scene 2) with its diagnosis; the settlement (scene 6) of the same
    encounter repeats the lines without diagnoses — the prescription had a diagnosis: should NOT be flagged.
    Handed over by h21a; decided and fixed in R37 1.1.0 (docs/rules.md *处方无诊断 is about the prescription*):
    the V row remembers that the visit carried a diagnosis. A settlement of another visit is still flagged."""
    s = Story(engine)
    items = [line("1", AMLODIPINE_JX, qty=28, price=0.5, days=28)]
    assert s.one(ev("P-z37a", "z37a-1", "2026-03-04", enc="z37a", dx=HTN, items=items), "R37") is None
    assert s.one(ev("P-z37a", "z37a-2", "2026-03-04T09:30:00+08:00", scene=6, enc="z37a", items=items), "R37") is None
    other = ev("P-z37a", "z37a-3", "2026-03-04T10:00:00+08:00", scene=6, enc="z37b", items=items)
    assert s.one(other, "R37") is not None


def test_r17_hyperbaric_oxygen_sessions_after_a_pause(engine: Engine) -> None:
    """R17 on a service (高压氧舱治疗, paid for 30 days): a session on 03-31 after one on 03-01 is day 31 of
    the same course (pause 30 days, not more than gap_days): flagged; a session on 04-01 after a pause of
    31 days starts a new course: not flagged."""
    for pid, again, fires in (("P-b17e", "2026-03-31", True), ("P-b17f", "2026-04-01", False)):
        s = Story(engine)
        s.send(ev(pid, f"{pid}-1", "2026-03-01", scene=6, dx=[("T70.300", "减压病")],
                  items=[line("1", HYPERBARIC, "service", 1, 150.0)]))
        a = s.one(ev(pid, f"{pid}-2", again, scene=6, dx=[("T70.300", "减压病")],
                     items=[line("1", HYPERBARIC, "service", 1, 150.0)]), "R17")
        assert (a is not None) is fires


# -- R23 频繁住院 ------------------------------------------------------------------------------------------


def _admit(s: Story, pid: str, eid: str, inst: str, adm: str, dis: str, dx: list[tuple[str, str]] = PNEUMONIA) -> None:
    """One whole stay: the admission (scene 3) and its settlement with the discharge (scene 8)."""
    s.send(stay(pid, eid, 3, adm, adm=adm, inst=inst, dx=dx))
    s.send(stay(pid, f"{eid}-set", 8, dis, [bed("1", adm, 3)], adm=adm, dis=dis, inst=inst, dx=dx))


def test_r23_fourth_admission_in_a_year_at_two_hospitals(engine: Engine) -> None:
    """R23: stays at H1 (01-10), H2 (04-02) and H1 (07-15); the admission at H2 on 11-20 is the fourth
    within 365 days: flagged, its evidence naming each earlier admission by event id, institution and
    date. A patient whose first stay was 13 months earlier has three within the year: not flagged."""
    s = Story(engine)
    for eid, inst, adm in (("b23-1", "H1", "2026-01-10"), ("b23-2", "H2", "2026-04-02"), ("b23-3", "H1", "2026-07-15")):
        _admit(s, "P-b23a", eid, inst, adm, adm[:8] + "20")
    a = s.one(stay("P-b23a", "b23-4", 3, "2026-11-20", adm="2026-11-20", inst="H2", dx=PNEUMONIA), "R23")
    assert a is not None and "第4次" in a["message_zh"]
    assert [(e["event_id"], e["institution_id"], e["admitted_on"]) for e in evidence_events(a)] == [
        ("b23-1", "H1", "2026-01-10"), ("b23-2", "H2", "2026-04-02"), ("b23-3", "H1", "2026-07-15")]
    t = Story(engine)
    for eid, inst, adm in (("b23b-1", "H1", "2025-10-10"), ("b23b-2", "H2", "2026-04-02"), ("b23b-3", "H1", "2026-07-15")):
        _admit(t, "P-b23b", eid, inst, adm, adm[:8] + "20")
    assert t.one(stay("P-b23b", "b23b-4", 3, "2026-11-20", adm="2026-11-20", inst="H2", dx=PNEUMONIA), "R23") is None


def test_r23_chemotherapy_cycles_neither_count_nor_fire(engine: Engine) -> None:
    """R23 and planned cycles (R23's description: Z51.1 "neither count nor fire"): four chemotherapy
    admissions in five months, then an admission for pneumonia — one non-exempt admission: not flagged;
    nor is a fifth chemotherapy cycle."""
    s = Story(engine)
    for i, month in enumerate(("02", "03", "04", "05")):
        _admit(s, "P-b23c", f"b23c-{i}", "H1", f"2026-{month}-03", f"2026-{month}-06", dx=CHEMO)
    assert s.one(stay("P-b23c", "b23c-p", 3, "2026-06-20", adm="2026-06-20", inst="H2", dx=PNEUMONIA), "R23") is None
    assert s.one(stay("P-b23c", "b23c-5", 3, "2026-07-03", adm="2026-07-03", dx=CHEMO), "R23") is None


def test_r23_admission_registered_in_error_and_re_sent(engine: Engine) -> None:
    """R23 and the HIS's corrections: an admission registered in error and cancelled (撤销入院) is not a
    stay, and an admission re-registered under a new event id (same encounter) is one stay — the next
    admission is the third: not flagged. Without the cancellation it is the fourth: flagged."""
    for pid, cancel, fires in (("P-b23d", True, False), ("P-b23e", False, True)):
        s = Story(engine)
        _admit(s, pid, f"{pid}-1", "H1", "2026-02-01", "2026-02-08")
        wrong = stay(pid, f"{pid}-2", 3, "2026-03-01", adm="2026-03-01", inst="H1", dx=PNEUMONIA, enc=f"{pid}-wrong")
        s.send(wrong)
        if cancel:
            s.send(cancellation(wrong, f"{pid}-2x", "2026-03-01T09:30:00+08:00"))
        s.send(stay(pid, f"{pid}-3", 3, "2026-05-01", adm="2026-05-01", inst="H2", dx=PNEUMONIA, enc=f"{pid}-may"))
        s.send(stay(pid, f"{pid}-3r", 3, "2026-05-01T09:40:00+08:00", adm="2026-05-01", inst="H2", dx=PNEUMONIA,
                    enc=f"{pid}-may"))
        s.send(stay(pid, f"{pid}-3s", 8, "2026-05-09", [bed("1", "2026-05-01", 8)], adm="2026-05-01", dis="2026-05-09",
                    inst="H2", dx=PNEUMONIA, enc=f"{pid}-may"))
        a = s.one(stay(pid, f"{pid}-4", 3, "2026-08-01", adm="2026-08-01", inst="H1", dx=PNEUMONIA), "R23")
        assert (a is not None) is fires


# -- R25 频繁购药 ------------------------------------------------------------------------------------------


def _buy(pid: str, eid: str, when: str, code: str = METFORMIN_VBP, inst: str = "PH1", scene: int = 10,
         enc: str | None = None) -> dict[str, Any]:
    etype = "pharmacy" if scene == 10 else "outpatient"
    return ev(pid, eid, when, scene=scene, inst=inst, level=None if scene == 10 else 3, etype=etype, enc=enc,
              dx=DM2 if scene != 10 else None, items=[line("1", code, qty=30, price=0.2, days=10)])


def test_r25_fifth_metformin_purchase_of_march_across_pharmacies_and_a_clinic(engine: Engine) -> None:
    """R25: metformin bought at PH1, PH2, PH1 (another manufacturer) and settled at a hospital clinic,
    then at PH3 on 03-29 — the fifth purchase of the ingredient in March: flagged, the evidence naming
    the four earlier ones. The same fifth purchase on 04-01 is the first of April: not flagged."""
    for pid, fifth, fires in (("P-b25a", "2026-03-29", True), ("P-b25b", "2026-04-01", False)):
        s = Story(engine)
        s.send(_buy(pid, f"{pid}-1", "2026-03-02"))
        s.send(_buy(pid, f"{pid}-2", "2026-03-08", inst="PH2"))
        s.send(_buy(pid, f"{pid}-3", "2026-03-15", code=METFORMIN_BMS))
        s.send(_buy(pid, f"{pid}-4", "2026-03-22", inst="H1", scene=6))
        a = s.one(_buy(pid, f"{pid}-5", fifth, inst="PH3"), "R25")
        assert (a is not None) is fires
        if a is not None:
            assert "第5次" in a["message_zh"]
            assert [(e["event_id"], e["institution_id"], e["date"]) for e in evidence_events(a)][:4] == [
                (f"{pid}-1", "PH1", "2026-03-02"), (f"{pid}-2", "PH2", "2026-03-08"), (f"{pid}-3", "PH1", "2026-03-15"),
                (f"{pid}-4", "H1", "2026-03-22")]


def test_r25_purchases_around_new_year(engine: Engine) -> None:
    """R25 at the year boundary: four purchases in December 2026, then one on 2027-01-02 — the first of
    January: not flagged; a fifth on 12-31 is: flagged, in month 2026-12."""
    s = Story(engine)
    for i, day in enumerate(("05", "12", "19", "26")):
        s.send(_buy("P-b25c", f"b25c-{i}", f"2026-12-{day}", inst=("PH1", "PH2")[i % 2]))
    assert s.one(_buy("P-b25c", "b25c-jan", "2027-01-02"), "R25") is None
    t = Story(engine)
    for i, day in enumerate(("05", "12", "19", "26")):
        t.send(_buy("P-b25d", f"b25d-{i}", f"2026-12-{day}", inst=("PH1", "PH2")[i % 2]))
    a = t.one(_buy("P-b25d", "b25d-dec", "2026-12-31"), "R25")
    assert a is not None and "2026-12" in a["message_zh"]


def test_r25_pre_settlement_then_settlement_is_one_purchase(engine: Engine) -> None:
    """R25 and a visit sent twice: the fourth purchase of the month is pre-settled (scene 7) and then
    settled (scene 6) as the same encounter — one purchase: the settlement is not flagged; the next
    purchase (the fifth) is."""
    s = Story(engine)
    for i, day in enumerate(("03", "09", "15")):
        s.send(_buy("P-b25e", f"b25e-{i}", f"2026-05-{day}"))
    s.send(_buy("P-b25e", "b25e-pre", "2026-05-20", inst="H1", scene=7, enc="b25e-visit"))
    assert s.one(_buy("P-b25e", "b25e-set", "2026-05-20T09:30:00+08:00", inst="H1", scene=6, enc="b25e-visit"), "R25") is None
    assert s.one(_buy("P-b25e", "b25e-5", "2026-05-27", inst="PH2"), "R25")


def test_r25_discharge_medication_counts(engine: Engine) -> None:
    """R25 with discharge medication (R25's description: "discharge medication included"): three pharmacy
    purchases, a stay settled on 06-12 sending metformin home (出院带药), then a purchase on 06-25 — the
    fifth supply of the month: flagged, naming the discharge among the earlier events."""
    s = Story(engine)
    for i, day in enumerate(("01", "03", "05")):
        s.send(_buy("P-b25f", f"b25f-{i}", f"2026-06-{day}"))
    s.send(stay("P-b25f", "b25f-dis", 8, "2026-06-12", [bed("1", "2026-06-06", 6),
                                                        line("2", METFORMIN_VBP, qty=30, price=0.2, days=10,
                                                             start="2026-06-12", take_home=True)],
                adm="2026-06-06", dis="2026-06-12", dx=DM2))
    a = s.one(_buy("P-b25f", "b25f-5", "2026-06-25"), "R25")
    assert a is not None and "b25f-dis" in [e["event_id"] for e in evidence_events(a)]


# -- R28 住院天数异常 --------------------------------------------------------------------------------------


def test_r28_pneumonia_stay_at_twice_the_reference(engine: Engine) -> None:
    """R28: pneumonia (reference 9 days, factor 2): a stay of 19 days is flagged, one of 18 is not."""
    for pid, dis, fires in (("P-b28a", "2026-04-20", True), ("P-b28b", "2026-04-19", False)):
        a = Story(engine).one(stay(pid, f"{pid}-set", 8, dis, [bed("1", "2026-04-01", 18)], adm="2026-04-01", dis=dis,
                                   dx=PNEUMONIA), "R28")
        assert (a is not None) is fires


def test_r28_order_on_day_25_of_a_stroke_stay(engine: Engine) -> None:
    """R28 at order time (scene 4), the main diagnosis recorded at admission: cerebral infarction
    (reference 12 days): an order on day 25 after admission is warned, one on day 24 is not."""
    for pid, when, fires in (("P-b28c", "2026-01-26", True), ("P-b28d", "2026-01-25", False)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-01-01", adm="2026-01-01", dx=STROKE))
        a = s.one(stay(pid, f"{pid}-ord", 4, when, [line("1", INPT_CONSULT, "service", 1, 20.0, start=when, unit="日")],
                       adm="2026-01-01", dx=[]), "R28")
        assert (a is not None) is fires


def test_r28_reference_of_the_main_diagnosis_not_a_secondary_one(engine: Engine) -> None:
    """R28 reads the MAIN diagnosis: a 10-day stay for an upper respiratory infection (reference 4) in a
    patient who also has lung cancer (secondary, reference 14) is flagged; the same stay with the cancer
    as main diagnosis is not."""
    uri = ("J06.900", "急性上呼吸道感染")
    cancer = ("C34.900", "肺恶性肿瘤")
    a = Story(engine).one(stay("P-b28e", "b28-e", 8, "2026-02-11", [bed("1", "2026-02-01", 10)], adm="2026-02-01",
                               dis="2026-02-11", dx=[uri, cancer]), "R28")
    assert a is not None and "J06.900" in a["message_zh"]
    assert Story(engine).one(stay("P-b28f", "b28-f", 8, "2026-02-11", [bed("1", "2026-02-01", 10)], adm="2026-02-01",
                                  dis="2026-02-11", dx=[cancer, uri]), "R28") is None


# -- R29 非计划再入院 --------------------------------------------------------------------------------------


def test_r29_readmission_at_another_hospital_31_days_after_discharge(engine: Engine) -> None:
    """R29: discharged from H1 on 03-10 after pneumonia, admitted to H2 on 04-10 (31 days): flagged, the
    evidence naming the H1 stay by event id, institution and discharge date; admitted on 04-11 (32 days):
    not flagged."""
    for pid, adm, fires in (("P-b29a", "2026-04-10", True), ("P-b29b", "2026-04-11", False)):
        s = Story(engine)
        _admit(s, pid, f"{pid}-1", "H1", "2026-03-01", "2026-03-10")
        a = s.one(stay(pid, f"{pid}-2", 3, adm, adm=adm, inst="H2", dx=[("I50.900", "心力衰竭")]), "R29")
        assert (a is not None) is fires
        if a is not None:
            e = evidence_events(a)
            assert [(x["event_id"], x["institution_id"], x["discharged_on"]) for x in e] == [(f"{pid}-1", "H1", "2026-03-10")]
            assert "31天" in a["message_zh"]


def test_r29_planned_chemotherapy_and_an_unplanned_return(engine: Engine) -> None:
    """R29 and planned cycles: a lung-cancer patient discharged on 05-05 comes back on 05-26 for the next
    chemotherapy cycle (Z51.1): not flagged; a patient back on 05-15 with pneumonia after the cycle is."""
    s = Story(engine)
    _admit(s, "P-b29c", "b29c-1", "H1", "2026-05-02", "2026-05-05", dx=CHEMO)
    assert s.one(stay("P-b29c", "b29c-2", 3, "2026-05-26", adm="2026-05-26", dx=CHEMO), "R29") is None
    t = Story(engine)
    _admit(t, "P-b29d", "b29d-1", "H1", "2026-05-02", "2026-05-05", dx=CHEMO)
    assert t.one(stay("P-b29d", "b29d-2", 3, "2026-05-15", adm="2026-05-15", dx=PNEUMONIA), "R29")


def test_r29_same_hospital_other_cause_and_the_first_stay(engine: Engine) -> None:
    """R29 any cause (R29's description: "any discharge at any institution"): after a hernia repair at
    H1 (discharged 09-04) the patient is admitted to H1 again on 09-09 for pneumonia: flagged. A patient's
    first stay ever is not a readmission."""
    s = Story(engine)
    _admit(s, "P-b29e", "b29e-1", "H1", "2026-09-01", "2026-09-04", dx=[("K40.900", "腹股沟疝")])
    assert s.one(stay("P-b29e", "b29e-2", 3, "2026-09-09", adm="2026-09-09", dx=PNEUMONIA), "R29")
    assert Story(engine).one(stay("P-b29f", "b29f-1", 3, "2026-09-09", adm="2026-09-09", dx=PNEUMONIA), "R29") is None


# -- R30 无指征住院(低标准入院) ---------------------------------------------------------------------------


def _exam_stay(pid: str, adm: str, dis: str, extra: float = 0.0) -> dict[str, Any]:
    items = [line("1", CT_CHEST, "service", 1, 300.0, start=adm), line("2", MRI_HEAD, "service", 1, 500.0, start=adm),
             line("3", BLOOD_COUNT, "service", 1, 20.0, start=adm), bed("4", adm, 1, 60.0)]
    if extra:
        items.append(line("5", NURSING_2, "service", 1, extra, start=adm, unit="日"))
    return stay(pid, f"{pid}-set", 8, dis, items, adm=adm, dis=dis, dx=[("R51.x00", "头痛")])


def test_r30_two_day_stay_for_scans(engine: Engine) -> None:
    """R30: a two-day stay whose charges are a chest CT, a head MRI and a blood count (820 of 880, 93 %)
    is flagged naming the examination lines; the same charges over a three-day stay are not."""
    a = Story(engine).one(_exam_stay("P-b30a", "2026-04-01", "2026-04-03"), "R30")
    assert a is not None and a["line_ids"] == ["1", "2", "3"] and a["amount"] == 880.0 and "93%" in a["message_zh"]
    assert Story(engine).one(_exam_stay("P-b30b", "2026-04-01", "2026-04-04"), "R30") is None


def test_r30_share_at_the_threshold(engine: Engine) -> None:
    """R30 at its threshold (more than 70 %): examinations 820 of 1,171.43 (70.0 %) in a one-day stay are
    not flagged; with nursing of 240 instead (820 of 1,120, 73 %) they are."""
    assert Story(engine).one(_exam_stay("P-b30c", "2026-04-01", "2026-04-02", extra=291.43), "R30") is None
    assert Story(engine).one(_exam_stay("P-b30d", "2026-04-01", "2026-04-02", extra=240.0), "R30")


def test_r30_settlement_without_lines_after_orders(engine: Engine) -> None:
    """R30 for a HIS that sends its charges as scene-4 orders and settles without lines: the stay's
    accumulated charges (scans 800 of 860) decide: flagged; a stay whose orders were mostly treatment
    (an appendectomy) is not."""
    for pid, op, fires in (("P-b30e", False, True), ("P-b30f", True, False)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, "2026-04-01", adm="2026-04-01", dx=[("R10.400", "腹痛")]))
        items = [line("1", CT_CHEST, "service", 1, 300.0, start="2026-04-01"),
                 line("2", MRI_HEAD, "service", 1, 500.0, start="2026-04-01"), bed("3", "2026-04-01", 1)]
        if op:
            items.append(line("4", APPENDECTOMY, "service", 1, 900.0, start="2026-04-01"))
        s.send(stay(pid, f"{pid}-ord", 4, "2026-04-01", items, adm="2026-04-01", dx=[("R10.400", "腹痛")]))
        a = s.one(stay(pid, f"{pid}-set", 8, "2026-04-02", [], adm="2026-04-01", dis="2026-04-02",
                       dx=[("R10.400", "腹痛")]), "R30")
        assert (a is not None) is fires


# -- R33 未使用集采中选产品 ---------------------------------------------------------------------------------


def test_r33_originator_amlodipine_in_a_three_line_prescription(engine: Engine) -> None:
    """R33: Pfizer's amlodipine (not selected) beside selected valsartan and atorvastatin: only the
    amlodipine is flagged, naming both selected amlodipine products; felodipine (no selected product of
    its ingredient and form) is not."""
    alerts = Story(engine).send(ev("P-b33a", "b33-a", "2026-06-15", scene=6, dx=HTN,
                                   items=[line("1", AMLODIPINE_PFIZER, qty=28, price=0.5, days=28),
                                          line("2", VALSARTAN_VBP, qty=28, price=1.0, days=28),
                                          line("3", ATORVASTATIN_VBP, qty=28, price=1.0, days=28),
                                          line("4", FELODIPINE, qty=28, price=1.5, days=28)]))
    r33 = rule_alerts(alerts, "R33")
    assert [a["line_ids"] for a in r33] == [["1"]]
    assert AMLODIPINE_JX in r33[0]["message_zh"] and AMLODIPINE_YZJ in r33[0]["message_zh"]


def test_r33_pharmacy_purchase_of_a_non_selected_metformin(engine: Engine) -> None:
    """R33 at a pharmacy (scene 10): BMS metformin (not selected) is flagged; the selected one is not."""
    assert Story(engine).one(_buy("P-b33b", "b33-b", "2026-06-16", code=METFORMIN_BMS), "R33")
    assert Story(engine).one(_buy("P-b33c", "b33-c", "2026-06-16", code=METFORMIN_VBP), "R33") is None


def test_r33_ceftriaxone_across_new_year_2024(engine: Engine) -> None:
    """R33 at each line's date: a stay from 2023-12-28 settled on 2024-01-03 with Roche ceftriaxone each
    day. The selected product is listed from 2024-01-01 (and R33 is in force from then): the lines of
    2023 are not flagged, the lines from 2024-01-01 are."""
    items = [line(str(i + 1), CEFTRIAXONE_ROCHE, qty=2, price=40.0, start=d)
             for i, d in enumerate(("2023-12-28", "2023-12-30", "2024-01-01", "2024-01-02"))]
    r33 = rule_alerts(Story(engine).send(stay("P-b33d", "b33-d", 8, "2024-01-03", items, adm="2023-12-28",
                                              dis="2024-01-03", dx=PNEUMONIA)), "R33")
    assert [a["line_ids"] for a in r33] == [["3"], ["4"]] and all(CEFTRIAXONE_VBP in a["message_zh"] for a in r33)


def test_r33_procurement_round_ended_before_the_settlement(data_dir: pathlib.Path) -> None:
    """R33 at the line's date, with a catalogue edition in which both selected amlodipine products leave
    the list on 2026-03-31 (a procurement round ends): a stay settled on 04-05 with Pfizer's amlodipine
    given on 03-25 — when the selected products were listed — is flagged; given on 04-02, after they left,
    it is not (nothing selected to switch to)."""
    def end_round(doc: dict[str, Any]) -> None:
        for r in doc["rows"]:
            if r["code"] in (AMLODIPINE_JX, AMLODIPINE_YZJ):
                r["effective_to"] = "2026-03-31"
    edit_json(data_dir / "kb" / "drugs.json", end_round)
    edited = Engine.load(data_dir)
    for pid, given, fires in (("P-b33e", "2026-03-25", True), ("P-b33f", "2026-04-02", False)):
        a = Story(edited).one(stay(pid, f"{pid}-set", 8, "2026-04-05", [line("1", AMLODIPINE_PFIZER, qty=2, price=0.5, start=given)],
                                   adm="2026-03-20", dis="2026-04-05", dx=HTN), "R33")
        assert (a is not None) is fires
        if a is not None:
            assert a["line_ids"] == ["1"] and AMLODIPINE_JX in a["message_zh"]


# -- R36 超说明书用量 --------------------------------------------------------------------------------------


def test_r36_amlodipine_split_over_two_manufacturers(engine: Engine) -> None:
    """R36 with 分解处方: amlodipine 28 tablets (京新) and 56 tablets (扬子江) for 28 days in one prescription
    is 3 tablets a day, above the labelled 2: both lines flagged; 28 + 28 (2 a day) is not."""
    def rx(pid: str, second: float) -> dict[str, Any]:
        return ev(pid, f"{pid}-rx", "2026-07-01", dx=HTN, items=[line("1", AMLODIPINE_JX, qty=28, price=0.5, days=28),
                                                              line("2", AMLODIPINE_YZJ, qty=second, price=0.5, days=28)])
    a = Story(engine).one(rx("P-b36a", 56), "R36")
    assert a is not None and a["line_ids"] == ["1", "2"] and "3片" in a["message_zh"]
    assert Story(engine).one(rx("P-b36b", 28), "R36") is None


def test_r36_metformin_at_the_label_maximum_and_above(engine: Engine) -> None:
    """R36 at the maximum: metformin 150 tablets for 30 days (5 a day, the labelled maximum) is not
    flagged; 165 for 30 days (5.5 a day) bought at a pharmacy is."""
    assert Story(engine).one(ev("P-b36c", "b36-c", "2026-07-02", dx=DM2,
                                items=[line("1", METFORMIN_VBP, qty=150, price=0.2, days=30)]), "R36") is None
    assert Story(engine).one(ev("P-b36d", "b36-d", "2026-07-02", scene=10, inst="PH1", level=None, etype="pharmacy",
                                items=[line("1", METFORMIN_VBP, qty=165, price=0.2, days=30)]), "R36")


def test_r36_same_ingredient_in_different_units(engine: Engine) -> None:
    """R36 does not add up different units: a child's ibuprofen suspension (1 bottle a day) and adult
    capsules (4 a day) of one ingredient on one prescription are each within their label: not flagged;
    5 capsules a day are."""
    assert Story(engine).one(ev("P-b36e", "b36-e", "2026-07-03", dx=[("R50.900", "发热")],
                                items=[line("1", IBUPROFEN_SUSP, qty=1, price=15.0, days=1),
                                       line("2", IBUPROFEN_CAP, qty=4, price=0.8, days=1)]), "R36") is None
    assert Story(engine).one(ev("P-b36f", "b36-f", "2026-07-03", dx=[("R50.900", "发热")],
                                items=[line("1", IBUPROFEN_CAP, qty=10, price=0.8, days=2)]), "R36")


# -- R41 住院期间再次入院 ----------------------------------------------------------------------------------


def test_r41_admitted_at_h2_while_the_h1_stay_is_open_and_old_open_stays(engine: Engine) -> None:
    """R41: admitted to H1 on 03-01 with no discharge recorded; admitted to H2 on 03-05: flagged, the
    evidence naming the H1 admission. A stay with no discharge recorded for more than 60 days is no
    longer held open (R41's description: "for at most max_open_days"): an admission 63 days later is not."""
    s = Story(engine)
    s.send(stay("P-b41a", "b41a-1", 3, "2026-03-01", adm="2026-03-01", dx=PNEUMONIA))
    a = s.one(stay("P-b41a", "b41a-2", 3, "2026-03-05", adm="2026-03-05", inst="H2", dx=PNEUMONIA), "R41")
    assert a is not None and [(e["event_id"], e["institution_id"], e["admitted_on"]) for e in evidence_events(a)] == [
        ("b41a-1", "H1", "2026-03-01")]
    t = Story(engine)
    t.send(stay("P-b41b", "b41b-1", 3, "2026-01-01", adm="2026-01-01", dx=PNEUMONIA))
    assert t.one(stay("P-b41b", "b41b-2", 3, "2026-03-05", adm="2026-03-05", inst="H2", dx=PNEUMONIA), "R41") is None


def test_r41_settlement_whose_admission_lies_inside_another_stay(engine: Engine) -> None:
    """R41 at settlement (a hospital that sends no admission event): H1's stay 03-01..03-10 is settled;
    H2 settles a stay admitted on 03-06: flagged. H2's stay admitted on 03-10, H1's discharge day (a
    transfer), is not."""
    for pid, adm, fires in (("P-b41c", "2026-03-06", True), ("P-b41d", "2026-03-10T14:00:00+08:00", False)):
        s = Story(engine)
        _admit(s, pid, f"{pid}-1", "H1", "2026-03-01", "2026-03-10")
        a = s.one(stay(pid, f"{pid}-2", 8, "2026-03-15", [bed("1", adm, 5)], adm=adm, dis="2026-03-15", inst="H2",
                       dx=PNEUMONIA), "R41")
        assert (a is not None) is fires


def test_r41_admission_re_sent_or_cancelled(engine: Engine) -> None:
    """R41 and the HIS's corrections: the same admission sent again under a new event id (same encounter)
    is not a second admission; an admission at H1 registered in error and cancelled leaves no open stay,
    so the admission at H2 the next day is not flagged — without the cancellation it is."""
    s = Story(engine)
    s.send(stay("P-b41e", "b41e-1", 3, "2026-03-01", adm="2026-03-01", dx=PNEUMONIA))
    assert s.one(stay("P-b41e", "b41e-1r", 3, "2026-03-01T10:00:00+08:00", adm="2026-03-01", dx=PNEUMONIA), "R41") is None
    for pid, cancel, fires in (("P-b41f", True, False), ("P-b41g", False, True)):
        t = Story(engine)
        wrong = stay(pid, f"{pid}-1", 3, "2026-03-01", adm="2026-03-01", dx=PNEUMONIA)
        t.send(wrong)
        if cancel:
            t.send(cancellation(wrong, f"{pid}-1x", "2026-03-01T11:00:00+08:00"))
        a = t.one(stay(pid, f"{pid}-2", 3, "2026-03-02", adm="2026-03-02", inst="H2", dx=PNEUMONIA), "R41")
        assert (a is not None) is fires


# -- policy citations against the documents they cite ---------------------------------------------------

# The 两库 1.0 framework's items (../shared/domain.md, "the 两库 1.0 rule framework"): code → item name.
FRAMEWORK = {
    "GZ10000301004": "区分性别使用", "GZ10000302004": "区分性别使用", "GZ10000204006": "诊断与性别不符",
    "GZ10000201005": "手术编码与性别不符", "GZ10000204007": "诊断与年龄不符", "GZ10000101001": "限工伤保险",
    "GZ10000101002": "限生育保险", "GZ10000102003": "限工伤保险", "GZ10000102004": "限生育保险",
    "GZ10000102008": "限科室", "GZ10000102009": "限就医方式", "GZ10000101008": "限适应症",
    "GZ10000101011": "超限定病种目录", "GZ10000102013": "分解收费", "GZ10000101010": "限支付疗程",
    "GZ10000102010": "限支付疗程", "GZ10000204004": "频繁住院", "GZ10000204003": "频繁购药",
    "GZ10000204005": "无指征住院", "GZ10000301005": "超说明书用量", "GZ10000201003": "诊断编码异常",
}
# Rules whose lines may be services as well as drugs must cite the services' item too (the KB gives
# services insutypes — 输卵管结扎术, 职业康复训练 — and course_days — 高压氧舱治疗, 运动疗法).
SERVICE_ITEMS = {"R07": ["GZ10000102003", "GZ10000102004"], "R17": ["GZ10000102010"]}
# 《医疗保障基金使用监督管理条例》第十五条 lists 分解住院、挂床住院、过度诊疗、过度检查、分解项目收费 …; 第十七条 is the
# insured person's duty (不得重复享受); 《处方管理办法》第六条(一) requires the clinical diagnosis; 国办发〔2021〕2号
# is the State Council's opinion on normalised volume-based procurement.
ARTICLES = {"R14": ["第十五条(分解项目收费)"], "R30": ["第十五条(不得违反诊疗规范过度诊疗、过度检查)"],
            "R41": ["第十五条(分解住院、挂床住院)", "第十七条"], "R37": ["《处方管理办法》第六条"],
            "R33": ["国办发〔2021〕2号"]}
AUDITED = ("R01", "R02", "R03", "R04", "R06", "R07", "R09", "R11", "R14", "R17", "R23", "R25", "R28", "R29", "R30",
           "R33", "R36", "R37", "R41")


def _rule(rule_id: str) -> dict[str, Any]:
    rule: dict[str, Any] = json.loads((DEFAULT_DATA / "rules" / f"{rule_id}.json").read_text(encoding="utf-8"))["rule"]
    return rule


def test_policy_citations_name_the_framework_item_and_article() -> None:
    """Every audited rule cites its 两库 framework item by the item's own name and code (a local 9xx code
    or the indicator family ZB10000205 excepted), services' items where the rule judges services, and the
    article of the regulation that says what it cites."""
    wrong = []
    for rule_id in AUDITED:
        rule = _rule(rule_id)
        basis = rule["policy_basis"]
        codes = re.findall(r"GZ\d{11}", basis)
        for code in codes:
            if code in FRAMEWORK and f"{FRAMEWORK[code]}({code})" not in basis:
                wrong.append(f"{rule_id}: {code} is {FRAMEWORK[code]}")
        if rule["gz_code"] in FRAMEWORK and rule["gz_code"] not in codes:
            wrong.append(f"{rule_id}: its own item {rule['gz_code']} is not cited")
        wrong += [f"{rule_id}: services' item {c} not cited" for c in SERVICE_ITEMS.get(rule_id, []) if c not in codes]
        wrong += [f"{rule_id}: {a} not cited" for a in ARTICLES.get(rule_id, []) if a not in basis]
    assert wrong == []


def test_alerts_of_services_carry_the_services_citation(engine: Engine) -> None:
    """The citation an HIS shows beside an alert on a service line names the services' item: R07 on
    输卵管结扎术 (限生育保险 GZ10000102004), R17 on 高压氧舱治疗 (限支付疗程 GZ10000102010)."""
    a = Story(engine).one(stay("P-b07g", "b07-g", 8, "2026-10-16", [line("1", TUBAL_LIGATION, "service", 1, 500.0,
                                                                         start="2026-10-12")],
                               adm="2026-10-11", dis="2026-10-16", gender="F", birth="1991-01-01", ins="390",
                               dx=[("O82.000", "经剖宫产术的单胎分娩")]), "R07")
    assert a is not None and "GZ10000102004" in a["policy_basis"]
    s = Story(engine)
    s.send(ev("P-b17g", "b17-g1", "2026-03-01", scene=6, dx=[("T70.300", "减压病")], items=[line("1", HYPERBARIC, "service", 1, 150.0)]))
    a = s.one(ev("P-b17g", "b17-g2", "2026-03-31", scene=6, dx=[("T70.300", "减压病")],
                 items=[line("1", HYPERBARIC, "service", 1, 150.0)]), "R17")
    assert a is not None and "GZ10000102010" in a["policy_basis"]


# -- more situations: rolling windows across the year, catalogue editions, overlapping stays -------------


def test_r06_prostate_diagnosis_on_the_18th_birthday(engine: Engine) -> None:
    """R06 at the adult threshold: 前列腺增生 (N40, from 18) for a boy the day before his 18th birthday is
    flagged; on the birthday it is not."""
    assert Story(engine).one(ev("P-b06h", "b06-h", "2026-06-30", birth="2008-07-01", dx=[("N40.x00", "前列腺增生")]), "R06")
    assert Story(engine).one(ev("P-b06i", "b06-i", "2026-07-01", birth="2008-07-01", dx=[("N40.x00", "前列腺增生")]),
                             "R06") is None


def test_r23_rolling_window_across_new_year(engine: Engine) -> None:
    """R23 counts a rolling 365 days, not the natural year: stays in February, June and October 2026, then
    an admission on 2027-01-20 — the fourth within 365 days although the first of 2027: flagged. On
    2027-02-10 the February stay has left the window: not flagged."""
    for pid, adm, fires in (("P-b23f", "2027-01-20", True), ("P-b23g", "2027-02-10", False)):
        s = Story(engine)
        for i, first in enumerate(("2026-02-04", "2026-06-10", "2026-10-12")):
            _admit(s, pid, f"{pid}-{i}", ("H1", "H2")[i % 2], first, first[:8] + "20")
        a = s.one(stay(pid, f"{pid}-new", 3, adm, adm=adm, dx=PNEUMONIA), "R23")
        assert (a is not None) is fires


def test_r11_restriction_of_a_new_catalogue_edition(data_dir: pathlib.Path) -> None:
    """R11 with catalogue editions: an edition from 2026-07-01 restricts 瑞舒伐他汀 to hyperlipidaemia
    (E78). A stay settled on 07-05 for pneumonia with rosuvastatin given on 06-28 (old edition, no
    restriction) and on 07-02 (new edition): only the line of 07-02 is flagged."""
    rosuvastatin = "XC10AAR117A001010100561"

    def restrict(doc: dict[str, Any]) -> None:
        for r in list(doc["rows"]):
            if r["code"] == rosuvastatin:
                r["effective_to"] = "2026-06-30"
                doc["rows"].append({**r, "effective_from": "2026-07-01", "effective_to": None, "indications": ["E78"]})
    edit_json(data_dir / "kb" / "drugs.json", restrict)
    edited = Engine.load(data_dir)
    items = [line("1", rosuvastatin, qty=1, price=1.0, start="2026-06-28"), line("2", rosuvastatin, qty=1, price=1.0, start="2026-07-02")]
    r11 = rule_alerts(Story(edited).send(stay("P-b11g", "b11-g", 8, "2026-07-05", items, adm="2026-06-27", dis="2026-07-05",
                                              dx=PNEUMONIA)), "R11")
    assert [a["line_ids"] for a in r11] == [["2"]]


def test_r41_stay_settled_after_an_admission_elsewhere_inside_it(engine: Engine) -> None:
    """R41 when the overlap is learnt at settlement: H2 sends no admission event; while its stay from 03-01
    runs, H1 admits the patient on 03-05 (judged then, H2's stay unknown). H2 then settles 03-01..03-12:
    its stay holds H1's admission of 03-05 — two stays at once (虚假住院 / 重复享受): flagged, the evidence
    naming H1's admission. An H1 admission on 03-12, H2's discharge day (a transfer), is not."""
    for pid, h1_adm, fires in (("P-b41h", "2026-03-05", True), ("P-b41i", "2026-03-12T14:00:00+08:00", False)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-h1", 3, h1_adm, adm=h1_adm, inst="H1", dx=PNEUMONIA))
        a = s.one(stay(pid, f"{pid}-h2", 8, "2026-03-12T10:00:00+08:00", [bed("1", "2026-03-01", 11)], adm="2026-03-01",
                       dis="2026-03-12T10:00:00+08:00", inst="H2", dx=PNEUMONIA), "R41")
        assert (a is not None) is fires
        if a is not None:
            assert [(e["event_id"], e["institution_id"]) for e in evidence_events(a)] == [(f"{pid}-h1", "H1")]


def _settled_only(pid: str, eid: str, inst: str, adm: str, dis: str, dx: list[tuple[str, str]] = PNEUMONIA) -> dict[str, Any]:
    """A stay as a hospital that sends no admission event reports it: one settlement with the discharge."""
    return stay(pid, eid, 8, dis, [bed("1", adm, 3)], adm=adm, dis=dis, inst=inst, dx=dx)


def test_r29_hospitals_that_send_only_the_settlement(engine: Engine) -> None:
    """R29 for hospitals that send no admission event (no scene 3 — the same gap R10 had for order
    events): H1 settles a pneumonia stay 03-01..03-10, H2 settles a heart-failure stay admitted 03-20:
    the readmission 10 days after H1's discharge is flagged at H2's settlement, naming H1's stay. A
    hospital that sent the admission (scene 3) was judged there: its settlement is not flagged again."""
    s = Story(engine)
    s.send(_settled_only("P-b29g", "b29g-1", "H1", "2026-03-01", "2026-03-10"))
    a = s.one(_settled_only("P-b29g", "b29g-2", "H2", "2026-03-20", "2026-03-28", dx=[("I50.900", "心力衰竭")]), "R29")
    assert a is not None and [(e["event_id"], e["institution_id"]) for e in evidence_events(a)] == [("b29g-1", "H1")]
    t = Story(engine)
    t.send(_settled_only("P-b29h", "b29h-1", "H1", "2026-03-01", "2026-03-10"))
    assert t.one(stay("P-b29h", "b29h-2", 3, "2026-03-20", adm="2026-03-20", inst="H2", dx=PNEUMONIA), "R29")
    assert t.one(stay("P-b29h", "b29h-2s", 8, "2026-03-28", [bed("1", "2026-03-20", 8)], adm="2026-03-20", dis="2026-03-28",
                      inst="H2", dx=PNEUMONIA), "R29") is None


def test_r23_hospitals_that_send_only_the_settlement(engine: Engine) -> None:
    """R23 for hospitals that send no admission event: three earlier stays and a fourth within the year,
    each known only from its settlement: the fourth is flagged at its settlement; a fourth stay whose
    admission (scene 3) was judged is not flagged again when it is settled."""
    s = Story(engine)
    for i, (inst, adm) in enumerate((("H1", "2026-01-05"), ("H2", "2026-03-05"), ("H1", "2026-05-05"))):
        s.send(_settled_only("P-b23h", f"b23h-{i}", inst, adm, adm[:8] + "12"))
    a = s.one(_settled_only("P-b23h", "b23h-4", "H2", "2026-08-05", "2026-08-12"), "R23")
    assert a is not None and len(evidence_events(a)) == 3
    t = Story(engine)
    for i, (inst, adm) in enumerate((("H1", "2026-01-05"), ("H2", "2026-03-05"), ("H1", "2026-05-05"))):
        t.send(_settled_only("P-b23i", f"b23i-{i}", inst, adm, adm[:8] + "12"))
    assert t.one(stay("P-b23i", "b23i-4", 3, "2026-08-05", adm="2026-08-05", inst="H2", dx=PNEUMONIA), "R23")
    assert t.one(stay("P-b23i", "b23i-4s", 8, "2026-08-12", [bed("1", "2026-08-05", 7)], adm="2026-08-05", dis="2026-08-12",
                      inst="H2", dx=PNEUMONIA), "R23") is None


def test_r36_discharge_medication_on_the_settlement(engine: Engine) -> None:
    """R36 on discharge medication (出院带药) carried by the inpatient settlement — a hospital that sends no
    order events is judged there, as R10 is since 1.1.0: metformin 180 tablets for 30 days taken home (6 a
    day, above the labelled 5) is flagged; 150 for 30 days is not, nor are the ward's metformin lines that
    carry no days of supply."""
    def settle(pid: str, qty: float) -> dict[str, Any]:
        ward = [line(str(10 + d), METFORMIN_VBP, qty=3, price=0.2, start=f"2026-06-0{d + 2}") for d in range(4)]
        home = line("1", METFORMIN_VBP, qty=qty, price=0.2, days=30, start="2026-06-06", take_home=True)
        return stay(pid, f"{pid}-set", 8, "2026-06-06", [home, *ward, bed("2", "2026-06-02", 4)], adm="2026-06-02",
                    dis="2026-06-06", dx=DM2)
    a = Story(engine).one(settle("P-b36g", 180), "R36")
    assert a is not None and a["line_ids"] == ["1"] and "6片" in a["message_zh"]
    assert Story(engine).one(settle("P-b36h", 150), "R36") is None


def test_r06_order_sent_without_the_admission_date(engine: Engine) -> None:
    """R06 at admission for an order that does not repeat ``admitted_at`` (docs/rules.md, *Dates*: inpatient
    diagnoses are judged at the age at admission): a baby admitted on day 20 of life with 新生儿黄疸 gets a
    nursing order on day 35 carrying the diagnosis — not flagged (the stay's recorded admission decides);
    a baby admitted on day 40 is flagged at the order as at the admission."""
    born = "2026-01-01"
    for pid, adm, fires in (("P-b06j", "2026-01-21", False), ("P-b06k", "2026-02-10", True)):
        s = Story(engine)
        s.send(stay(pid, f"{pid}-adm", 3, adm, adm=adm, birth=born, gender="F", dx=[("P59.900", "新生儿黄疸")]))
        order = ev(pid, f"{pid}-ord", "2026-02-15", scene=4, etype="inpatient", enc=f"{pid}-H1-{adm}", med_type="21",
                   birth=born, gender="F", dx=[("P59.900", "新生儿黄疸")],
                   items=[line("1", NURSING_2, "service", 1, 20.0, start="2026-02-15", unit="日")])
        a = s.one(order, "R06")
        assert (a is not None) is fires
        if a is not None:
            assert "40天" in a["message_zh"]


def test_r23_stay_first_seen_at_an_order(engine: Engine) -> None:
    """R23 for a hospital whose first event of a stay is an order (scene 4, no admission event): three
    earlier stays within the year, the new stay's first order is flagged; its next order is not flagged
    again."""
    s = Story(engine)
    for i, (inst, adm) in enumerate((("H1", "2026-01-05"), ("H2", "2026-03-05"), ("H1", "2026-05-05"))):
        s.send(_settled_only("P-b23j", f"b23j-{i}", inst, adm, adm[:8] + "12"))
    first = [line("1", INPT_CONSULT, "service", 1, 20.0, start="2026-08-05", unit="日")]
    assert s.one(stay("P-b23j", "b23j-o1", 4, "2026-08-05", first, adm="2026-08-05", inst="H2", dx=PNEUMONIA), "R23")
    nxt = [line("1", INPT_CONSULT, "service", 1, 20.0, start="2026-08-06", unit="日")]
    assert s.one(stay("P-b23j", "b23j-o2", 4, "2026-08-06", nxt, adm="2026-08-05", inst="H2", dx=PNEUMONIA), "R23") is None


def test_r25_month_of_a_purchase_in_china_time(engine: Engine) -> None:
    """R25's natural month is China's: after four purchases in March, one stamped 2026-03-31T16:30Z
    (00:30 on 1 April in China) is April's first: not flagged; one stamped 2026-03-31T15:30Z (23:30 on
    31 March in China) is March's fifth: flagged."""
    for pid, stamp, fires in (("P-b25g", "2026-03-31T16:30:00Z", False), ("P-b25h", "2026-03-31T15:30:00Z", True)):
        s = Story(engine)
        for i, day in enumerate(("02", "09", "16", "23")):
            s.send(_buy(pid, f"{pid}-{i}", f"2026-03-{day}"))
        a = s.one(_buy(pid, f"{pid}-5", stamp, inst="PH2"), "R25")
        assert (a is not None) is fires


def test_r14_electrolytes_at_pre_settlement_and_the_panel_itself(engine: Engine) -> None:
    """R14 at the clinic's pre-settlement (scene 7): potassium, sodium and chloride charged as three single
    tests (3 of 电解质四项's 4 components, its minimum) are flagged; the same visit charging 电解质四项 itself
    with a repeat potassium is not R14's."""
    k, na, cl, panel = "002503040010000", "002503040020000", "002503040030000", "002503049000000"
    a = Story(engine).one(ev("P-b14e", "b14-e", "2026-03-11", scene=7, dx=[("I50.900", "心力衰竭")],
                             items=[line("1", k, "service", 1, 4.0), line("2", na, "service", 1, 4.0),
                                    line("3", cl, "service", 1, 4.0)]), "R14")
    assert a is not None and a["line_ids"] == ["1", "2", "3"] and panel in a["message_zh"]
    assert Story(engine).one(ev("P-b14f", "b14-f", "2026-03-11", scene=7, dx=[("I50.900", "心力衰竭")],
                                items=[line("1", panel, "service", 1, 12.0), line("2", k, "service", 1, 4.0)]), "R14") is None


def test_r28_chemotherapy_stay_against_its_short_reference(engine: Engine) -> None:
    """R28 with a planned cycle's reference (Z51.1 肿瘤化学治疗疗程, 3 days): a chemotherapy stay of 7 days is
    flagged (more than twice 3); one of 6 days is not."""
    for pid, dis, fires in (("P-b28g", "2026-05-08", True), ("P-b28h", "2026-05-07", False)):
        a = Story(engine).one(stay(pid, f"{pid}-set", 8, dis, [bed("1", "2026-05-01", 6)], adm="2026-05-01", dis=dis,
                                   dx=CHEMO), "R28")
        assert (a is not None) is fires


def test_r11_dual_channel_pharmacy_dispensing_with_its_prescription_diagnosis(engine: Engine) -> None:
    """R11 at a 双通道 designated pharmacy (scene 10): gefitinib (paid for lung cancer, C34) dispensed on an
    electronic prescription whose diagnosis is pneumonia is flagged; dispensed for lung cancer it is not;
    an ordinary purchase without any diagnosis is not judged (docs/rules.md, *Limits and choices*)."""
    gefitinib = "XL01EBI120A001010103023"
    def buy(pid: str, dx: list[tuple[str, str]] | None) -> dict[str, Any]:
        return ev(pid, f"{pid}-buy", "2026-08-10", scene=10, inst="PH5", level=None, etype="pharmacy", dx=dx,
                  items=[line("1", gefitinib, qty=30, price=50.0, days=30)])
    a = Story(engine).one(buy("P-b11h", PNEUMONIA), "R11")
    assert a is not None and a["line_ids"] == ["1"]
    assert Story(engine).one(buy("P-b11i", [("C34.900", "肺恶性肿瘤")]), "R11") is None
    assert Story(engine).one(buy("P-b11j", None), "R11") is None


def test_r14_outpatient_order_entry(engine: Engine) -> None:
    """R14 when the clinic enters the charges (门诊收费登记, scene 2) — the order time of an outpatient
    visit, where R13 already warns: four liver-function components ordered apart are warned; with the
    panel ordered instead they are not."""
    four = [line("1", ALT, "service", 1, 5.0), line("2", AST, "service", 1, 5.0), line("3", TBIL, "service", 1, 5.0),
            line("4", DBIL, "service", 1, 5.0)]
    a = Story(engine).one(ev("P-b14g", "b14-g", "2026-03-12", scene=2, dx=[("B18.100", "慢性乙型肝炎")], items=four), "R14")
    assert a is not None and a["line_ids"] == ["1", "2", "3", "4"]
    assert Story(engine).one(ev("P-b14h", "b14-h", "2026-03-12", scene=2, dx=[("B18.100", "慢性乙型肝炎")],
                                items=[line("1", LIVER_PANEL, "service", 1, 30.0)]), "R14") is None


def test_r25_one_purchase_of_two_manufacturers(engine: Engine) -> None:
    """R25 counts purchases (encounters), not lines: after four purchases in March, a fifth buying
    metformin of two manufacturers on two lines is one purchase — one alert naming both lines. A
    fourth purchase with two lines is not flagged."""
    s = Story(engine)
    for i, day in enumerate(("02", "09", "16", "23")):
        s.send(_buy("P-b25i", f"b25i-{i}", f"2026-03-{day}"))
    two = [line("1", METFORMIN_VBP, qty=30, price=0.2, days=10), line("2", METFORMIN_BMS, qty=30, price=0.3, days=10)]
    r25 = rule_alerts(s.send(ev("P-b25i", "b25i-5", "2026-03-29", scene=10, inst="PH1", level=None, etype="pharmacy",
                                items=two)), "R25")
    assert len(r25) == 1 and r25[0]["line_ids"] == ["1", "2"] and "第5次" in r25[0]["message_zh"]
    t = Story(engine)
    for i, day in enumerate(("02", "09", "16")):
        t.send(_buy("P-b25j", f"b25j-{i}", f"2026-03-{day}"))
    assert t.one(ev("P-b25j", "b25j-4", "2026-03-23", scene=10, inst="PH1", level=None, etype="pharmacy", items=two),
                 "R25") is None


def test_r09_outpatient_fees_billed_into_a_stay(engine: Engine) -> None:
    """R09 on a settlement: the emergency consultation of the admission day (急诊诊查费 is an outpatient
    fee) billed into the stay is flagged; the stay's own ward round (住院诊查费) is not."""
    er_consult = "001102000040000"
    alerts = Story(engine).send(stay("P-b09g", "b09-g", 8, "2026-11-08", [
        line("1", er_consult, "service", 1, 15.0, start="2026-11-05"),
        line("2", INPT_CONSULT, "service", 3, 20.0, start="2026-11-05", unit="日"), bed("3", "2026-11-05", 3)],
        adm="2026-11-05", dis="2026-11-08", dx=PNEUMONIA))
    r09 = rule_alerts(alerts, "R09")
    assert [a["line_ids"] for a in r09] == [["1"]] and "住院" in r09[0]["message_zh"]


def test_r28_diagnosis_without_a_reference(engine: Engine) -> None:
    """R28 with a main diagnosis the catalogue gives no reference length (桡骨远端骨折 S52.5, not in the
    ICD table): the default reference of 10 days applies — 21 days flagged, 20 not."""
    fracture = [("S52.500", "桡骨远端骨折")]
    for pid, dis, fires in (("P-b28i", "2026-10-22", True), ("P-b28j", "2026-10-21", False)):
        a = Story(engine).one(stay(pid, f"{pid}-set", 8, dis, [bed("1", "2026-10-01", 20)], adm="2026-10-01", dis=dis,
                                   dx=fracture), "R28")
        assert (a is not None) is fires
        if a is not None:
            assert "10天" in a["message_zh"] and "21天" in a["message_zh"]


def test_r03_pharmacy_prescription_with_the_wifes_diagnosis(engine: Engine) -> None:
    """R03 at a 双通道 pharmacy (scene 10): the electronic prescription dispensed on a man's card carries
    绝经和围绝经期其他疾患 (N95, women only) — the wife's diagnosis: flagged; on her card it is not."""
    def buy(pid: str, gender: str) -> dict[str, Any]:
        return ev(pid, f"{pid}-buy", "2026-08-12", scene=10, inst="PH5", level=None, etype="pharmacy", gender=gender,
                  birth="1972-02-02", dx=[("N95.900", "绝经期综合征")], items=[line("1", KUNTAI, qty=48, price=1.1, days=4)])
    assert Story(engine).one(buy("P-b03h", "M"), "R03")
    assert Story(engine).one(buy("P-b03i", "F"), "R03") is None


def test_r30_same_day_stay_for_scans(engine: Engine) -> None:
    """R30 on a same-day stay (admitted and discharged on 04-01, length 0): a stay whose charges are scans
    (93 %) is flagged; a same-day stay for an appendectomy with the same scans is not (examinations 820
    of 1,780)."""
    a = Story(engine).one(_exam_stay("P-b30g", "2026-04-01T08:00:00+08:00", "2026-04-01T18:00:00+08:00"), "R30")
    assert a is not None and "住院0天" in a["message_zh"]
    op = _exam_stay("P-b30h", "2026-04-01T08:00:00+08:00", "2026-04-01T18:00:00+08:00")
    op["items"].append(line("9", APPENDECTOMY, "service", 1, 900.0, start="2026-04-01"))
    assert Story(engine).one(op, "R30") is None


def test_r25_used_up_purchases_are_still_named(engine: Engine) -> None:
    """R25 with purchases used up before the next (3 days' metformin bought weekly at four pharmacies — each
    folded into the ledger as spent): the fifth purchase of March is flagged and its evidence still names
    each earlier purchase by event id, pharmacy, date and quantity; a patient with four such purchases is
    not flagged."""
    def buy(pid: str, i: int, day: str, inst: str) -> dict[str, Any]:
        return ev(pid, f"{pid}-{i}", f"2026-03-{day}", scene=10, inst=inst, level=None, etype="pharmacy",
                  items=[line("1", METFORMIN_VBP, qty=9, price=0.2, days=3)])
    s = Story(engine)
    for i, day in enumerate(("02", "09", "16", "23")):
        s.send(buy("P-b25k", i, day, f"PH{i}"))
    a = s.one(buy("P-b25k", 5, "30", "PH9"), "R25")
    assert a is not None
    assert [(e["event_id"], e["institution_id"], e["date"], e["quantity"]) for e in evidence_events(a)][:4] == [
        (f"P-b25k-{i}", f"PH{i}", f"2026-03-{d}", 9) for i, d in enumerate(("02", "09", "16", "23"))]
    t = Story(engine)
    for i, day in enumerate(("02", "09", "16")):
        t.send(buy("P-b25l", i, day, f"PH{i}"))
    assert t.one(buy("P-b25l", 4, "23", "PH3"), "R25") is None
