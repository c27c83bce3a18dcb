"""An independent audit (issue 10): service dates against the settlement date, status timelines
(patient, institution, doctor), and catalogue coverage — each situation with its near miss.

Written apart from the golden cases, from docs/rules.md (*Dates*) and docs/integration.md.
"""

from __future__ import annotations

from typing import Any

from services.rules.engine import Engine
from tests.rules.audit_kit import Story, ev, language_faults, line, status
from tests.rules.audit_kit import stay as kit_stay

PAED_COLD = "XN02BEB067D001010102061"
PAED_COLD_RETIRED = "XN02BEB067D001010102024"  # in force until 2025-06-30
CEFTRIAXONE_ROCHE = "XJ01DDF049C001010101691"   # cap 45.00 until 2024-12-31, 30.00 from 2025-01-01
CEFTRIAXONE_VBP = "XJ01DDF049C001010101543"     # listed from 2024-01-01
WARD, DOUBLE = "001109000010000", "001109000020000"
NURSING_1 = "001201000020000"
CONSULT = "001102000010000"
INPT_CONSULT = "001102000050000"
METFORMIN = "XA10BAH027A001010100729"
AMLODIPINE = "XC08CAH001A001010100137"
HBA1C = "002503020050000"
PNEUMONIA = [("J15.900", "细菌性肺炎")]
DM2 = [("E11.900", "2型糖尿病")]
HTN = [("I10.x00", "高血压")]


def stay(pid: str, eid: str, *args: Any, inst: str = "H1", dx: list[tuple[str, str]] = PNEUMONIA, **kw: Any) -> dict[str, Any]:
    """An event of the patient's one stay at ``inst`` (every event here names the same encounter)."""
    return kit_stay(pid, eid, *args, inst=inst, enc=f"{pid}-{inst}-stay", dx=dx, **kw)


def lines_of(alerts: list[dict[str, Any]], rule: str) -> list[str]:
    return sorted(lid for a in alerts if a["rule_id"] == rule for lid in a["line_ids"])


# ---------------------------------------------------------------- service date vs settlement date

def test_a_birthday_during_the_stay_splits_the_child_only_lines(engine: Engine) -> None:
    """R05: the patient turns 18 on 2026-03-05 in hospital; the children's granules given on 03-03 were
    payable, those of 03-06 are not. Settled 03-08: only the 03-06 line is flagged, with its own amount."""
    s = Story(engine)
    s.send(stay("P-d01", "d01-adm", 3, "2026-03-01", [], adm="2026-03-01", birth="2008-03-05"))
    alerts = s.send(stay("P-d01", "d01-set", 8, "2026-03-08", [
        line("1", PAED_COLD, qty=3, price=1.2, start="2026-03-03"),
        line("2", PAED_COLD, qty=3, price=1.2, start="2026-03-06")], adm="2026-03-01", dis="2026-03-08",
        birth="2008-03-05"))
    r05 = [a for a in alerts if a["rule_id"] == "R05"]
    assert [a["line_ids"] for a in r05] == [["2"]] and r05[0]["amount"] == 3.6


def test_a_neonatal_diagnosis_is_judged_at_admission(engine: Engine) -> None:
    """R06: a baby admitted with neonatal jaundice at 26 days old and settled at 33 days is not flagged;
    the same diagnosis at an outpatient visit at 33 days is."""
    s = Story(engine)
    jaundice = [("P59.900", "新生儿黄疸")]
    s.send(stay("P-d02", "d02-adm", 3, "2026-02-27", [], adm="2026-02-27", birth="2026-02-01", dx=jaundice))
    assert s.one(stay("P-d02", "d02-set", 8, "2026-03-06", [line("1", WARD, "service", 7, 50.0, start="2026-02-27",
                                                                  unit="日")],
                      adm="2026-02-27", dis="2026-03-06", birth="2026-02-01", dx=jaundice), "R06") is None
    assert Story(engine).one(ev("P-d02b", "d02b-op", "2026-03-06", scene=1, birth="2026-02-01", dx=jaundice), "R06")


