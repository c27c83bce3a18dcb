"""Requests built the way public HIS integrations build them for the national platform (3101/3102/3103).

Modelled on open-source HIS code that calls 明细审核事前/事中分析服务 (see docs/integration.md,
"What real clients send"): the envelope with every common field, ``input.data`` without
``task_id`` or ``syscode``, order rows straight from the HIS database (numbers as strings, blank
amounts as ``""``, extra columns), ``dscg_date`` equal to ``adm_date`` for an outpatient visit,
``medins_type`` ``A1`` and ``medins_lv`` ``05``; another client style sends ``patient_dtos`` and
``fsi_encounter_dtos`` as single objects with vendor fields (``cainfo``, ``fixmedins_soft_fcty``).
Calls are signed with the gateway headers (hex SHA-256 of timestamp + secret + nonce + timestamp).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime
from typing import Any

FINASTERIDE = "XG04CBY074A001010102209"  # male-only drug (R01 for a female patient)
HOSPITAL = {"fixmedins_code": "H1", "fixmedins_name": "某市第一人民医院", "admdvs": "330100"}


def sign(paasid: str, secret: str, upper: bool = False) -> dict[str, str]:
    ts = str(int(time.time()))
    nonce = uuid.uuid4().hex[:16]
    sig = hashlib.sha256(f"{ts}{secret}{nonce}{ts}".encode()).hexdigest()
    return {"x-tif-paasid": paasid, "x-tif-timestamp": ts, "x-tif-nonce": nonce,
            "x-tif-signature": sig.upper() if upper else sig, "Content-Type": "application/json;charset=utf-8"}


def envelope(infno: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    now = datetime.now()
    return {
        "infno": infno,
        "msgid": f"{HOSPITAL['fixmedins_code']}{now:%Y%m%d%H%M%S}{uuid.uuid4().int % 1_000_000:06d}",
        "mdtrtarea_admvs": HOSPITAL["admdvs"], "insuplc_admdvs": HOSPITAL["admdvs"], "recer_sys_code": "MBS_LOCAL",
        "dev_no": "", "dev_safe_info": "", "cainfo": "", "signtype": "", "infver": "V1.0", "opter_type": "1",
        "opter": "D0012", "opter_name": "张医生", "inf_time": f"{now:%Y-%m-%d %H:%M:%S}",
        "fixmedins_code": HOSPITAL["fixmedins_code"], "fixmedins_name": HOSPITAL["fixmedins_name"], "sign_no": "",
        "input": {"data": data}, **extra,
    }


def order_row(rx: str, code: str, name: str, cnt: Any, pric: Any, hilist_type: str = "101",
              chrg_type: str = "09", begin: str | None = None) -> dict[str, Any]:
    """One row of the HIS's prescription query, as that client puts it into fsi_order_dtos."""
    return {"rx_id": rx, "rxno": rx.split("-")[0], "grpno": "1", "long_drord_flag": "0", "hilist_type": hilist_type,
            "chrg_type": chrg_type, "drord_bhvr": "0", "hilist_code": code, "hilist_name": name,
            "hilist_dosform": "片剂", "hilist_lv": "02", "hilist_pric": pric, "lv1_hosp_item_pric": "",
            "lv2_hosp_item_pric": "", "lv3_hosp_item_pric": "", "hilist_memo": "", "hosplist_code": f"HIS-{code[-6:]}",
            "hosplist_name": name, "hosplist_dosform": "", "cnt": cnt, "pric": pric,
            "sumamt": round(float(cnt) * float(pric), 2) if pric not in ("", None) else "", "ownpay_amt": "",
            "selfpay_amt": "", "spec": "5mg*14片", "spec_unt": "盒",
            "drord_begn_date": begin or f"{datetime.now():%Y-%m-%d %H:%M:%S}", "drord_dept_codg": "A03",
            "drord_dept_name": "泌尿外科门诊", "drord_dr_codg": "D0012", "drord_dr_name": "张医生",
            "drord_dr_profttl": "2", "curr_drord_flag": "1"}


