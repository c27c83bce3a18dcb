"""An independent audit (issue 10): the plain rules, as a bureau's audit team would try them.

Written apart from the golden cases: each situation is what a real HIS sends (NHSA-format codes from
the shipped catalogues), the expectation is what a supervisor reading the rule's definition and
policy basis expects. Each test holds a firing case and its near miss.
"""

from __future__ import annotations

from services.rules.engine import Engine
from tests.rules.audit_kit import Story, ev, evidence_events, language_faults, line, rules_of

FINASTERIDE = "XG04CBY074A001010102209"
PSA = "002504040100000"
TCT = "002708000050000"
TURP = "003311010020000"
HYSTERECTOMY = "003315020010000"
PAED_COLD = "XN02BEB067D001010102061"  # 小儿氨酚黄那敏颗粒, child only
MOUSE_NGF = "XN07XXX085C001010102542"  # 工伤 only
MEROPENEM = "XJ01DHT051C001010101728"  # min level 2, inpatient, second line
ALTEPLASE = "XB01ADA026C001010100914"
ACUPUNCTURE = "004500000010000"        # 普通针刺, department A50
GINSENG, ASTRAGALUS, CORDYCEPS = "T000014182", "T000033429", "T000030390"
CLOPIDOGREL = "XB01ACD019A001010100766"
ASPIRIN = "XB01ACA056A001010100217"
LIRAGLUTIDE = "XA10BJL035C001010101173"
METFORMIN = "XA10BAH027A001010100729"
BIG_DRESSING, SMALL_DRESSING = "001204000030000", "001204000010000"
LIVER = ["002503050010000", "002503050020000", "002503070010000", "002503070020000", "002503010020000"]
BLOOD_COUNT = "002501010150000"
HBA1C = "002503020050000"
AMOXICILLIN = "XJ01CAD045B001010101543"
MORPHINE = "XN02AAM066A001010100316"
ESTAZOLAM = "XN05CDF101A001010103060"
AMLODIPINE_VBP, AMLODIPINE_OTHER = "XC08CAH001A001010100137", "XC08CAH001A001010100100"
NIFEDIPINE = "XC08CAO002A005010100248"
VALSARTAN = "XC09CAQ006B001010100359"
WARFARIN = "XB01AAH031A001010101887"
LEVOFLOXACIN = "XJ01MAH053A001010100137"
SIMVASTATIN = "XC10AAI016A001010100433"
CLARITHROMYCIN = "XJ01FAC056A001010101802"
ATORVASTATIN = "XC10AAA067A001010104321"
GANCAO, GANSUI = "T000001013", "T000002026"
CONSULT = "001102000010000"

HTN = [("I10.x00", "高血压")]
STROKE = [("I63.900", "脑梗死")]
DM2 = [("E11.900", "2型糖尿病")]


def test_sex_restricted_drug_for_a_woman(engine: Engine) -> None:
    """R01: finasteride prescribed to a woman for hair loss; the same prescription for a man is fine."""
    s = Story(engine)
    a = s.one(ev("P-a01f", "a01-f", "2026-04-01", gender="F", dx=[("L64.900", "雄激素性脱发")],
                 items=[line("1", FINASTERIDE, qty=30, price=1.5, days=30)]), "R01")
    assert a is not None and a["line_ids"] == ["1"] and a["amount"] == 45.0
    assert "女" in a["message_zh"] and "female" in a["message_en"]
    assert Story(engine).one(ev("P-a01m", "a01-m", "2026-04-01", gender="M", dx=[("N40.x00", "前列腺增生")],
                                items=[line("1", FINASTERIDE, qty=30, price=1.5, days=30)]), "R01") is None


def test_sex_restricted_lab_and_imaging(engine: Engine) -> None:
    """R02: a PSA test billed to a woman fires; a TCT (cervical cytology) for a woman does not."""
    s = Story(engine)
    alerts = s.send(ev("P-a02", "a02-1", "2026-04-01", gender="F", scene=6, dx=[("N76.000", "阴道炎")],
                       items=[line("1", PSA, "service", 1, 60.0), line("2", TCT, "service", 1, 120.0)]))
    r02 = [a for a in alerts if a["rule_id"] == "R02"]
    assert [a["line_ids"] for a in r02] == [["1"]]