def test_a_price_cap_change_at_the_year_boundary(engine: Engine) -> None:
    """R32: ceftriaxone (Roche) capped at 45.00 in 2024, 30.00 from 2025. A stay over New Year billed at
    40.00 a vial: the 2024-12-30 vials are within their cap, the 2025-01-02 vials exceed by 10.00 each."""
    s = Story(engine)
    s.send(stay("P-d03", "d03-adm", 3, "2024-12-28", [], adm="2024-12-28"))
    alerts = s.send(stay("P-d03", "d03-set", 8, "2025-01-03", [
        line("1", CEFTRIAXONE_ROCHE, qty=2, price=40.0, start="2024-12-30"),
        line("2", CEFTRIAXONE_ROCHE, qty=2, price=40.0, start="2025-01-02")], adm="2024-12-28", dis="2025-01-03"))
    r32 = [a for a in alerts if a["rule_id"] == "R32"]
    assert [a["line_ids"] for a in r32] == [["2"]] and r32[0]["amount"] == 20.0


def test_a_period_limit_across_the_year_boundary(engine: Engine) -> None:
    """R16: HbA1c on 2025-12-20 and again on 2026-01-10 (21 days) fires; a natural year is no reset."""
    s = Story(engine)
    s.send(ev("P-d04", "d04-1", "2025-12-20", scene=6, dx=DM2, items=[line("1", HBA1C, "service", 1, 60.0)]))
    assert s.one(ev("P-d04", "d04-2", "2026-01-10", scene=6, dx=DM2, items=[line("1", HBA1C, "service", 1, 60.0)]),
                 "R16")


def test_a_late_pharmacy_upload_is_judged_at_its_service_date(engine: Engine) -> None:
    """R38: a pharmacy uploads on 2025-07-03 a sale of the retired children's granules made on 06-29
    (in force until 06-30): not flagged. The same product sold on 07-02 is 已退出目录 since 06-30."""
    s = Story(engine)
    late = ev("P-d05", "d05-1", "2025-07-03", scene=10, inst="PH1", etype="pharmacy", birth="2019-01-01",
              items=[line("1", PAED_COLD_RETIRED, qty=6, price=1.0, days=2, start="2025-06-29")])
    assert s.one(late, "R38") is None and s.unchecked == []
    a = s.one(ev("P-d05", "d05-2", "2025-07-03", scene=10, inst="PH1", etype="pharmacy", birth="2019-01-01",
                 items=[line("1", PAED_COLD_RETIRED, qty=6, price=1.0, days=2, start="2025-07-02")]), "R38")
    assert a is not None and "2025-06-30" in a["message_zh"] and "2025-06-30" in a["message_en"]
    assert [(u["line_id"], u["reason"], u["left_catalogue_after"]) for u in s.unchecked] == [("1", "retired", "2025-06-30")]


def test_not_yet_listed_never_listed_unmapped_and_mapped_local_codes(engine: Engine) -> None:
    """R38/R39 and unchecked_lines: a product used before its listing date, a national-format code the
    catalogue never held, a hospital code; a `<national>-<local>` code is judged as the national one."""
    s = Story(engine)
    alerts = s.send(stay("P-d06", "d06-set", 8, "2024-01-03", [
        line("1", CEFTRIAXONE_VBP, qty=2, price=20.0, start="2023-12-30"),
        line("2", "XJ01DDF049C001010109999", qty=2, price=20.0, start="2024-01-02"),
        line("3", "HIS-YP-00318", qty=1, price=15.0, start="2024-01-02"),
        line("4", f"{CONSULT}-0102", "service", 1, 10.0, start="2024-01-02")],
        adm="2023-12-29", dis="2024-01-03"))
    assert lines_of(alerts, "R38") == ["1", "2"] and lines_of(alerts, "R39") == ["3"]
    reasons = {u["line_id"]: u["reason"] for u in s.unchecked}
    assert reasons == {"1": "not_yet_listed", "2": "not_listed", "3": "unmapped"}
    r38 = {a["line_ids"][0]: a for a in alerts if a["rule_id"] == "R38"}
    assert "2024-01-01" in r38["1"]["message_zh"]