def outpatient_encounter(mdtrt_id: str, orders: list[dict[str, Any]], diagnoses: list[tuple[str, str]],
                         day: str | None = None) -> dict[str, Any]:
    adm = day or f"{datetime.now():%Y-%m-%d %H:%M:%S}"
    return {
        "fsi_diagnose_dtos": [{"dise_id": f"DX{i}", "inout_dise_type": "1", "maindise_flag": "1" if i == 0 else "0",
                               "dias_srt_no": str(i + 1), "dise_codg": c, "dise_name": n, "dise_date": adm}
                              for i, (c, n) in enumerate(diagnoses)],
        "fsi_order_dtos": orders, "fsi_operation_dtos": [], "mdtrt_id": mdtrt_id,
        "medins_id": HOSPITAL["fixmedins_code"], "medins_name": HOSPITAL["fixmedins_name"],
        "medins_admdvs": HOSPITAL["admdvs"], "medins_type": "A1", "medins_lv": "05", "wardarea_codg": "", "wardno": "",
        "bedno": "", "adm_date": adm, "dscg_date": adm,  # outpatient: discharge = admission, as that client sends
        "dscg_main_dise_codg": diagnoses[0][0], "dscg_main_dise_name": diagnoses[0][1], "dr_codg": "D0012",
        "adm_dept_codg": "A03", "adm_dept_name": "泌尿外科门诊", "dscg_dept_codg": "A03", "dscg_dept_name": "泌尿外科门诊",
        "med_mdtrt_type": "1", "med_type": "11", "matn_stas": "0",
        "medfee_sumamt": sum(float(o["sumamt"]) for o in orders if o["sumamt"] != ""), "ownpay_amt": "0",
        "selfpay_amt": "0", "acct_payamt": "", "ma_amt": "", "hifp_payamt": "", "setl_totlnum": "1",
        "insutype": "310", "reim_flag": "1", "out_setl_flag": "2",
    }


def python_client_3101(patn_id: str, mdtrt_id: str, visit_time: str | None = None) -> dict[str, Any]:
    """3101 at trig_scen 2: a woman prescribed finasteride with a 前列腺增生 diagnosis (R01 + R03).
    ``visit_time``: the registration/order time the HIS database holds (default: now)."""
    orders = [order_row(f"{mdtrt_id}-1", FINASTERIDE, "非那雄胺片", "28", "1.85", begin=visit_time)]
    enc = outpatient_encounter(mdtrt_id, orders, [("N40", "前列腺增生")], day=visit_time)
    data = {"patient_dtos": [{"fsi_encounter_dtos": [enc], "fsi_his_data_dto": "", "patn_id": patn_id,
                              "patn_name": "王某某", "gend": "2", "brdy": "1961-05-20", "poolarea": HOSPITAL["admdvs"],
                              "curr_mdtrt_id": mdtrt_id}],
            "trig_scen": "2"}
    return envelope("3101", data)


def object_style_client(infno: str, patn_id: str, mdtrt_id: str, trig_scen: str) -> dict[str, Any]:
    """Another client style: single objects where lists belong, numbers as numbers, vendor fields."""
    orders = [order_row(f"{mdtrt_id}-1", FINASTERIDE, "非那雄胺片", 28, 1.85)]
    enc = outpatient_encounter(mdtrt_id, orders, [("N40", "前列腺增生")])
    enc.update(setl_totlnum=1, selfpay_amt="0.00", fsi_operation_dtos="")
    patient = {"patn_id": patn_id, "patn_name": "李某某", "gend": "2", "brdy": "1961-05-20",
               "poolarea": HOSPITAL["admdvs"], "curr_mdtrt_id": mdtrt_id, "fsi_encounter_dtos": enc}
    data = {"syscode": infno, "trig_scen": trig_scen, "task_id": uuid.uuid4().hex, "patient_dtos": patient}
    return envelope(infno, data, cainfo="04010e61427b", fixmedins_soft_fcty="某某信息科技有限公司")


def feedback_3103(jr_ids: list[str], warn_type: str = "1") -> dict[str, Any]:
    warns = [{"warn_rslt_id": j, "dspo_way": "1", "dspo_way_rea": "已告知患者，临床需要"} for j in jr_ids]
    return envelope("3103", {"warn_type": warn_type, "warns": warns})


def client_checks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """What such a client checks before showing alerts: infcode is the integer 0, output.result a list."""
    assert isinstance(answer["infcode"], int) and not isinstance(answer["infcode"], bool), answer
    assert answer["infcode"] == 0, answer
    results = answer["output"]["result"]
    assert isinstance(results, list)
    for r in results:
        assert isinstance(r["jr_id"], str) and r["jr_id"] and isinstance(r["vola_cont"], str) and r["vola_cont"]
    return results