def test_sex_restricted_operation_at_order_time_and_settlement(engine: Engine) -> None:
    """R04: a TURP ordered for a female inpatient (a data-entry error in the HIS) is warned when ordered
    (scene 4) — a hysterectomy for the same woman is not."""
    s = Story(engine)
    s.send(ev("P-a04", "a04-adm", "2026-04-01", scene=3, gender="F", etype="inpatient", enc="a04-stay",
              med_type="21", admitted_at="2026-04-01", dx=[("D25.900", "子宫平滑肌瘤")]))
    order = ev("P-a04", "a04-ord", "2026-04-02", scene=4, gender="F", etype="inpatient", enc="a04-stay",
               med_type="21", admitted_at="2026-04-01", dx=[("D25.900", "子宫平滑肌瘤")],
               items=[line("1", TURP, "service", 1, 1500.0, start="2026-04-02"),
                      line("2", HYSTERECTOMY, "service", 1, 2500.0, start="2026-04-02")])
    a = s.one(order, "R04")
    assert a is not None and a["line_ids"] == ["1"]


def test_diagnosis_of_the_other_sex(engine: Engine) -> None:
    """R03: 前列腺增生 for a woman fires; 单胎顺产 (chapter O) for a man fires too; for a woman neither."""
    s = Story(engine)
    assert s.one(ev("P-a03a", "a03-1", "2026-04-01", gender="F", scene=1, dx=[("N40.x00", "前列腺增生")]), "R03")
    assert Story(engine).one(ev("P-a03b", "a03-2", "2026-04-01", gender="M", scene=1,
                                dx=[("O80.000", "单胎顺产")]), "R03")
    assert Story(engine).one(ev("P-a03c", "a03-3", "2026-04-01", gender="F", scene=1, birth="1996-01-01",
                                dx=[("O80.000", "单胎顺产")]), "R03") is None


def test_child_only_drug_for_an_adult_and_a_child(engine: Engine) -> None:
    """R05: 小儿氨酚黄那敏颗粒 for a 40-year-old fires; for a 6-year-old it does not."""
    item = [line("1", PAED_COLD, qty=6, price=1.2, days=2)]
    assert Story(engine).one(ev("P-a05a", "a05-1", "2026-04-01", birth="1986-02-01",
                                dx=[("J06.900", "急性上呼吸道感染")], items=item), "R05")
    assert Story(engine).one(ev("P-a05b", "a05-2", "2026-04-01", birth="2020-02-01",
                                dx=[("J06.900", "急性上呼吸道感染")], items=item), "R05") is None


def test_child_age_limit_follows_the_treating_region(engine: Engine) -> None:
    """R05 region override: Shanghai (310100) pays children's items under 14. A 15-year-old from
    Hangzhou treated in Shanghai (异地就医) fires; the same child treated at home (330100) does not."""
    item = [line("1", PAED_COLD, qty=6, price=1.2, days=2)]
    a = Story(engine).one(ev("P-a05c", "a05-3", "2026-04-01", birth="2010-09-01", inst="SH1", region="310100",
                             pregion="330100", dx=[("J06.900", "急性上呼吸道感染")], items=item), "R05")
    assert a is not None and a["region"] == "310100"
    assert Story(engine).one(ev("P-a05d", "a05-4", "2026-04-01", birth="2010-09-01", region="330100",
                                pregion="310100", dx=[("J06.900", "急性上呼吸道感染")], items=item), "R05") is None


def test_diagnosis_age_range(engine: Engine) -> None:
    """R06: 前列腺增生 (adults) for a 16-year-old fires; 老年综合征 R54 (60+) for a 61-year-old does not."""
    assert Story(engine).one(ev("P-a06a", "a06-1", "2026-04-01", birth="2010-01-01", scene=1,
                                dx=[("N40.x00", "前列腺增生")]), "R06")
    assert Story(engine).one(ev("P-a06b", "a06-2", "2026-04-01", birth="1965-01-01", scene=1,
                                dx=[("R54.x00", "老年")]), "R06") is None


