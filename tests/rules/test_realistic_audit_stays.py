"""An independent audit (issue 10): beds and stays, admissions and Z51 exemptions, order-time scenes,
region (异地就医), the supply ledger, and evidence that names the earlier events — each with its near miss.

Written apart from the golden cases, from each rule's definition and docs/rules.md.
"""

from __future__ import annotations

from typing import Any

from services.rules.engine import Engine
from tests.rules.audit_kit import Story, ev, evidence_events, language_faults, line
from tests.rules.audit_kit import stay as kit_stay

WARD, DOUBLE, ICU = "001109000010000", "001109000020000", "001109000050000"
SPECIAL_CARE, NURSING_1, NURSING_2 = "001201000010000", "001201000020000", "001201000030000"
INPT_CONSULT = "001102000050000"
CONSULT = "001102000010000"
CT_HEAD = "002103000010000"
BLOOD_COUNT, CRP = "002501010150000", "002504030310000"
LIVER_PANEL, KIDNEY_PANEL, LIPIDS = "002503059000000", "002503079000000", "002503039000000"
CEFTRIAXONE = "XJ01DDF049C001010101543"
ATORVASTATIN = "XC10AAA067A001010104321"
METFORMIN = "XA10BAH027A001010100729"
FUROSEMIDE = "XC03CAG012A001010100507"
EDARAVONE = "XN07XXD097C001010102912"
PNEUMONIA = [("J15.900", "细菌性肺炎")]
STROKE = [("I63.900", "脑梗死")]
HTN = [("I10.x00", "高血压")]
CHEMO = [("Z51.100", "为肿瘤化学治疗疗程"), ("C34.900", "肺恶性肿瘤")]
LUNG_CA = [("C34.900", "肺恶性肿瘤")]


def stay(*args: Any, dx: list[tuple[str, str]] = PNEUMONIA, **kw: Any) -> dict[str, Any]:
    return kit_stay(*args, dx=dx, **kw)


def bed(lid: str, code: str, start: str, days: int, price: float = 50.0) -> dict[str, Any]:
    return line(lid, code, "service", days, price, start=start, unit="日")


def lines_of(alerts: list[dict[str, Any]], rule: str) -> list[str]:
    return sorted(lid for a in alerts if a["rule_id"] == rule for lid in a["line_ids"])


def admitted_and_discharged(s: Story, pid: str, tag: str, adm: str, dis: str, *, inst: str = "H1",
                            dx: list[tuple[str, str]] = PNEUMONIA) -> None:
    s.send(stay(pid, f"{tag}-adm", 3, adm, adm=adm, inst=inst, dx=dx))
    s.send(stay(pid, f"{tag}-set", 8, dis, [bed("1", WARD, adm, _nights(adm, dis))], adm=adm, dis=dis, inst=inst, dx=dx))


def _nights(adm: str, dis: str) -> int:
    from datetime import date
    return max(1, (date.fromisoformat(dis) - date.fromisoformat(adm)).days)


# ---------------------------------------------------------------- beds

def test_a_room_change_charged_twice_on_one_day(engine: Engine) -> None:
    """R40: moved from a three-bed to a two-bed room on 03-03; both rooms charged for 03-03."""
    alerts = Story(engine).send(stay("P-s01", "s01-set", 8, "2026-03-05", [
        bed("1", WARD, "2026-03-01", 3), bed("2", DOUBLE, "2026-03-03", 2, 70.0)], adm="2026-03-01", dis="2026-03-05"))
    assert lines_of(alerts, "R40")


def test_a_room_change_charged_once_a_day(engine: Engine) -> None:
    """Near miss: three-bed room 03-01..03-02, two-bed room 03-03..03-04, discharged 03-05 — four nights."""
    alerts = Story(engine).send(stay("P-s02", "s02-set", 8, "2026-03-05", [
        bed("1", WARD, "2026-03-01", 2), bed("2", DOUBLE, "2026-03-03", 2, 70.0)], adm="2026-03-01", dis="2026-03-05"))
    assert not lines_of(alerts, "R40") and not lines_of(alerts, "R13")


