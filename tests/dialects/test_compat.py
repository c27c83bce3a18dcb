"""Compatibility: requests built as public HIS integrations build them, through HTTP, signed, no X-API-Key.

The same client code then checks ``infcode == 0`` (an integer) and shows ``output.result[]``;
its 3103 feedback sends a ``jr_id`` back as ``warn_rslt_id``. The real-stack variant is in
tests/e2e/test_dialects.py.
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from tests.dialects import his_clients as his
from tests.dialects.conftest import PAASIDS, App, InProcessEngine
from tests.factories import uid


def signed(paasid: str = "his-h1", upper: bool = False) -> dict[str, str]:
    return his.sign(paasid, PAASIDS[paasid][0], upper)


def post(app: App, path: str, body: dict, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    # Sent as those clients send it: a serialised UTF-8 string, not a framework's json= helper.
    r = app.post(path, content=json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_python_his_client_3101_then_3103_on_the_returned_jr_id(gateway_app: App, fake: InProcessEngine) -> None:
    body = his.python_client_3101(uid("P"), uid("MD"))
    assert "task_id" not in body["input"]["data"] and "syscode" not in body["input"]["data"]
    answer = post(gateway_app, "/nhsa/3101", body, signed())
    results = his.client_checks(answer)
    assert {"R01", "R03"} <= {r["rule_id"] for r in results}, results
    assert answer["output"]["task_id"] == body["msgid"]  # no task_id: the msgid stands in
    assert all(r["task_id"] == body["msgid"] for r in results)
    jr_ids = [r["jr_id"] for r in results]
    fb = post(gateway_app, "/nhsa/3103", his.feedback_3103(jr_ids), signed())
    assert isinstance(fb["infcode"], int) and fb["infcode"] == 0, fb
    assert [w["warn_rslt_id"] for w in fb["output"]["warns"]] == jr_ids
    records = [p[2] for p in fake.published if p[0].endswith(".feedback")]
    assert {r["alert_id"] for r in records} >= set(jr_ids)
    assert all(r["institution_id"] == "H1" and r["outcome"] == "overridden" for r in records[-len(jr_ids):])


@pytest.mark.parametrize("infno, scene, path", [("3101", "2", "/nhsa/3101"), ("3102", "7", "/nhsa/3102"),
                                                ("3102", "7", "/nhsa")])
def test_object_style_client_with_vendor_fields(gateway_app: App, infno: str, scene: str, path: str) -> None:
    body = his.object_style_client(infno, uid("P"), uid("MD"), scene)
    answer = post(gateway_app, path, body, signed(upper=True))  # upper-case hex signature
    results = his.client_checks(answer)
    assert {"R01", "R03"} <= {r["rule_id"] for r in results}
    assert answer["output"]["trig_scen"] == scene and answer["output"]["task_id"] == body["input"]["data"]["task_id"]


def test_the_same_visit_resent_with_a_fresh_msgid_is_a_retry(gateway_app: App) -> None:
    patn_id, mdtrt_id = uid("P"), uid("MD")
    body = his.python_client_3101(patn_id, mdtrt_id)
    first = his.client_checks(post(gateway_app, "/nhsa/3101", body, signed()))
    resent = copy.deepcopy(body)  # the same visit (built once: its times are taken from the clock)
    resent["msgid"] = uuid.uuid4().hex
    assert resent["msgid"] != body["msgid"]
    again = post(gateway_app, "/nhsa/3101", resent, signed())
    assert [r["jr_id"] for r in his.client_checks(again)] == [r["jr_id"] for r in first]
    assert again["output"]["analyses"][0]["replayed"] is True


def test_what_is_truly_missing_is_refused_naming_it(gateway_app: App) -> None:
    body = his.python_client_3101(uid("P"), uid("MD"))
    body["input"]["data"]["patient_dtos"][0]["patn_id"] = ""
    answer = post(gateway_app, "/nhsa/3101", body, signed())
    assert answer["infcode"] == -1
    assert answer["err_msg"] == ("input.data.patient_dtos[0].patn_id: 缺少必填字段「参保人标识」 "
                                 "(required field is missing)")
    body = his.python_client_3101(uid("P"), uid("MD"))
    body["input"]["data"]["patient_dtos"][0]["fsi_encounter_dtos"][0]["fsi_order_dtos"][0]["hilist_code"] = ""
    answer = post(gateway_app, "/nhsa/3101", body, signed())
    assert answer["infcode"] == -1 and "缺少必填字段「医保目录编码」" in answer["err_msg"]
    assert answer["err_msg"].startswith("input.data.patient_dtos[0].fsi_encounter_dtos[0].fsi_order_dtos[0].hilist_code")
    body = his.python_client_3101(uid("P"), uid("MD"))
    body["input"]["data"]["patient_dtos"][0]["fsi_encounter_dtos"] = []
    answer = post(gateway_app, "/nhsa/3101", body, signed())
    assert answer["infcode"] == -1 and "「就诊信息集合」" in answer["err_msg"]