def test_work_injury_drug_for_an_employee_scheme_patient(engine: Engine) -> None:
    """R07: 鼠神经生长因子 (工伤 only) for an employee-scheme (310) patient fires; for 410 it does not;
    an event that gives no insurance type is not judged."""
    item = [line("1", MOUSE_NGF, qty=1, price=180.0, days=1)]
    assert Story(engine).one(ev("P-a07a", "a07-1", "2026-04-01", ins="310", scene=6, dx=[("S05.900", "眼外伤")],
                                items=item), "R07")
    assert Story(engine).one(ev("P-a07b", "a07-2", "2026-04-01", ins="410", scene=6, dx=[("S05.900", "眼外伤")],
                                items=item), "R07") is None
    assert Story(engine).one(ev("P-a07c", "a07-3", "2026-04-01", ins=None, scene=6, dx=[("S05.900", "眼外伤")],
                                items=item), "R07") is None


def test_institution_level_restriction(engine: Engine) -> None:
    """R08: meropenem at a level-1 township hospital's ward fires; at a level-2 county hospital it does not."""
    def settle(pid: str, level: int) -> dict:
        return ev(pid, f"{pid}-s", "2026-04-05", scene=8, level=level, etype="inpatient", enc=f"{pid}-stay",
                  med_type="21", admitted_at="2026-04-01", discharged_at="2026-04-05", dx=[("J15.900", "细菌性肺炎")],
                  items=[line("1", MEROPENEM, qty=6, price=60.0, start="2026-04-02")])
    a = Story(engine).one(settle("P-a08a", 1), "R08")
    assert a is not None and "1级" in a["message_zh"]
    assert Story(engine).one(settle("P-a08b", 2), "R08") is None


def test_setting_and_department_restrictions(engine: Engine) -> None:
    """R09: alteplase (inpatient only) billed at an outpatient visit fires; acupuncture billed by the
    internal-medicine department (A03) fires, by the TCM department (A50) it does not."""
    assert Story(engine).one(ev("P-a09a", "a09-1", "2026-04-01", scene=6, dx=STROKE,
                                items=[line("1", ALTEPLASE, qty=1, price=2800.0)]), "R09")
    assert Story(engine).one(ev("P-a09b", "a09-2", "2026-04-01", scene=6, department="A03", dx=[("M54.500", "腰痛")],
                                items=[line("1", ACUPUNCTURE, "service", 1, 20.0)]), "R09")
    assert Story(engine).one(ev("P-a09c", "a09-3", "2026-04-01", scene=6, department="A50", dx=[("M54.500", "腰痛")],
                                items=[line("1", ACUPUNCTURE, "service", 1, 20.0)]), "R09") is None


def test_decoction_pieces_paid_only_in_a_formula(engine: Engine) -> None:
    """R10: 人参 alone is 单方不予支付; 人参 in a formula with 黄芪 is paid; 冬虫夏草 is never paid."""
    dx_ = [("R53.x00", "乏力")]
    assert Story(engine).one(ev("P-a10a", "a10-1", "2026-04-01", dx=dx_,
                                items=[line("1", GINSENG, "herb", 10, 2.0)]), "R10")
    assert Story(engine).one(ev("P-a10b", "a10-2", "2026-04-01", dx=dx_,
                                items=[line("1", GINSENG, "herb", 10, 2.0), line("2", ASTRAGALUS, "herb", 15, 0.3)]),
                             "R10") is None
    a = Story(engine).one(ev("P-a10c", "a10-3", "2026-04-01", dx=dx_,
                             items=[line("1", CORDYCEPS, "herb", 2, 200.0), line("2", ASTRAGALUS, "herb", 15, 0.3)]),
                          "R10")
    assert a is not None and a["line_ids"] == ["1"]


def test_indication_restriction(engine: Engine) -> None:
    """R11: clopidogrel for plain hypertension fires; for a cerebral infarction it does not."""
    item = [line("1", CLOPIDOGREL, qty=28, price=2.5, days=28)]
    a = Story(engine).one(ev("P-a11a", "a11-1", "2026-04-01", dx=HTN, items=item), "R11")
    assert a is not None and "I10.x00" in a["message_zh"]
    assert Story(engine).one(ev("P-a11b", "a11-2", "2026-04-01", dx=STROKE, items=item), "R11") is None