def test_a_same_day_stay_counts_one_bed_day(engine: Engine) -> None:
    """R40: admitted and discharged on 03-01 (day surgery): one bed day is fine, two are not."""
    assert not lines_of(Story(engine).send(stay("P-s03", "s03-set", 8, "2026-03-01", [bed("1", WARD, "2026-03-01", 1)],
                                                adm="2026-03-01T07:00:00+08:00", dis="2026-03-01T18:00:00+08:00")),
                        "R40")
    assert lines_of(Story(engine).send(stay("P-s03b", "s03b-set", 8, "2026-03-01", [bed("1", WARD, "2026-03-01", 2)],
                                            adm="2026-03-01T07:00:00+08:00", dis="2026-03-01T18:00:00+08:00")), "R40")


def test_daily_bed_posting_at_scene_5(engine: Engine) -> None:
    """R40 at scene 5 (daily postings): 03-02's ward bed posted, then an ICU bed posted for 03-02 as well."""
    s = Story(engine)
    s.send(stay("P-s04", "s04-adm", 3, "2026-03-01", adm="2026-03-01"))
    assert not lines_of(s.send(stay("P-s04", "s04-d1", 5, "2026-03-02", [bed("1", WARD, "2026-03-02", 1)],
                                    adm="2026-03-01")), "R40")
    assert lines_of(s.send(stay("P-s04", "s04-d2", 5, "2026-03-02T22:00:00+08:00", [bed("1", ICU, "2026-03-02", 1, 150.0)],
                                adm="2026-03-01")), "R40") == ["1"]


def test_nursing_levels_expanded_per_day(engine: Engine) -> None:
    """R13 with a multi-day line: special care billed for 03-02..03-04 as one line of 3 days, and level-II
    nursing on 03-03 — level II is inside special care that day. Near miss: level II on 03-06."""
    def settle(pid: str, d: str) -> dict[str, Any]:
        return stay(pid, f"{pid}-set", 8, "2026-03-08", [
            line("1", SPECIAL_CARE, "service", 3, 60.0, start="2026-03-02", unit="日"),
            line("2", NURSING_2, "service", 1, 20.0, start=d, unit="日")], adm="2026-03-01", dis="2026-03-08")
    assert lines_of(Story(engine).send(settle("P-s05", "2026-03-03")), "R13") == ["2"]
    assert not lines_of(Story(engine).send(settle("P-s05b", "2026-03-06")), "R13")


def test_frequency_expanded_per_day(engine: Engine) -> None:
    """R15 with a multi-day line: level-I nursing 5 days from 03-01 is one a day (fine); an extra level-I
    line on 03-03 makes two that day."""
    ok = stay("P-s06", "s06-set", 8, "2026-03-06", [line("1", NURSING_1, "service", 5, 30.0, start="2026-03-01",
                                                         unit="日")], adm="2026-03-01", dis="2026-03-06")
    assert not lines_of(Story(engine).send(ok), "R15")
    bad = stay("P-s06b", "s06b-set", 8, "2026-03-06", [
        line("1", NURSING_1, "service", 5, 30.0, start="2026-03-01", unit="日"),
        line("2", NURSING_1, "service", 1, 30.0, start="2026-03-03", unit="日")], adm="2026-03-01", dis="2026-03-06")
    assert lines_of(Story(engine).send(bad), "R15")


# ---------------------------------------------------------------- claims during a stay, a second stay