def test_a_known_code_is_never_reported_unchecked(engine: Engine) -> None:
    """Near miss for the coverage cases: an ordinary prescription has no unchecked line and no R38/R39."""
    s = Story(engine)
    alerts = s.send(ev("P-d07", "d07-1", "2026-04-01", dx=DM2, items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]))
    assert not {"R38", "R39"} & {a["rule_id"] for a in alerts} and s.unchecked == []


# ---------------------------------------------------------------- patient status timeline

def test_care_up_to_the_day_of_death_is_payable(engine: Engine) -> None:
    """R31: died in hospital on 03-05 (recorded that day); the settlement on 03-06 carries the stay's
    lines up to 03-05 (payable) and one line dated 03-06 (not payable; R26 reports it too)."""
    s = Story(engine)
    s.send(stay("P-d08", "d08-adm", 3, "2026-03-01", [], adm="2026-03-01"))
    s.status(status("P-d08", "deceased", "2026-03-05", "2026-03-05T20:00:00+08:00"))
    alerts = s.send(stay("P-d08", "d08-set", 8, "2026-03-06", [
        line("1", WARD, "service", 4, 50.0, start="2026-03-01", unit="日"),
        line("2", INPT_CONSULT, "service", 1, 20.0, start="2026-03-05"),
        line("3", INPT_CONSULT, "service", 1, 20.0, start="2026-03-06")], adm="2026-03-01", dis="2026-03-05"))
    assert lines_of(alerts, "R31") == ["3"] and lines_of(alerts, "R26") == ["3"]
    r31 = next(a for a in alerts if a["rule_id"] == "R31")
    assert r31["amount"] == 20.0


def test_a_suspension_affects_only_lines_inside_it(engine: Engine) -> None:
    """R31: 失信 suspension 03-01..03-31. A pharmacy sale dated 02-27 uploaded 03-02: not flagged;
    one dated 03-02: flagged; one dated 04-01: not flagged."""
    s = Story(engine).status(status("P-d09", "suspended", "2026-03-01", "2026-02-27", reason="骗保失信联合惩戒",
                                    until="2026-03-31"))

    def sale(eid: str, d: str) -> dict[str, Any]:
        return ev("P-d09", eid, "2026-03-02" if d < "2026-03-02" else d, scene=10, inst="PH1", etype="pharmacy",
                  items=[line("1", METFORMIN, qty=90, price=0.1, days=30, start=d)])
    assert s.one(sale("d09-a", "2026-02-27"), "R31") is None
    assert s.one(sale("d09-b", "2026-03-02"), "R31")
    assert s.one(sale("d09-c", "2026-04-01"), "R31") is None


def test_an_active_record_lifts_a_suspension_but_not_a_death(engine: Engine) -> None:
    """R31: a newer `active` record ends a suspension; an explicit revocation (same effective_from,
    newer update) lifts a death recorded in error; a routine enrolment with a later start does not."""
    s = Story(engine).status(status("P-d10", "suspended", "2026-03-01", "2026-02-27", reason="暂停联网结算"))
    s.status(status("P-d10", "active", "2026-03-10", "2026-03-10", reason="恢复"))
    assert s.one(ev("P-d10", "d10-1", "2026-03-12", dx=DM2, items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]), "R31") is None
    t = Story(engine).status(status("P-d11", "deceased", "2026-03-01", "2026-03-02"))
    t.status(status("P-d11", "active", "2026-03-01", "2026-03-04", reason="误报死亡，撤销"))
    assert t.one(ev("P-d11", "d11-1", "2026-03-12", dx=DM2, items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]), "R31") is None
    u = Story(engine).status(status("P-d12", "deceased", "2026-03-01", "2026-03-02"))
    u.status(status("P-d12", "active", "2026-03-08", "2026-03-09", reason="参保登记同步"))
    a = u.one(ev("P-d12", "d12-1", "2026-03-12", dx=DM2, items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]), "R31")
    assert a is not None and "2026-03-01" in a["message_zh"]