def test_second_line_without_a_first_line_history(engine: Engine) -> None:
    """R12: liraglutide as the first antidiabetic fires; after two months of metformin it does not."""
    item = [line("1", LIRAGLUTIDE, qty=1, price=280.0, days=30)]
    assert Story(engine).one(ev("P-a12a", "a12-1", "2026-04-01", dx=DM2, items=item), "R12")
    s = Story(engine)
    s.send(ev("P-a12b", "a12-h", "2026-02-01", dx=DM2, items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]))
    assert s.one(ev("P-a12b", "a12-2", "2026-04-01", dx=DM2, items=item), "R12") is None


def test_repeated_charge_of_an_included_item(engine: Engine) -> None:
    """R13: a large dressing change and a small one the same day (the large includes the small) fires;
    on different days of the stay it does not."""
    def settle(pid: str, d2: str) -> dict:
        return ev(pid, f"{pid}-s", "2026-04-06", scene=8, etype="inpatient", enc=f"{pid}-stay", med_type="21",
                  admitted_at="2026-04-01", discharged_at="2026-04-06", dx=[("T14.100", "开放性伤口")],
                  items=[line("1", BIG_DRESSING, "service", 1, 30.0, start="2026-04-02"),
                         line("2", SMALL_DRESSING, "service", 1, 12.0, start=d2)])
    a = Story(engine).one(settle("P-a13a", "2026-04-02"), "R13")
    assert a is not None and a["line_ids"] == ["2"]
    assert Story(engine).one(settle("P-a13b", "2026-04-04"), "R13") is None


def test_unbundled_liver_panel(engine: Engine) -> None:
    """R14: five liver-function components charged one by one at an outpatient settlement fires;
    three of them (below the 4 a panel needs) do not."""
    items = [line(str(i + 1), c, "service", 1, 5.0) for i, c in enumerate(LIVER)]
    a = Story(engine).one(ev("P-a14a", "a14-1", "2026-04-01", scene=6, dx=[("K76.000", "脂肪肝")], items=items), "R14")
    assert a is not None and a["line_ids"] == ["1", "2", "3", "4", "5"]
    assert Story(engine).one(ev("P-a14b", "a14-2", "2026-04-01", scene=6, dx=[("K76.000", "脂肪肝")],
                                items=items[:3]), "R14") is None


def test_daily_frequency(engine: Engine) -> None:
    """R15: four blood counts on one day of a stay fires (limit 3); three do not."""
    def settle(pid: str, n: int) -> dict:
        return ev(pid, f"{pid}-s", "2026-04-04", scene=8, etype="inpatient", enc=f"{pid}-stay", med_type="21",
                  admitted_at="2026-04-01", discharged_at="2026-04-04", dx=[("J15.900", "细菌性肺炎")],
                  items=[line("1", BLOOD_COUNT, "service", n, 20.0, start="2026-04-02")])
    a = Story(engine).one(settle("P-a15a", 4), "R15")
    assert a is not None and "4" in a["message_zh"]
    assert Story(engine).one(settle("P-a15b", 3), "R15") is None


def test_period_limit_across_institutions(engine: Engine) -> None:
    """R16: HbA1c (once per 60 days) at H1, then at H2 45 days later fires; 61 days later it does not."""
    s = Story(engine)
    s.send(ev("P-a16", "a16-1", "2026-01-05", scene=6, dx=DM2, items=[line("1", HBA1C, "service", 1, 60.0)]))
    a = s.one(ev("P-a16", "a16-2", "2026-02-19", scene=6, inst="H2", dx=DM2,
                 items=[line("1", HBA1C, "service", 1, 60.0)]), "R16")
    assert a is not None and any(e.get("event_id") == "a16-1" for e in evidence_events(a))
    s2 = Story(engine)
    s2.send(ev("P-a16b", "a16b-1", "2026-01-05", scene=6, dx=DM2, items=[line("1", HBA1C, "service", 1, 60.0)]))
    assert s2.one(ev("P-a16b", "a16b-2", "2026-03-07", scene=6, inst="H2", dx=DM2,
                     items=[line("1", HBA1C, "service", 1, 60.0)]), "R16") is None