def test_outpatient_claim_elsewhere_during_a_stay(engine: Engine) -> None:
    """R35: an outpatient visit at H2 on day 3 of a stay at H1 fires, naming the admitting event; a visit
    at H2 the day after discharge does not."""
    s = Story(engine)
    s.send(stay("P-s07", "s07-adm", 3, "2026-03-01", adm="2026-03-01"))
    a = s.one(ev("P-s07", "s07-op", "2026-03-03", scene=6, inst="H2", dx=HTN,
                 items=[line("1", CONSULT, "service", 1, 10.0)]), "R35")
    assert a is not None and any(e.get("event_id") == "s07-adm" and e.get("institution_id") == "H1"
                                 for e in evidence_events(a))
    s.send(stay("P-s07", "s07-set", 8, "2026-03-06", [bed("1", WARD, "2026-03-01", 5)], adm="2026-03-01",
                dis="2026-03-06"))
    assert s.one(ev("P-s07", "s07-op2", "2026-03-07", scene=6, inst="H2", dx=HTN,
                    items=[line("1", CONSULT, "service", 1, 10.0)]), "R35") is None


def test_pharmacy_purchase_during_a_stay_and_emergency_visit_before_admission(engine: Engine) -> None:
    """R35: a pharmacy purchase on day 2 of a stay fires; the emergency visit at the admitting hospital
    on the admission day does not."""
    s = Story(engine)
    s.send(stay("P-s08", "s08-adm", 3, "2026-03-01T14:00:00+08:00", adm="2026-03-01T14:00:00+08:00"))
    assert s.one(ev("P-s08", "s08-er", "2026-03-01T10:00:00+08:00", scene=6, med_type="13", dx=PNEUMONIA,
                    items=[line("1", CT_HEAD, "service", 1, 150.0)]), "R35") is None
    assert s.one(ev("P-s08", "s08-ph", "2026-03-02", scene=10, inst="PH1", etype="pharmacy",
                    items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]), "R35")


def test_a_second_admission_while_a_stay_is_open(engine: Engine) -> None:
    """R41: admitted to H2 on 03-05 while the H1 stay (from 03-01) is not discharged; a transfer admitted
    to H2 on H1's discharge day is fine."""
    s = Story(engine)
    s.send(stay("P-s09", "s09-adm", 3, "2026-03-01", adm="2026-03-01"))
    a = s.one(stay("P-s09", "s09-adm2", 3, "2026-03-05", adm="2026-03-05", inst="H2"), "R41")
    assert a is not None and any(e.get("event_id") == "s09-adm" for e in evidence_events(a))
    t = Story(engine)
    t.send(stay("P-s10", "s10-adm", 3, "2026-03-01", adm="2026-03-01"))
    t.send(stay("P-s10", "s10-set", 8, "2026-03-05T09:00:00+08:00", [bed("1", WARD, "2026-03-01", 4)], adm="2026-03-01",
                dis="2026-03-05T09:00:00+08:00"))
    assert t.one(stay("P-s10", "s10-adm2", 3, "2026-03-05T11:00:00+08:00", adm="2026-03-05T11:00:00+08:00",
                      inst="H2"), "R41") is None


def test_charges_dated_outside_the_stay(engine: Engine) -> None:
    """R26: a CT dated the day before admission on the settlement fires; one on the admission day does not."""
    alerts = Story(engine).send(stay("P-s11", "s11-set", 8, "2026-03-05", [
        line("1", CT_HEAD, "service", 1, 150.0, start="2026-02-28"),
        line("2", CT_HEAD, "service", 1, 150.0, start="2026-03-01T10:00:00+08:00"),
        bed("3", WARD, "2026-03-01", 4)], adm="2026-03-01", dis="2026-03-05"))
    assert lines_of(alerts, "R26") == ["1"]