def test_a_late_death_finds_the_pharmacy_sales_after_it(engine: Engine) -> None:
    """事后: sales on the card on 03-02 (before the death) and 03-09 (after) are found when the death of
    03-03 is recorded on 03-20: only the 03-09 sale, with its pharmacy and date."""
    s = Story(engine)
    s.send(ev("P-d13", "d13-1", "2026-03-02", scene=10, inst="PH1", etype="pharmacy",
              items=[line("1", AMLODIPINE, qty=30, price=0.2, days=30)]))
    s.send(ev("P-d13", "d13-2", "2026-03-09", scene=10, inst="PH2", etype="pharmacy",
              items=[line("1", METFORMIN, qty=90, price=0.1, days=30)]))
    found = engine.retrospective(s.state, status("P-d13", "deceased", "2026-03-03", "2026-03-20"))
    assert [(f["event_id"], f["institution_id"], f["service_date"]) for f in found] == [("d13-2", "PH2", "2026-03-09")]


# ---------------------------------------------------------------- institution and doctor timelines

SUSPENSION = {"subject": "institution", "institution_id": "H-AUD-42", "status": "suspended",
              "effective_from": "2026-03-01", "effective_to": "2026-03-31", "updated_at": "2026-02-27T10:00:00+08:00",
              "document_no": "杭医保稽〔2026〕7号", "reason": "违规结算，暂停医保协议"}


def test_an_institution_suspension_flags_only_lines_dated_inside_it(engine: Engine) -> None:
    """R42: a stay from 02-25 at a hospital suspended 03-01..03-31, settled 03-03: the line of 02-26 is
    payable, the line of 03-02 is not; the evidence names the bureau's document."""
    s = Story(engine).provider(SUSPENSION)
    s.send(stay("P-d14", "d14-adm", 3, "2026-02-25", [], adm="2026-02-25", inst="H-AUD-42"))
    alerts = s.send(stay("P-d14", "d14-set", 8, "2026-03-03", [
        line("1", INPT_CONSULT, "service", 1, 20.0, start="2026-02-26"),
        line("2", INPT_CONSULT, "service", 1, 20.0, start="2026-03-02")], adm="2026-02-25", dis="2026-03-03",
        inst="H-AUD-42"))
    assert lines_of(alerts, "R42") == ["2"]
    r42 = next(a for a in alerts if a["rule_id"] == "R42")
    assert any(e.get("document_no") == "杭医保稽〔2026〕7号" for e in r42["evidence"])
    assert language_faults(r42) == []


def test_an_institution_suspension_ends_and_can_be_revoked(engine: Engine) -> None:
    """R42 near misses: a visit on 04-01 (after the period) and, once the bureau revokes the suspension,
    a visit on 03-10."""
    s = Story(engine).provider(SUSPENSION)
    assert s.one(ev("P-d15", "d15-1", "2026-04-01", inst="H-AUD-42", scene=6, dx=HTN,
                    items=[line("1", CONSULT, "service", 1, 10.0)]), "R42") is None
    assert s.one(ev("P-d15", "d15-2", "2026-03-10", inst="H-AUD-42", scene=6, dx=HTN,
                    items=[line("1", CONSULT, "service", 1, 10.0)]), "R42")
    s.provider({**SUSPENSION, "updated_at": "2026-03-11T10:00:00+08:00", "revoked": True})
    assert s.one(ev("P-d15", "d15-3", "2026-03-12", inst="H-AUD-42", scene=6, dx=HTN,
                    items=[line("1", CONSULT, "service", 1, 10.0)]), "R42") is None