def test_outpatient_day_limit(engine: Engine) -> None:
    """R18: 10 days of amoxicillin at a plain outpatient visit fires (7); 7 days do not."""
    a = Story(engine).one(ev("P-a18a", "a18-1", "2026-04-01", dx=[("J02.900", "急性咽炎")],
                             items=[line("1", AMOXICILLIN, qty=60, price=0.3, days=10)]), "R18")
    assert a is not None and "10天" in a["message_zh"] and "7天" in a["message_zh"]
    assert Story(engine).one(ev("P-a18b", "a18-2", "2026-04-01", dx=[("J02.900", "急性咽炎")],
                                items=[line("1", AMOXICILLIN, qty=42, price=0.3, days=7)]), "R18") is None


def test_controlled_drug_statutory_limits(engine: Engine) -> None:
    """R18 (处方管理办法 §23–24): 5 days of immediate-release morphine tablets for a fracture fires (3);
    the same 5 days for a lung-cancer patient's pain does not (7). Estazolam (第二类精神药品) 7 days
    is fine, 10 fire."""
    mor = [line("1", MORPHINE, qty=20, price=0.8, days=5)]
    assert Story(engine).one(ev("P-a18c", "a18-3", "2026-04-01", dx=[("S82.200", "胫骨骨折")], items=mor), "R18")
    assert Story(engine).one(ev("P-a18d", "a18-4", "2026-04-01", dx=[("C34.900", "肺恶性肿瘤")], items=mor),
                             "R18") is None
    assert Story(engine).one(ev("P-a18e", "a18-5", "2026-04-01", dx=[("G47.000", "失眠")],
                                items=[line("1", ESTAZOLAM, qty=7, price=0.2, days=7)]), "R18") is None
    assert Story(engine).one(ev("P-a18f", "a18-6", "2026-04-01", dx=[("G47.000", "失眠")],
                                items=[line("1", ESTAZOLAM, qty=10, price=0.2, days=10)]), "R18")


def test_two_drugs_of_one_class(engine: Engine) -> None:
    """R20: amlodipine and nifedipine (both C08CA) on one prescription fires; amlodipine with valsartan
    does not; aspirin with clopidogrel (dual antiplatelet, B01AC) is exempt."""
    s = Story(engine)
    a = s.one(ev("P-a20a", "a20-1", "2026-04-01", dx=HTN, items=[line("1", AMLODIPINE_VBP, qty=30, price=0.2, days=30),
                                                               line("2", NIFEDIPINE, qty=30, price=1.0, days=30)]),
              "R20")
    assert a is not None and "C08CA" in a["message_zh"]
    assert Story(engine).one(ev("P-a20b", "a20-2", "2026-04-01", dx=HTN, items=[
        line("1", AMLODIPINE_VBP, qty=30, price=0.2, days=30), line("2", VALSARTAN, qty=30, price=1.0, days=30)]),
        "R20") is None
    assert Story(engine).one(ev("P-a20c", "a20-3", "2026-04-01", dx=[("I25.100", "冠心病")], items=[
        line("1", ASPIRIN, qty=30, price=0.2, days=30), line("2", CLOPIDOGREL, qty=30, price=2.5, days=30)]),
        "R20") is None