def test_idle_stay(engine: Engine) -> None:
    """R27: four days in a row with only bed, nursing and ward-round charges fires; with a daily drug it does not."""
    def settle(pid: str, with_drug: bool) -> dict[str, Any]:
        items = [bed("1", WARD, "2026-03-01", 5), line("2", NURSING_2, "service", 5, 20.0, start="2026-03-01", unit="日"),
                 line("3", INPT_CONSULT, "service", 5, 20.0, start="2026-03-01", unit="日")]
        if with_drug:
            items += [line(str(10 + d), CEFTRIAXONE, qty=2, price=20.0, start=f"2026-03-0{d + 1}") for d in range(5)]
        return stay(pid, f"{pid}-set", 8, "2026-03-06", items, adm="2026-03-01", dis="2026-03-06")
    assert lines_of(Story(engine).send(settle("P-s12", False)), "R27")
    assert not lines_of(Story(engine).send(settle("P-s12b", True)), "R27")


def test_long_stay_against_the_reference(engine: Engine) -> None:
    """R28: hypertension (reference 8 days, factor 2): 17 days fires, 16 do not."""
    assert lines_of(Story(engine).send(stay("P-s13", "s13-set", 8, "2026-03-18", [bed("1", WARD, "2026-03-01", 17)],
                                            adm="2026-03-01", dis="2026-03-18", dx=HTN)), "R28") is not None
    assert "R28" in {a["rule_id"] for a in Story(engine).send(
        stay("P-s13a", "s13a-set", 8, "2026-03-18", [bed("1", WARD, "2026-03-01", 17)], adm="2026-03-01",
             dis="2026-03-18", dx=HTN))}
    assert "R28" not in {a["rule_id"] for a in Story(engine).send(
        stay("P-s13b", "s13b-set", 8, "2026-03-17", [bed("1", WARD, "2026-03-01", 16)], adm="2026-03-01",
             dis="2026-03-17", dx=HTN))}


def test_long_stay_warned_at_order_time(engine: Engine) -> None:
    """R28 at scene 4: an order entered on day 18 of an open hypertension stay warns already."""
    s = Story(engine)
    s.send(stay("P-s14", "s14-adm", 3, "2026-03-01", adm="2026-03-01", dx=HTN))
    assert s.one(stay("P-s14", "s14-ord", 4, "2026-03-19", [line("1", INPT_CONSULT, "service", 1, 20.0,
                                                                 start="2026-03-19", unit="日")],
                      adm="2026-03-01", dx=HTN), "R28")


def test_low_acuity_admission(engine: Engine) -> None:
    """R30: a two-day stay whose charges are 80 % tests fires; a four-day stay with the same tests does not."""
    def settle(pid: str, nights: int) -> dict[str, Any]:
        dis = f"2026-03-{1 + nights:02d}"
        return stay(pid, f"{pid}-set", 8, dis, [
            line("1", LIVER_PANEL, "service", 1, 120.0, start="2026-03-01"),
            line("2", KIDNEY_PANEL, "service", 1, 80.0, start="2026-03-01"),
            line("3", LIPIDS, "service", 1, 60.0, start="2026-03-01"),
            line("4", CT_HEAD, "service", 1, 150.0, start="2026-03-01"),
            bed("5", WARD, "2026-03-01", nights)], adm="2026-03-01", dis=dis, dx=HTN)
    assert Story(engine).one(settle("P-s15", 2), "R30")
    assert Story(engine).one(settle("P-s15b", 4), "R30") is None


# ---------------------------------------------------------------- admissions and Z51 exemptions

def test_split_admission_with_evidence(engine: Engine) -> None:
    """R22: discharged from H1 on 03-10 with a cerebral infarction, readmitted to H1 on 03-18 with the same:
    fires, naming the earlier stay (event, institution, date). Readmitted to H2 instead: R22 does not fire
    (same institution only) but R29 (any institution) does."""
    s = Story(engine)
    admitted_and_discharged(s, "P-s16", "s16", "2026-03-01", "2026-03-10", dx=STROKE)
    a = s.one(stay("P-s16", "s16-adm2", 3, "2026-03-18", adm="2026-03-18", dx=STROKE), "R22")
    assert a is not None
    assert any(e.get("event_id") in ("s16-adm", "s16-set") and e.get("institution_id") == "H1"
               for e in evidence_events(a))
    t = Story(engine)
    admitted_and_discharged(t, "P-s17", "s17", "2026-03-01", "2026-03-10", dx=STROKE)
    alerts = t.send(stay("P-s17", "s17-adm2", 3, "2026-03-18", adm="2026-03-18", inst="H2", dx=STROKE))
    assert {"R29"} <= {a["rule_id"] for a in alerts} and "R22" not in {a["rule_id"] for a in alerts}