DOCTOR = {"subject": "doctor", "doctor_id": "D-AUD-43", "status": "suspended", "effective_from": "2026-03-01",
          "effective_to": "2026-05-31", "updated_at": "2026-02-27T10:00:00+08:00", "reason": "医保医师记分满12分"}


def test_a_suspended_doctor_is_judged_per_line_and_emergencies_are_exempt(engine: Engine) -> None:
    """R43: at one visit the suspended doctor orders the test and a colleague the drug: only the test
    is flagged. The same doctor at an emergency visit (med_type 13) is exempt."""
    s = Story(engine).provider(DOCTOR)
    alerts = s.send(ev("P-d16", "d16-1", "2026-03-10", scene=6, doctor_id="D-COLL-7", dx=DM2, items=[
        line("1", HBA1C, "service", 1, 60.0, doctor="D-AUD-43"), line("2", METFORMIN, qty=90, price=0.1, days=30)]))
    assert lines_of(alerts, "R43") == ["1"]
    assert Story(engine).provider(DOCTOR).one(ev("P-d16b", "d16-2", "2026-03-10", scene=6, med_type="13",
                                                 doctor_id="D-AUD-43", dx=[("R07.400", "胸痛")],
                                                 items=[line("1", CONSULT, "service", 1, 10.0)]), "R43") is None


def test_a_death_outranks_later_records_of_other_statuses(engine: Engine) -> None:
    """R31: death on 03-01; a 失信 suspension from 03-10 and an `uninsured` period over February recorded
    later. After the death the message says deceased; before it, the uninsured period applies."""
    s = Story(engine).status(status("P-d17", "deceased", "2026-03-01", "2026-03-02"))
    s.status(status("P-d17", "suspended", "2026-03-10", "2026-03-12", reason="失信"))
    s.status(status("P-d17", "uninsured", "2026-02-01", "2026-03-12", reason="断缴", until="2026-03-31"))
    visit = [line("1", CONSULT, "service", 1, 10.0)]
    a = s.one(ev("P-d17", "d17-1", "2026-03-15", scene=6, dx=HTN, items=visit), "R31")
    assert a is not None and "已死亡" in a["message_zh"] and "2026-03-01" in a["message_zh"]
    b = s.one(ev("P-d17", "d17-2", "2026-02-15", scene=6, dx=HTN, items=visit), "R31")
    assert b is not None and "已死亡" not in b["message_zh"]


def test_patient_status_records_arriving_out_of_order(engine: Engine) -> None:
    """R31: the bureau's 恢复 (active from 03-10, updated 03-10) reaches the worker before the suspension
    it ends (from 03-01, updated 02-27): a visit on 03-05 is flagged, one on 03-12 is not."""
    s = Story(engine).status(status("P-d18", "active", "2026-03-10", "2026-03-10", reason="恢复"))
    s.status(status("P-d18", "suspended", "2026-03-01", "2026-02-27", reason="失信"))
    visit = [line("1", CONSULT, "service", 1, 10.0)]
    assert s.one(ev("P-d18", "d18-1", "2026-03-05", scene=6, dx=HTN, items=visit), "R31")
    assert s.one(ev("P-d18", "d18-2", "2026-03-12", scene=6, dx=HTN, items=visit), "R31") is None