def test_interaction_in_one_prescription_and_with_a_running_supply(engine: Engine) -> None:
    """R21: warfarin with aspirin on one prescription fires (严重); clarithromycin prescribed at another
    hospital while simvastatin still runs fires (禁忌); clarithromycin after the simvastatin ran out does not."""
    a = Story(engine).one(ev("P-a21a", "a21-1", "2026-04-01", dx=[("I48.000", "房颤")], items=[
        line("1", WARFARIN, qty=30, price=0.3, days=30), line("2", ASPIRIN, qty=30, price=0.2, days=30)]), "R21")
    assert a is not None and "严重" in a["message_zh"] and "major" not in a["message_zh"]
    s = Story(engine)
    s.send(ev("P-a21b", "a21-h", "2026-04-01", dx=[("E78.500", "高脂血症")],
              items=[line("1", SIMVASTATIN, qty=30, price=0.5, days=30)]))
    b = s.one(ev("P-a21b", "a21-2", "2026-04-10", inst="H2", dx=[("J15.900", "肺炎")],
                 items=[line("1", CLARITHROMYCIN, qty=14, price=1.5, days=7)]), "R21")
    assert b is not None and "禁忌" in b["message_zh"]
    assert any(e.get("event_id") == "a21-h" for e in evidence_events(b))
    assert s.one(ev("P-a21b", "a21-3", "2026-05-20", inst="H2", dx=[("J15.900", "肺炎")],
                    items=[line("1", CLARITHROMYCIN, qty=14, price=1.5, days=7)]), "R21") is None


def test_interaction_severities_follow_the_treating_region(engine: Engine) -> None:
    """R21 region override: Beijing (110100) warns only contraindicated and major pairs. Warfarin with
    levofloxacin (moderate) fires in Hangzhou; for a Hangzhou patient treated in Beijing it does not."""
    items = [line("1", WARFARIN, qty=30, price=0.3, days=30), line("2", LEVOFLOXACIN, qty=7, price=1.0, days=7)]
    a = Story(engine).one(ev("P-a21c", "a21-4", "2026-04-01", dx=[("I48.000", "房颤")], items=items), "R21")
    assert a is not None and "中度" in a["message_zh"]
    assert Story(engine).one(ev("P-a21d", "a21-5", "2026-04-01", inst="BJ1", region="110100", pregion="330100",
                                dx=[("I48.000", "房颤")], items=items), "R21") is None


def test_herbal_incompatibility(engine: Engine) -> None:
    """R21: 甘草 with 甘遂 (十八反) in one decoction fires; 甘草 with 黄芪 does not."""
    dx_ = [("R18.x00", "腹水")]
    a = Story(engine).one(ev("P-a21e", "a21-6", "2026-04-01", dx=dx_, items=[
        line("1", GANCAO, "herb", 6, 0.2), line("2", GANSUI, "herb", 3, 1.0)]), "R21")
    assert a is not None and "十八反" in a["message_zh"] and LOWER_FREE(a["message_zh"])
    assert Story(engine).one(ev("P-a21f", "a21-7", "2026-04-01", dx=dx_, items=[
        line("1", GANCAO, "herb", 6, 0.2), line("2", ASTRAGALUS, "herb", 15, 0.3)]), "R21") is None


def LOWER_FREE(text: str) -> bool:  # noqa: N802 - reads as a predicate in the assertions
    return not any(w in text for w in ("contraindicated", "major", "moderate", "herb", "drug"))


def test_price_cap(engine: Engine) -> None:
    """R32: amlodipine at 0.80 a tablet (cap 0.50) fires with the excess 30 × 0.30 = 9.00; at 0.50 it does not."""
    a = Story(engine).one(ev("P-a32a", "a32-1", "2026-04-01", dx=HTN,
                             items=[line("1", AMLODIPINE_VBP, qty=30, price=0.8, days=30)]), "R32")
    assert a is not None and a["amount"] == 9.0
    assert Story(engine).one(ev("P-a32b", "a32-2", "2026-04-01", dx=HTN,
                                items=[line("1", AMLODIPINE_VBP, qty=30, price=0.5, days=30)]), "R32") is None


def test_volume_procurement(engine: Engine) -> None:
    """R33: a non-selected amlodipine product fires (naming the selected one); the selected product does not."""
    a = Story(engine).one(ev("P-a33a", "a33-1", "2026-04-01", dx=HTN,
                             items=[line("1", AMLODIPINE_OTHER, qty=30, price=0.4, days=30)]), "R33")
    assert a is not None and AMLODIPINE_VBP in a["message_zh"] + str(a["evidence"])
    assert Story(engine).one(ev("P-a33b", "a33-2", "2026-04-01", dx=HTN,
                                items=[line("1", AMLODIPINE_VBP, qty=30, price=0.2, days=30)]), "R33") is None