def test_planned_chemotherapy_cycles_are_exempt(engine: Engine) -> None:
    """R22/R23/R29: five chemotherapy admissions (main diagnosis Z51.1) three weeks apart raise none of
    the admission-frequency rules; an unplanned admission for the cancer 10 days after a cycle raises R29."""
    s = Story(engine)
    days = ["2026-01-05", "2026-01-26", "2026-02-16", "2026-03-09"]
    for n, d in enumerate(days):
        dis = d[:8] + f"{int(d[8:]) + 2:02d}"
        admitted_and_discharged(s, "P-s18", f"s18-{n}", d, dis, dx=CHEMO)
    alerts = s.send(stay("P-s18", "s18-5", 3, "2026-03-30", adm="2026-03-30", dx=CHEMO))
    assert not {"R22", "R23", "R29"} & {a["rule_id"] for a in alerts}
    s.send(stay("P-s18", "s18-5-set", 8, "2026-04-01", [bed("1", WARD, "2026-03-30", 2)], adm="2026-03-30",
                dis="2026-04-01", dx=CHEMO))
    late = s.send(stay("P-s18", "s18-6", 3, "2026-04-11", adm="2026-04-11", dx=LUNG_CA))
    assert "R29" in {a["rule_id"] for a in late} and "R41" not in {a["rule_id"] for a in late}


def test_frequent_admissions(engine: Engine) -> None:
    """R23: a fourth unplanned admission within a year (any institution) fires; the third does not."""
    s = Story(engine)
    for n, (d, dis) in enumerate([("2026-01-05", "2026-01-12"), ("2026-03-02", "2026-03-09")]):
        admitted_and_discharged(s, "P-s19", f"s19-{n}", d, dis, inst=f"H{n + 1}")
    assert s.one(stay("P-s19", "s19-2", 3, "2026-05-04", adm="2026-05-04", inst="H3"), "R23") is None
    s.send(stay("P-s19", "s19-2-set", 8, "2026-05-10", [bed("1", WARD, "2026-05-04", 6)], adm="2026-05-04",
                dis="2026-05-10", inst="H3", enc="P-s19-H3-2026-05-04"))
    a = s.one(stay("P-s19", "s19-3", 3, "2026-07-06", adm="2026-07-06"), "R23")
    assert a is not None and "2026-01-05" in a["message_zh"]


def test_split_admission_gap_follows_the_treating_region(engine: Engine) -> None:
    """R22 region override: Guangzhou (440100) looks back 10 days. Readmitted 12 days after discharge:
    fires at a Hangzhou hospital, not at a Guangzhou hospital (for a Hangzhou patient)."""
    s = Story(engine)
    admitted_and_discharged(s, "P-s20", "s20", "2026-03-01", "2026-03-10", dx=STROKE)
    assert s.one(stay("P-s20", "s20-adm2", 3, "2026-03-22", adm="2026-03-22", dx=STROKE), "R22")
    g = Story(engine)
    for e in (stay("P-s21", "s21-adm", 3, "2026-03-01", adm="2026-03-01", inst="GZ1", region="440100", dx=STROKE),
              stay("P-s21", "s21-set", 8, "2026-03-10", [bed("1", WARD, "2026-03-01", 9)], adm="2026-03-01",
                   dis="2026-03-10", inst="GZ1", region="440100", dx=STROKE)):
        g.send(e)
    assert g.one(stay("P-s21", "s21-adm2", 3, "2026-03-22", adm="2026-03-22", inst="GZ1", region="440100",
                      dx=STROKE), "R22") is None