def test_institution_status_shortened_restored_and_out_of_order(engine: Engine) -> None:
    """R42: a suspension from 03-01 is shortened to end 03-15 by a newer record (which arrives first);
    another institution's open suspension is ended by an `active` period from 03-15 (恢复)."""
    base = {**SUSPENSION, "institution_id": "H-AUD-43"}
    s = Story(engine).provider({**base, "effective_to": "2026-03-15", "updated_at": "2026-03-05T10:00:00+08:00"})
    s.provider(base)  # the older record, to 03-31, arrives second
    visit = [line("1", CONSULT, "service", 1, 10.0)]
    assert s.one(ev("P-d19", "d19-1", "2026-03-14", inst="H-AUD-43", scene=6, dx=HTN, items=visit), "R42")
    assert s.one(ev("P-d19", "d19-2", "2026-03-20", inst="H-AUD-43", scene=6, dx=HTN, items=visit), "R42") is None
    open_ended = {k: v for k, v in SUSPENSION.items() if k != "effective_to"} | {"institution_id": "H-AUD-44"}
    t = Story(engine).provider(open_ended).provider({
        "subject": "institution", "institution_id": "H-AUD-44", "status": "active", "effective_from": "2026-03-15",
        "updated_at": "2026-03-14T10:00:00+08:00", "reason": "整改到位，恢复协议"})
    assert t.one(ev("P-d20", "d20-1", "2026-03-10", inst="H-AUD-44", scene=6, dx=HTN, items=visit), "R42")
    assert t.one(ev("P-d20", "d20-2", "2026-03-16", inst="H-AUD-44", scene=6, dx=HTN, items=visit), "R42") is None


def test_a_suspended_doctors_stay_lines_before_the_suspension(engine: Engine) -> None:
    """R43 near miss: the suspended doctor's inpatient line dated 02-26 (before 03-01), settled 03-03, is
    payable; a line the doctor orders on 03-02 is not."""
    s = Story(engine).provider(DOCTOR)
    alerts = s.send(stay("P-d21", "d21-set", 8, "2026-03-03", [
        line("1", INPT_CONSULT, "service", 1, 20.0, start="2026-02-26", unit="日"),
        line("2", INPT_CONSULT, "service", 1, 20.0, start="2026-03-02", unit="日")], adm="2026-02-25",
        dis="2026-03-03", doctor_id="D-AUD-43"))
    assert lines_of(alerts, "R43") == ["2"]


def test_policy_citations_of_the_insured_persons_duties(engine: Engine) -> None:
    """The alert's policy basis is what a supervisor quotes: 条例第十七条 (own card, no double benefits), not
    第十九条 (resale of drugs). R31 for a suspended patient, R34 for two hospitals a day, R41 for a second
    admission."""
    s = Story(engine).status(status("P-d22", "suspended", "2026-03-01", "2026-02-27", reason="失信"))
    r31 = s.one(ev("P-d22", "d22-1", "2026-03-10", scene=1, dx=HTN), "R31")
    t = Story(engine)
    t.send(ev("P-d23", "d23-1", "2026-04-01T08:00:00+08:00", scene=6, dx=HTN, items=[line("1", CONSULT, "service", 1, 10.0)]))
    r34 = t.one(ev("P-d23", "d23-2", "2026-04-01T15:00:00+08:00", scene=6, inst="H2", dx=HTN,
                   items=[line("1", CONSULT, "service", 1, 10.0)]), "R34")
    u = Story(engine)
    u.send(stay("P-d24", "d24-adm", 3, "2026-03-01", [], adm="2026-03-01"))
    r41 = u.one(stay("P-d24", "d24-adm2", 3, "2026-03-05", [], adm="2026-03-05", inst="H2"), "R41")
    for alert in (r31, r34, r41):
        assert alert is not None
        assert "第十七条" in alert["policy_basis"] and "第十九条" not in alert["policy_basis"], alert["policy_basis"]


def test_service_dates_are_china_dates_whatever_the_offset(engine: Engine) -> None:
    """R31 after a death on 03-04: a sale stamped 2026-03-04T17:00Z is 03-05 01:00 in China (after the death);
    one stamped 15:00Z (23:00 in China) or 23:30 without an offset (read as China time) is on the day of death."""
    def sale(pid: str, start: str) -> dict[str, Any] | None:
        s = Story(engine).status(status(pid, "deceased", "2026-03-04", "2026-03-05"))
        return s.one(ev(pid, f"{pid}-1", "2026-03-06T10:00:00+08:00", scene=10, inst="PH1", etype="pharmacy",
                        items=[line("1", METFORMIN, qty=90, price=0.1, days=30, start=start)]), "R31")
    assert sale("P-d25", "2026-03-04T17:00:00Z") is not None
    assert sale("P-d26", "2026-03-04T15:00:00Z") is None
    assert sale("P-d27", "2026-03-04T23:30:00") is None