def test_same_day_at_two_hospitals_and_the_shenzhen_allowance(engine: Engine) -> None:
    """R34: outpatient visits at H1 and H2 on one day fire; Shenzhen (440300) allows two institutions."""
    s = Story(engine)
    s.send(ev("P-a34", "a34-1", at_("2026-04-01", 8), scene=6, dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]))
    a = s.one(ev("P-a34", "a34-2", at_("2026-04-01", 15), scene=6, inst="H2", dx=HTN,
                 items=[line("1", CONSULT, "service", 1, 10.0)]), "R34")
    assert a is not None and "H1" in a["message_zh"] and "H2" in a["message_zh"]
    s2 = Story(engine)
    s2.send(ev("P-a34b", "a34b-1", at_("2026-04-01", 8), scene=6, inst="SZ1", region="440300", pregion="440300",
               dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]))
    assert s2.one(ev("P-a34b", "a34b-2", at_("2026-04-01", 15), scene=6, inst="SZ2", region="440300",
                     pregion="440300", dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]), "R34") is None


def at_(d: str, hour: int) -> str:
    return f"{d}T{hour:02d}:00:00+08:00"


def test_labelled_daily_maximum(engine: Engine) -> None:
    """R36: atorvastatin 5 tablets a day (label max 4) fires; 2 a day does not."""
    assert Story(engine).one(ev("P-a36a", "a36-1", "2026-04-01", dx=[("E78.500", "高脂血症")],
                                items=[line("1", ATORVASTATIN, qty=50, price=0.3, days=10)]), "R36")
    assert Story(engine).one(ev("P-a36b", "a36-2", "2026-04-01", dx=[("E78.500", "高脂血症")],
                                items=[line("1", ATORVASTATIN, qty=20, price=0.3, days=10)]), "R36") is None


def test_prescription_without_a_diagnosis(engine: Engine) -> None:
    """R37: an outpatient prescription sent with no diagnosis fires; a pharmacy purchase (scene 10) does not."""
    item = [line("1", AMLODIPINE_VBP, qty=30, price=0.2, days=30)]
    assert Story(engine).one(ev("P-a37a", "a37-1", "2026-04-01", items=item), "R37")
    assert Story(engine).one(ev("P-a37b", "a37-2", "2026-04-01", scene=10, etype="pharmacy", inst="PH1",
                                items=item), "R37") is None


def test_frequent_outpatient_visits(engine: Engine) -> None:
    """R24: the 11th outpatient visit in 30 days fires; the 10th does not."""
    s = Story(engine)
    for n in range(9):
        s.send(ev("P-a24", f"a24-{n}", f"2026-04-{n * 3 + 1:02d}", scene=6, dx=HTN,
                  items=[line("1", CONSULT, "service", 1, 10.0)]))
    assert s.one(ev("P-a24", "a24-9", "2026-04-28", scene=6, dx=HTN,
                    items=[line("1", CONSULT, "service", 1, 10.0)]), "R24") is None
    assert s.one(ev("P-a24", "a24-10", "2026-04-29", scene=6, dx=HTN,
                    items=[line("1", CONSULT, "service", 1, 10.0)]), "R24")


def test_messages_are_each_in_their_own_language(engine: Engine) -> None:
    """Every alert raised in this file's situations: Chinese text fully Chinese, English fully English."""
    s = Story(engine)
    s.send(ev("P-lang", "lang-1", "2026-04-01", gender="F", dx=[("N40.x00", "前列腺增生")], items=[
        line("1", FINASTERIDE, qty=30, price=1.5, days=30), line("2", WARFARIN, qty=30, price=0.3, days=30),
        line("3", ASPIRIN, qty=30, price=0.2, days=30), line("4", AMLODIPINE_OTHER, qty=30, price=0.9, days=30),
        line("5", NIFEDIPINE, qty=30, price=1.0, days=30), line("6", GANCAO, "herb", 6, 0.2),
        line("7", GANSUI, "herb", 3, 1.0), line("8", AMOXICILLIN, qty=90, price=0.3, days=15)]))
    assert len(rules_of(s.texts)) >= 6
    assert [f for a in s.texts for f in language_faults(a)] == []