# ---------------------------------------------------------------- region and the supply ledger

def test_chronic_day_limit_follows_the_treating_region(engine: Engine) -> None:
    """R18 region override: Hangzhou (330100) allows 60 days at a chronic-disease visit. 45 days of
    furosemide: fine in Hangzhou; for the same Hangzhou patient treated in Nanjing (320100, 30 days) it fires."""
    item = [line("1", FUROSEMIDE, qty=45, price=0.1, days=45)]
    assert Story(engine).one(ev("P-s22", "s22-1", "2026-04-01", med_type="14", dx=[("I50.900", "心力衰竭")],
                                items=item), "R18") is None
    a = Story(engine).one(ev("P-s23", "s23-1", "2026-04-01", med_type="14", inst="NJ1", region="320100",
                             pregion="330100", dx=[("I50.900", "心力衰竭")], items=item), "R18")
    assert a is not None and "30天" in a["message_zh"]


def test_duplicate_prescription_threshold_follows_the_treating_region(engine: Engine) -> None:
    """R19 region override: Beijing (110100) fires only above half the last supply. 30 days bought, refilled
    after 16 days (14 left): fires in Hangzhou (> 10), not in Beijing (≤ 15)."""
    def story(pid: str, inst: str, region: str) -> Story:
        s = Story(engine)
        s.send(ev(pid, f"{pid}-1", "2026-04-01", inst=inst, region=region, dx=[("E78.500", "高脂血症")],
                  items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]))
        return s
    hz = story("P-s24", "H1", "330100")
    a = hz.one(ev("P-s24", "P-s24-2", "2026-04-17", inst="H2", dx=[("E78.500", "高脂血症")],
                  items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]), "R19")
    assert a is not None and any(e.get("event_id") == "P-s24-1" and e.get("quantity") == 30 for e in evidence_events(a))
    bj = story("P-s25", "BJ1", "110100")
    assert bj.one(ev("P-s25", "P-s25-2", "2026-04-17", inst="BJ2", region="110100", pregion="330100",
                     dx=[("E78.500", "高脂血症")], items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]),
                  "R19") is None


def test_region_falls_back_to_the_patient_when_the_institution_gives_none(engine: Engine) -> None:
    """R34: a Shenzhen patient (440300 allows two institutions a day) at two clinics that send no region:
    no alert; the same at clinics in Hangzhou: an alert."""
    def day(pid: str, region: str | None, pregion: str) -> list[dict[str, Any]]:
        s = Story(engine)
        s.send(ev(pid, f"{pid}-1", "2026-04-01T08:00:00+08:00", scene=6, inst="C1", region=region, pregion=pregion,
                  dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]))
        return s.hits(ev(pid, f"{pid}-2", "2026-04-01T15:00:00+08:00", scene=6, inst="C2", region=region,
                         pregion=pregion, dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]), "R34")
    assert day("P-s26", None, "440300") == []
    assert day("P-s27", "330100", "440300") != []