def test_a_multi_day_bed_line_across_a_death_or_a_suspension_counts_only_the_days_inside(engine: Engine) -> None:
    """R31/R26/R42: a ward bed billed as one line of 5 days (03-01..03-05). The patient died on 03-03: 03-04
    and 03-05 are not payable (100, not 250) and are charged after the death. The hospital's agreement is suspended from 03-04: the same 2
    days. A 3-day line (to 03-03) is payable in both."""
    def settle(s: Story, pid: str, inst: str, days: int) -> list[dict[str, Any]]:
        return s.send(stay(pid, f"{pid}-set", 8, "2026-03-06", [line("1", WARD, "service", days, 50.0,
                                                                     start="2026-03-01", unit="日")],
                           adm="2026-03-01", dis="2026-03-06", inst=inst))
    died = status("P-d28", "deceased", "2026-03-03", "2026-03-10")
    alerts = settle(Story(engine).status(died), "P-d28", "H1", 5)
    [r31] = [a for a in alerts if a["rule_id"] == "R31"]
    [r26] = [a for a in alerts if a["rule_id"] == "R26"]  # the bed days after the death, dated from 03-04
    assert r31["amount"] == 100.0 and r26["amount"] == 100.0 and "2026-03-04" in r26["message_zh"]
    assert lines_of(settle(Story(engine).status(status("P-d29", "deceased", "2026-03-03", "2026-03-10")),
                           "P-d29", "H1", 3), "R31") == []
    rec = {**SUSPENSION, "institution_id": "H-AUD-45", "effective_from": "2026-03-04", "effective_to": None}
    rec = {k: v for k, v in rec.items() if v is not None}
    [r42] = [a for a in settle(Story(engine).provider(rec), "P-d30", "H-AUD-45", 5) if a["rule_id"] == "R42"]
    assert r42["amount"] == 100.0
    assert lines_of(settle(Story(engine).provider(rec), "P-d31", "H-AUD-45", 3), "R42") == []


def test_coverage_of_each_code_format(engine: Engine) -> None:
    """R38/R39 by code format: a retired national code sent with a local suffix is still 已退出目录; an
    unlisted 15-digit service, 10-digit (T+9) piece and 27-character consumable are 目录外; a herb sent by its
    hospital code is 未对照; a listed service with a local suffix is judged normally."""
    cases = [
        ("P-d32", "2025-07-05", line("1", f"{PAED_COLD_RETIRED}-HZ01", qty=6, price=1.0, days=2), "R38", "retired"),
        ("P-d33", "2026-04-01", line("1", "001102000099000", "service", 1, 10.0), "R38", "not_listed"),
        ("P-d34", "2026-04-01", line("1", "T000099001", "herb", 10, 1.0), "R38", "not_listed"),
        ("P-d35", "2026-04-01", line("1", "C99010000110000000000000001", "consumable", 1, 10.0), "R38", "not_listed"),
        ("P-d36", "2026-04-01", line("1", "ZY-0231", "herb", 10, 1.0), "R39", "unmapped"),
    ]
    for pid, day, item, rule, reason in cases:
        s = Story(engine)
        alerts = s.send(ev(pid, f"{pid}-1", day, scene=6, birth="2020-01-01", dx=[("J06.900", "急性上呼吸道感染")],
                           items=[item]))
        assert lines_of(alerts, rule) == ["1"], pid
        assert [(u["line_id"], u["reason"]) for u in s.unchecked] == [("1", reason)], pid
    s = Story(engine)
    alerts = s.send(ev("P-d37", "d37-1", "2026-04-01", scene=6, dx=HTN, items=[line("1", f"{CONSULT}-A1", "service", 1, 10.0)]))
    assert not {"R38", "R39"} & {a["rule_id"] for a in alerts} and s.unchecked == []
