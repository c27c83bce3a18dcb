"""NHSA 3101/3102/3103 → native events and back: pure mapping, no broker."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.contracts.decision import Alert, Decision
from services.dialects import nhsa
from services.dialects.common import CST, first_error
from services.dialects.exceptions import MappingError
from tests.dialects.conftest import example

OUTPATIENT = "nhsa-analysis.request.3101-outpatient.json"
INPATIENT = "nhsa-analysis.request.3102-inpatient.json"


def parse(body: dict[str, Any]) -> nhsa.NhsaAnalysisRequest:
    return nhsa.NhsaAnalysisRequest.model_validate(body)


def plan(body: dict[str, Any]) -> nhsa.PatientPlan:
    return nhsa.plan_analysis(parse(body))[0]


def error_field(body: dict[str, Any]) -> str:
    try:
        nhsa.plan_analysis(parse(body))
    except ValidationError as exc:
        return first_error(exc.errors())[0]
    except MappingError as exc:
        return exc.field
    raise AssertionError("no error")


def patient(body: dict[str, Any]) -> dict[str, Any]:
    return body["input"]["data"]["patient_dtos"][0]


# -- the current visit -------------------------------------------------------------
def test_outpatient_current_visit_maps_every_documented_field() -> None:
    p = plan(example(OUTPATIENT))
    ev = p.current.to_wire()
    assert ev["scene"] == 2 and ev["occurred_at"] == "2026-03-11T09:30:00+08:00"
    assert ev["institution"] == {"id": "H1", "level": 3, "region": "330100"}  # medins_lv 02 三级甲等
    assert ev["patient"] == {"id": "P330100000001", "gender": "M", "birth_date": "1958-04-12",
                             "insurance_type": "310", "region": "330100"}
    assert ev["encounter"]["id"] == "MD20260311001" and ev["encounter"]["type"] == "outpatient"
    assert ev["encounter"]["med_type"] == "11" and ev["encounter"]["department"] == "A03.01"
    assert ev["diagnoses"] == [{"code": "I10", "name": "原发性高血压", "main": True},
                               {"code": "E78.500", "name": "高脂血症", "main": False}]
    [item] = ev["items"]
    assert item["line_id"] == "RX20260311001-1" and item["code"] == "XC10AAA067A001010104321"
    assert item["kind"] == "drug" and item["quantity"] == 30 and item["unit_price"] == 0.13
    assert item["amount"] == 3.9 and item["days_supply"] == 30  # 03-11 → 04-10
    assert item["started_at"] == "2026-03-11T09:20:00+08:00"
    assert p.patn_id == "P330100000001" and p.mdtrt_id == "MD20260311001"


def test_vendor_extra_fields_are_ignored() -> None:
    body = example(OUTPATIENT)
    plain = copy.deepcopy(body)
    for d in (plain, plain["input"]["data"], patient(plain), patient(plain)["fsi_encounter_dtos"][0],
              patient(plain)["fsi_encounter_dtos"][0]["fsi_order_dtos"][0]):
        for k in [k for k in d if k.startswith("x_vendor")]:
            del d[k]
    assert plain != body
    assert plan(plain).current == plan(body).current


def test_gender_follows_the_national_dictionary() -> None:
    for gend, expected in (("1", "M"), (2, "F"), ("9", "U"), ("0", "U"), ("女", "F")):
        body = example(OUTPATIENT)
        patient(body)["gend"] = gend
        assert plan(body).current.patient.gender.value == expected


@pytest.mark.parametrize(("lv", "level"), [("01", 3), ("02", 3), ("05", 2), ("10", 1), ("1", 3), ("3", 1),
                                           ("二级乙等", 2), ("11", None), ("99", None), (None, None)])
def test_institution_level_where_mappable(lv: str | None, level: int | None) -> None:
    assert nhsa.institution_level(lv) == level


def test_hilist_type_and_chrg_type_give_the_item_kind() -> None:
    body = example(OUTPATIENT)
    enc = patient(body)["fsi_encounter_dtos"][0]
    order = enc["fsi_order_dtos"][0]
    kinds = []
    for hilist, chrg in (("101", None), ("102", None), ("201", None), ("301", None), (None, "10"), (None, "08"),
                         (None, "11"), (None, "04")):
        o = {k: v for k, v in order.items() if k not in ("hilist_type", "chrg_type")}
        o.update({k: v for k, v in (("hilist_type", hilist), ("chrg_type", chrg)) if v})
        enc["fsi_order_dtos"] = [o]
        kinds.append(plan(body).current.items[0].kind.value)
    assert kinds == ["drug", "herb", "service", "consumable", "herb", "consumable", "drug", "service"]


def test_days_supply_absent_without_both_dates_and_lenient_numbers() -> None:
    body = example(OUTPATIENT)
    order = patient(body)["fsi_encounter_dtos"][0]["fsi_order_dtos"][0]
    del order["drord_stop_date"]
    order["cnt"], order["pric"], order["sumamt"] = " 28 ", "", None
    item = plan(body).current.items[0]
    assert item.days_supply is None and item.quantity == 28 and item.unit_price is None and item.amount is None


def test_only_orders_flagged_current_are_evaluated_and_returns_are_skipped() -> None:
    body = example(OUTPATIENT)
    enc = patient(body)["fsi_encounter_dtos"][0]
    first = enc["fsi_order_dtos"][0]
    enc["fsi_order_dtos"] = [
        first,
        {**first, "rx_id": "OLD-1", "curr_drord_flag": "0", "hilist_code": "XB01ACA056A001010100217"},
        {**first, "rx_id": "RET-1", "cnt": -10, "sumamt": -1.3},  # a partial return: the rest is still supplied
    ]
    assert [i.line_id for i in plan(body).current.items] == ["RX20260311001-1"]
    assert not [e for e in plan(body).history if e.event_type == "cancellation"]  # nothing refunded in full
    for o in enc["fsi_order_dtos"]:
        o.pop("curr_drord_flag", None)  # no flags at all: every order is current
    assert [i.line_id for i in plan(body).current.items] == ["RX20260311001-1", "OLD-1"]


def test_an_order_refunded_in_full_becomes_a_cancellation() -> None:
    """退费: the order and its refund line net to nothing; the code leaves the patient's history (a native
    cancellation written before the current event) instead of being judged or silently dropped."""
    body = example(OUTPATIENT)
    enc = patient(body)["fsi_encounter_dtos"][0]
    first = enc["fsi_order_dtos"][0]
    enc["fsi_order_dtos"] = [first, {**first, "rx_id": "RET-1", "cnt": -first_cnt(first), "sumamt": -3.9}]
    p = plan(body)
    assert p.current.items == []
    [cancel] = [e for e in p.history if e.event_type == "cancellation"]
    assert [(i.code, i.quantity) for i in cancel.items] == [(first["hilist_code"], float(first_cnt(first)))]
    assert cancel.encounter.id == p.current.encounter.id and p.history[-1] is cancel
    assert plan(body).history[-1].event_id == cancel.event_id  # deterministic: a re-send is a retry


def first_cnt(order: dict) -> float:
    return float(str(order["cnt"]).strip())


def test_trig_scen_list_picks_the_first_scene_that_fits_the_visit() -> None:
    body = example(INPATIENT)
    body["input"]["data"]["trig_scen"] = "2,9"
    assert plan(body).current.scene == 9  # an inpatient visit: 2 does not fit
    body["input"]["data"]["trig_scen"] = "4"
    p = plan(body)
    assert p.current.scene == 4 and p.current.encounter.discharged_at is None


def test_inpatient_settlement_uses_discharge_diagnoses_and_times() -> None:
    p = plan(example(INPATIENT))
    ev = p.current
    assert ev.scene == 9 and ev.encounter.type.value == "inpatient"
    assert ev.encounter.admitted_at.isoformat() == "2026-02-20T09:00:00+08:00"
    assert ev.encounter.discharged_at.isoformat() == "2026-02-27T10:00:00+08:00"
    assert [d.code for d in ev.diagnoses] == ["J18.000"] and ev.diagnoses[0].main
    assert ev.occurred_at.isoformat() == "2026-02-27T15:00:00+08:00"  # inf_time 20260227150000
    assert ev.patient.gender.value == "F" and ev.patient.birth_date.isoformat() == "1950-07-03"
    assert ev.institution.level == 3  # 三级甲等
    assert [i.line_id for i in ev.items] == ["YZ0001", "YZ0002", "YZ0003"]  # the refund line (cnt -1) skipped


# -- history -------------------------------------------------------------------------
def test_earlier_outpatient_visit_becomes_a_scene_6_event_at_its_own_institution() -> None:
    p = plan(example(OUTPATIENT))
    [h] = p.history
    assert h.scene == 6 and h.institution.id == "H2" and h.institution.level == 2
    assert h.encounter.id == "MD20260301007" and h.occurred_at.isoformat() == "2026-03-01T10:00:00+08:00"
    assert h.event_id.startswith("nhsa-h6-MD20260301007-")
    assert h.items[0].days_supply == 30 and h.items[0].code == "XC10AAA067A001010101234"


def test_earlier_stay_becomes_admission_and_settlement_events_oldest_first() -> None:
    p = plan(example(INPATIENT))
    assert [(h.scene, h.occurred_at.date().isoformat()) for h in p.history] == [(3, "2026-02-01"), (8, "2026-02-10")]
    adm, dis = p.history
    assert adm.encounter.discharged_at is None and dis.encounter.discharged_at is not None
    assert dis.diagnoses[0].code == "J18.900" and dis.diagnoses[0].main
    assert adm.event_id.startswith("nhsa-h3-ZY20260201003-") and dis.event_id.startswith("nhsa-h8-ZY20260201003-")


def test_event_ids_are_deterministic_and_follow_the_facts() -> None:
    a, b = plan(example(OUTPATIENT)), plan(example(OUTPATIENT))
    assert a.current.event_id == b.current.event_id
    assert [h.event_id for h in a.history] == [h.event_id for h in b.history]
    body = example(OUTPATIENT)
    body["inf_time"] = "2026-03-11 17:45:00"  # a retry later the same day: the same event
    body["msgid"] = "another-message"
    body["input"]["data"]["task_id"] = "another-task"
    assert plan(body).current.event_id == a.current.event_id
    body["inf_time"] = "2026-03-12 09:00:00"  # the next day: another event
    assert plan(body).current.event_id != a.current.event_id
    body = example(OUTPATIENT)
    patient(body)["fsi_encounter_dtos"][0]["fsi_order_dtos"][0]["cnt"] = 60  # the doctor changed the order
    changed = plan(body)
    assert changed.current.event_id != a.current.event_id
    assert [h.event_id for h in changed.history] == [h.event_id for h in a.history]


def test_unsafe_vendor_ids_are_replaced_by_stable_digests() -> None:
    body = example(OUTPATIENT)
    patient(body)["patn_id"] = "病人 0001"
    patient(body)["curr_mdtrt_id"] = patient(body)["fsi_encounter_dtos"][0]["mdtrt_id"] = "就诊/0001"
    p, again = plan(body), plan(copy.deepcopy(body))
    assert p.current.patient.id.startswith("p-") and p.current.patient.id == again.current.patient.id
    assert p.current.encounter.id.startswith("m-")
    assert p.patn_id == "病人 0001" and p.mdtrt_id == "就诊/0001"  # answered as sent


# -- errors name the field -------------------------------------------------------------
@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: patient(b).pop("gend"), "input.data.patient_dtos[0].gend"),
    (lambda b: patient(b).update(brdy="1958-13-40"), "input.data.patient_dtos[0].brdy"),
    (lambda b: patient(b).update(gend=""), "input.data.patient_dtos[0].gend"),
    (lambda b: b.pop("fixmedins_code"), "fixmedins_code"),
    (lambda b: b.pop("inf_time"), "inf_time"),
    (lambda b: patient(b).pop("patn_id"), "input.data.patient_dtos[0].patn_id"),
    (lambda b: patient(b).pop("fsi_encounter_dtos"), "input.data.patient_dtos[0].fsi_encounter_dtos"),
    (lambda b: patient(b).pop("curr_mdtrt_id"), "input.data.patient_dtos[0].curr_mdtrt_id"),  # 2 encounters
    (lambda b: patient(b)["fsi_encounter_dtos"][0]["fsi_order_dtos"][0].update(hilist_code=""),
     "input.data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].hilist_code"),
    (lambda b: b["input"]["data"].update(patient_dtos=[]), "input.data.patient_dtos"),
    (lambda b: b["input"]["data"].update(trig_scen="11"), "input.data.trig_scen"),
    (lambda b: patient(b).update(curr_mdtrt_id="NOPE"), "input.data.patient_dtos[0].curr_mdtrt_id"),
    (lambda b: patient(b)["fsi_encounter_dtos"][0]["fsi_order_dtos"][0].pop("cnt"),
     "input.data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].cnt"),
    (lambda b: patient(b)["fsi_encounter_dtos"][0]["fsi_order_dtos"][0].update(cnt="lots"),
     "input.data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].cnt"),
    (lambda b: patient(b)["fsi_encounter_dtos"][0]["fsi_order_dtos"][0].update(hilist_type="", chrg_type=""),
     "input.data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].hilist_type"),
    (lambda b: patient(b)["fsi_encounter_dtos"][1].pop("adm_date") and
     [o.pop("drord_begn_date") for o in patient(b)["fsi_encounter_dtos"][1]["fsi_order_dtos"]],
     "input.data.patient_dtos[0].fsi_encounter_dtos[1].adm_date"),
    (lambda b: patient(b)["fsi_encounter_dtos"][1].update(mdtrt_id="MD20260311001"),
     "input.data.patient_dtos[0].fsi_encounter_dtos[1].mdtrt_id"),
    (lambda b: patient(b)["fsi_encounter_dtos"][0].update(adm_date="2026-03-12", dscg_date="2026-03-11"),
     "input.data.patient_dtos[0].fsi_encounter_dtos[0].dscg_date"),
])
def test_a_bad_or_missing_field_is_named(mutate: Any, field: str) -> None:
    body = example(OUTPATIENT)
    mutate(body)
    assert error_field(body) == field


def test_dspo_way_rea_required_when_continuing() -> None:
    body = example("nhsa-feedback.request.3103.json")
    body["input"]["data"]["warns"][0]["dspo_way_rea"] = ""
    with pytest.raises(ValidationError) as info:
        nhsa.NhsaFeedbackRequest.model_validate(body)
    assert first_error(info.value.errors())[0] == "input.data.warns[0].dspo_way_rea"
    body["input"]["data"]["warns"][0]["dspo_way"] = "3"
    with pytest.raises(ValidationError) as info:
        nhsa.NhsaFeedbackRequest.model_validate(body)
    assert first_error(info.value.errors())[0] == "input.data.warns[0].dspo_way"


# -- results ---------------------------------------------------------------------------
def _alert(rule: str = "R19", line_ids: tuple[str, ...] = ("RX20260311001-1",), **kw: Any) -> Alert:
    return Alert.model_validate({"alert_id": f"d-0a1b2c3d4e5f60718293.{rule}.1", "rule_id": rule, "rule_version": "1.0.0",
            "gz_code": "GZ10000301006", "name_zh": "重复开药", "name_en": "Duplicate prescription",
            "result_type": "suspicious", "indicator": "warning", "severity": "W", "message_zh": "重复开药：…",
            "message_en": "Duplicate prescription: …", "line_ids": list(line_ids), "amount": 3.9,
            "evidence": [{"kind": "event", "event_id": "e1", "institution_id": "H2", "date": "2026-03-01",
                          "item_code": "X", "item_name": "阿托伐他汀钙片", "quantity": 30, "days_supply": 30},
                         {"kind": "kb", "table": "drugs", "code": "X", "detail": "ingredient=atorvastatin"}],
            "policy_basis": "《条例》第十五条", "region": "default", **kw})


def test_alert_becomes_a_national_result() -> None:
    p = plan(example(OUTPATIENT))
    r = nhsa.result(_alert(), p, "T1")
    nhsa.NhsaResult.model_validate(r)
    assert r["jr_id"] == "d-0a1b2c3d4e5f60718293.R19.1" and r["rule_id"] == "R19" and r["rule_name"] == "重复开药"
    assert r["patn_id"] == "P330100000001" and r["mdtrt_id"] == "MD20260311001" and r["task_id"] == "T1"
    assert r["judge_result_detail_dtos"] == [{
        "jrd_id": "d-0a1b2c3d4e5f60718293.R19.1.1", "patn_id": "P330100000001", "mdtrt_id": "MD20260311001",
        "rx_id": "RX20260311001-1", "vola_item_type": "101", "vola_amt": 3.9}]
    assert r["sev_deg"] == "2" and r["sev_deg_name"] == "可疑" and r["rule_warn_lv"] == "2"
    assert r["vola_amt"] == 3.9 and r["vola_amt_stas"] == "1" and r["vola_bhvr_type"] == "GZ10000301006"
    assert "2026-03-01 H2 阿托伐他汀钙片" in r["vola_evid"] and "依据：《条例》第十五条" in r["vola_evid"]
    definite = nhsa.result(_alert("R03", (), result_type="definite", indicator="critical", amount=0.0), p, "T1")
    assert definite["sev_deg"] == "1" and definite["sev_deg_name"] == "明确违规" and definite["rule_warn_lv"] == "1"
    assert definite["judge_result_detail_dtos"] == [] and definite["vola_amt_stas"] == "0"


def test_rule_ids_filter_on_our_ids_and_gz_codes_only() -> None:
    a19, a03 = _alert("R19"), _alert("R03", gz_code="GZ10000204006")
    assert nhsa.rule_filter(["R19"]) == {"R19"}
    assert [nhsa.wanted(a, nhsa.rule_filter(["R19"])) for a in (a19, a03)] == [True, False]
    assert [nhsa.wanted(a, nhsa.rule_filter("GZ10000204")) for a in (a19, a03)] == [False, True]
    # the province's own rule ids mean nothing here: no filtering
    assert nhsa.rule_filter(["330100-0012", "abc"]) == frozenset()
    assert nhsa.wanted(a19, nhsa.rule_filter(["330100-0012"]))


def _D(status: str, alerts: list[Alert] | None = None) -> Decision:
    return Decision(engine_status=status, alerts=alerts or [], replayed=False,  # type: ignore[arg-type]
                    event_id="e", decision_id="d-0a1b2c3d4e5f60718293", detail=None, latency_ms=1.0)


def test_output_is_infcode_0_only_when_every_patient_was_evaluated() -> None:
    req = parse(example(OUTPATIENT))
    plans = nhsa.plan_analysis(req)
    t0, t1 = datetime(2026, 3, 11, 9, 30, tzinfo=CST), datetime(2026, 3, 11, 9, 30, 0, 42000, tzinfo=CST)
    code, err, out = nhsa.analysis_output(req, plans, [_D("evaluated", [_alert()])], t0, t1)
    assert code == 0 and err is None and len(out["result"]) == 1 and out["ana_dura"] == 42
    nhsa.AnalysisOutput.model_validate(out)
    code, err, out = nhsa.analysis_output(req, plans, [_D("timeout")], t0, t1)
    assert code == -1 and "timeout" in err and "patn_id P330100000001" in err and out["result"] == []
    assert out["engine_status"] == "timeout" and out["analyses"][0]["engine_status"] == "timeout"
    code, err, out = nhsa.analysis_output(req, plans, [_D("unavailable")], t0, t1)
    assert code == -1 and "unavailable" in err and out["engine_status"] == "unavailable"


def test_3103_maps_dspo_way_to_outcomes_and_names_a_foreign_jr_id() -> None:
    req = nhsa.NhsaFeedbackRequest.model_validate(example("nhsa-feedback.request.3103.json"))
    t = datetime(2026, 3, 11, 9, 35, tzinfo=CST)
    recs = nhsa.feedback_records(req, "H1", t)
    assert [(r["rule_id"], r["outcome"]) for r in recs] == [("R19", "overridden"), ("R03", "accepted")]
    assert recs[0]["decision_id"] == "d-0a1b2c3d4e5f60718293" and recs[0]["reason"].startswith("上次处方")
    assert recs[1]["reason"] is None and recs[0]["dialect"] == "nhsa" and recs[0]["institution_id"] == "H1"
    body = example("nhsa-feedback.request.3103.json")
    body["input"]["data"]["warns"][1]["warn_rslt_id"] = "JR-FROM-ANOTHER-SYSTEM"
    with pytest.raises(MappingError) as info:
        nhsa.feedback_records(nhsa.NhsaFeedbackRequest.model_validate(body), "H1", t)
    assert info.value.field == "input.data.warns[1].warn_rslt_id"
    with pytest.raises(MappingError, match="not a rule"):
        nhsa.feedback_records(req, "H1", t, known_rules=frozenset({"R01"}))


def test_numeric_dates_are_read_as_dates_not_epoch_milliseconds() -> None:
    from datetime import datetime

    from services.dialects.common import parse_time

    assert parse_time(20260312093000) == parse_time("2026-03-12 09:30:00")
    assert parse_time(20260312).date() == datetime(2026, 3, 12).date()
    assert parse_time(1773279000000).year == 2026  # epoch milliseconds still work
    for bad in (1e20, float("nan"), 123456, 10**15):
        try:
            parse_time(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


# -- what real clients send (issue: drop-in for the clients that exist) -------------------------
def test_no_task_id_no_syscode_no_msgid_and_the_task_key_fallbacks() -> None:
    body = example(OUTPATIENT)
    body["input"]["data"].pop("task_id")
    body["input"]["data"].pop("syscode", None)
    req = parse(body)
    assert nhsa.task_key(req) == body["msgid"]
    body.pop("msgid")
    req = parse(body)
    key = nhsa.task_key(req)
    assert key.startswith("t-") and key == nhsa.task_key(parse(copy.deepcopy(body)))
    other = copy.deepcopy(body)
    patient(other)["patn_id"] = "P-someone-else"
    assert nhsa.task_key(parse(other)) != key
    plans = nhsa.plan_analysis(req)  # the events do not depend on the task id
    with_ids = example(OUTPATIENT)
    assert plans[0].current.event_id == nhsa.plan_analysis(parse(with_ids))[0].current.event_id


def test_single_objects_where_lists_belong_blank_amounts_and_numbers_as_strings() -> None:
    body = example(OUTPATIENT)
    p = patient(body)
    current = next(e for e in p["fsi_encounter_dtos"] if e["mdtrt_id"] == p["curr_mdtrt_id"])
    p["fsi_encounter_dtos"] = current  # one object, as several HIS clients send it
    body["input"]["data"]["patient_dtos"] = p
    current.update(medfee_sumamt="-", ownpay_amt="", selfpay_amt="null", setl_totlnum=1, fsi_operation_dtos="")
    order = current["fsi_order_dtos"][0]
    order.update(cnt=str(order["cnt"]), pric="", sumamt="-", hilist_pric="12.50", vendor_extra={"x": 1})
    current["fsi_diagnose_dtos"] = current["fsi_diagnose_dtos"][0]
    [plan] = nhsa.plan_analysis(parse(body))
    item = plan.current.items[0]
    assert item.quantity == float(order["cnt"]) and item.unit_price is None and item.amount is None
    assert len(plan.current.diagnoses) == 1 and plan.history == []


def test_curr_mdtrt_id_may_be_left_out_with_one_encounter() -> None:
    body = example(OUTPATIENT)
    p = patient(body)
    p["fsi_encounter_dtos"] = [e for e in p["fsi_encounter_dtos"] if e["mdtrt_id"] == p["curr_mdtrt_id"]]
    mdtrt_id = p.pop("curr_mdtrt_id")
    [plan] = nhsa.plan_analysis(parse(body))
    assert plan.mdtrt_id == mdtrt_id


@pytest.mark.parametrize(("field", "message", "expected"), [
    ("input.data.patient_dtos[0].patn_id", "required field is missing",
     "input.data.patient_dtos[0].patn_id: 缺少必填字段「参保人标识」 (required field is missing)"),
    ("input.data.patient_dtos[0].fsi_encounter_dtos", "required field is missing",
     "input.data.patient_dtos[0].fsi_encounter_dtos: 缺少必填字段「就诊信息集合」 (required field is missing)"),
    ("input.data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[2].hilist_code", "required field is missing",
     "input.data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[2].hilist_code: 缺少必填字段「医保目录编码」 "
     "(required field is missing)"),
    ("input.data.trig_scen", "'11' is not a trigger scene 1–10",
     "input.data.trig_scen: 「触发场景」取值无效 ('11' is not a trigger scene 1–10)"),
    ("vendor_field", "odd", "vendor_field: 取值无效 (odd)"),
])
def test_err_msg_names_the_field_in_chinese_and_english(field: str, message: str, expected: str) -> None:
    assert nhsa.describe(field, message) == expected


def test_the_ordering_doctor_of_each_order_becomes_the_line_doctor() -> None:
    body = example(OUTPATIENT)
    enc = patient(body)["fsi_encounter_dtos"][0]
    enc["dr_codg"] = "D330100009"
    order = enc["fsi_order_dtos"][0]
    order["drord_dr_codg"] = "D330100001"
    ev = plan(body).current.to_wire()
    assert ev["encounter"]["doctor_id"] == "D330100009"
    assert ev["items"][0]["doctor_id"] == "D330100001"  # R43 checks the line's own doctor
    del order["drord_dr_codg"]
    order["bilg_dr_codg"] = "D330100002"  # the fee-detail field, when the order has no drord_dr_codg
    assert plan(body).current.to_wire()["items"][0]["doctor_id"] == "D330100002"
    del order["bilg_dr_codg"]
    assert plan(body).current.to_wire()["items"][0]["doctor_id"] is None  # the encounter's doctor then