def test_discharge_medication_and_a_refill_soon_after(engine: Engine) -> None:
    """R19 with 出院带药: 30 days of atorvastatin taken home on 03-10; the GP prescribes 30 more on 03-15
    (25 days held): fires naming the settlement; on 04-05 (4 days held) it does not."""
    s = Story(engine)
    s.send(stay("P-s28", "s28-adm", 3, "2026-03-01", adm="2026-03-01", dx=STROKE))
    s.send(stay("P-s28", "s28-set", 8, "2026-03-10", [
        bed("1", WARD, "2026-03-01", 9),
        line("2", ATORVASTATIN, qty=30, price=0.3, days=30, start="2026-03-10", take_home=True)],
        adm="2026-03-01", dis="2026-03-10", dx=STROKE))
    a = s.one(ev("P-s28", "s28-gp", "2026-03-15", inst="C1", dx=STROKE,
                 items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]), "R19")
    assert a is not None and [e["event_id"] for e in evidence_events(a) if e["event_id"] != "s28-gp"] == ["s28-set"]
    t = Story(engine)
    t.send(stay("P-s29", "s29-adm", 3, "2026-03-01", adm="2026-03-01", dx=STROKE))
    t.send(stay("P-s29", "s29-set", 8, "2026-03-10", [
        line("2", ATORVASTATIN, qty=30, price=0.3, days=30, start="2026-03-10", take_home=True)],
        adm="2026-03-01", dis="2026-03-10", dx=STROKE))
    assert t.one(ev("P-s29", "s29-gp", "2026-04-05", inst="C1", dx=STROKE,
                    items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]), "R19") is None


def test_edaravone_course_limit(engine: Engine) -> None:
    """R17: edaravone paid for 14 days: daily orders (scene 4) through day 15 fire on day 15; a course of
    14 days does not."""
    s = Story(engine)
    s.send(stay("P-s30", "s30-adm", 3, "2026-03-01", adm="2026-03-01", dx=STROKE))
    fired = []
    for d in range(15):
        day = f"2026-03-{d + 1:02d}"
        fired.append(bool(s.hits(stay("P-s30", f"s30-o{d}", 4, day, [line("1", EDARAVONE, qty=2, price=30.0, start=day)],
                                      adm="2026-03-01", dx=STROKE), "R17")))
    assert fired == [False] * 14 + [True]


def test_texts_of_the_stay_and_admission_rules(engine: Engine) -> None:
    """Every alert raised by a busy stay: Chinese text fully Chinese, English fully English."""
    s = Story(engine)
    s.send(stay("P-lang2", "lang2-adm", 3, "2026-03-01", adm="2026-03-01", dx=HTN))
    s.send(ev("P-lang2", "lang2-op", "2026-03-03", scene=6, inst="H2", dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]))
    s.send(stay("P-lang2", "lang2-set", 8, "2026-03-20", [
        bed("1", WARD, "2026-03-01", 20), bed("2", ICU, "2026-03-05", 1, 150.0),
        line("3", CT_HEAD, "service", 1, 150.0, start="2026-02-27"),
        line("4", BLOOD_COUNT, "service", 5, 20.0, start="2026-03-02"), line("5", CRP, "service", 1, 30.0, start="2026-03-02")],
        adm="2026-03-01", dis="2026-03-20", dx=HTN))
    assert len({a["rule_id"] for a in s.texts}) >= 4
    assert [f for a in s.texts for f in language_faults(a)] == []


def test_a_single_unpaid_piece_settled_with_the_stay(engine: Engine) -> None:
    """R10 at the inpatient settlement (the HIS sends no order events): 人参 with 黄芪 on 03-02 is a paid
    formula, 人参 alone on 03-04 is not — judged day by day. With a formula on both days: no alert."""
    ginseng, astragalus = "T000014182", "T000033429"

    def settle(pid: str, alone: bool) -> list[dict[str, Any]]:
        items = [line("1", ginseng, "herb", 10, 2.0, start="2026-03-02"), line("2", astragalus, "herb", 15, 0.3,
                                                                                 start="2026-03-02"),
                 line("3", ginseng, "herb", 10, 2.0, start="2026-03-04")]
        if not alone:
            items.append(line("4", astragalus, "herb", 15, 0.3, start="2026-03-04"))
        return Story(engine).send(stay(pid, f"{pid}-set", 8, "2026-03-06", items + [bed("9", WARD, "2026-03-01", 5)],
                                       adm="2026-03-01", dis="2026-03-06", dx=STROKE))
    assert lines_of(settle("P-s31", True), "R10") == ["3"]
    assert lines_of(settle("P-s32", False), "R10") == []
