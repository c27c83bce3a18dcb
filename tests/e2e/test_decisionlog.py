"""End to end: decisions through HTTP land in the decision log via the sink process, and stay there
when the whole stack (embedded broker included, which forgets everything) is stopped and started."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.common.settings import load_settings
from services.decisionlog.store import Store
from services.stack import Stack
from tests.conftest import stack_env, start_stack_env
from tests.factories import dx, event, uid

pytestmark = pytest.mark.e2e


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll until ``check()`` is truthy (a wait, not a timed assertion: the timeout only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout} s")
        time.sleep(0.2)


def test_sink_stores_decisions_and_they_survive_a_full_restart() -> None:
    env = stack_env()
    settings = load_settings(env)
    stack = start_stack_env(env, "decisionlog-restart")
    patient = uid("P")
    try:
        with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as c:
            answers = [c.post("/v1/events", json=event(patient=patient, gender="F", scene=6,
                                                      diagnoses=[dx("N40")])).json() for _ in range(3)]
            assert all(a["engine_status"] == "evaluated" for a in answers)
            ids = {a["decision_id"] for a in answers}
            wait_for("the decisions in the log",
                     lambda: all(c.get(f"/v1/decisions/{i}").status_code == 200 for i in ids))
            stored = c.get(f"/v1/decisions/{answers[0]['decision_id']}").json()
            listed = c.get("/v1/decisions", params={"patient": patient}).json()["decisions"]
        assert [a["rule_id"] for a in stored["alerts"]] == ["R03"]
        assert patient not in str(stored) and stored["institution_region"] == "330100"
        assert stored["case"]["state"] == "open"  # an alert at a settlement scene opens a case
        assert {d["decision_id"] for d in listed} == ids
        case_id = stored["case"]["case_id"]
        confirmed = httpx.post(f"{stack.url}/v1/cases/{case_id}/confirm", json={"reason": "属实"},
                               headers={"X-API-Key": "dev-reviewer-key"}, timeout=30)
        assert confirmed.status_code == 200, confirmed.text
        store = Store.open(settings.database)
        assert store.counts()["decisions"] >= 3
        metrics = httpx.get(f"http://127.0.0.1:{settings.sink_metrics_port}/metrics").text
        assert 'presettle_sink_records_total{kind="decisions",result="stored"} 3.0' in metrics
        assert "presettle_sink_lag_records" in metrics
        store.close()
    finally:
        stack.stop()
    again = start_stack_env(env, "decisionlog-restart-2")  # a new, empty embedded broker; the same data directory
    try:
        with httpx.Client(base_url=again.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as c:
            for decision_id in ids:
                assert c.get(f"/v1/decisions/{decision_id}").status_code == 200
            case = c.get(f"/v1/cases/{case_id}").json()
            assert case["state"] == "initial_review" and case["history"][-1]["actor"] == "reviewer-1"
        assert again.sink is not None and again.sink.poll() is None
    finally:
        again.stop()


def test_events_to_log_to_export_and_a_case_through_every_state(stack: Stack, client: httpx.Client,
                                                                tmp_path: Any) -> None:
    """Events through HTTP → the log by id and by filter → CSV and XLSX → a case through every state with
    three keys (reviewer, institution, senior reviewer); a forbidden transition and an out-of-scope read refused."""
    import csv
    import io

    from services.kbimport.sheets import read_rows

    patient = uid("P")
    answers = [client.post("/v1/events", json=event(patient=patient, gender="F", scene=8, diagnoses=[dx("N40")]))
               .json() for _ in range(2)]
    answers.append(client.post("/v1/events", json=event(patient=patient, scene=2)).json())
    ids = [a["decision_id"] for a in answers]

    def as_(key: str) -> dict[str, str]:
        return {"X-API-Key": key}

    wait_for("the decisions in the log", lambda: all(client.get(f"/v1/decisions/{i}").status_code == 200
                                                     for i in ids))
    listed = client.get("/v1/decisions", params={"patient": patient, "has_alerts": "true"}).json()["decisions"]
    assert answers[0]["alerts"]
    assert {d["decision_id"] for d in listed} == {a["decision_id"] for a in answers if a["alerts"]}
    assert client.get(f"/v1/decisions/{ids[0]}", headers=as_("dev-key-h2")).status_code == 404  # out of scope
    exported = client.get("/v1/decisions", params={"patient": patient, "format": "csv"})
    assert {r["decision_id"] for r in csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig")))} == set(ids)
    xlsx = tmp_path / "d.xlsx"
    xlsx.write_bytes(client.get("/v1/decisions", params={"patient": patient, "format": "xlsx"}).content)
    assert {v[0] for n, v in read_rows(xlsx) if n > 1} == set(ids)

    case_id = client.get(f"/v1/decisions/{ids[0]}").json()["case"]["case_id"]
    url = f"/v1/cases/{case_id}"
    assert client.post(f"{url}/uphold", json={"reason": "x"}).status_code == 403  # the institution cannot
    steps = [("dev-reviewer-key", "confirm", {"reason": "诊断与性别不符"}),
             ("dev-key-h1", "appeal", {"reason": "录入错误", "attachments": ["更正后的病历首页"]}),
             ("dev-senior-key", "take", {}),
             ("dev-senior-key", "uphold", {"reason": "维持"})]
    for key, action, body in steps:
        r = client.post(f"{url}/{action}", json=body, headers=as_(key))
        assert r.status_code == 200, r.text
    refused = client.post(f"{url}/appeal", json={"reason": "again"})
    assert refused.status_code == 409 and "closed" in refused.json()["message"]
    case = client.get(url).json()
    assert [h["to_state"] for h in case["history"]] == ["open", "initial_review", "appealed", "re_review", "closed"]
    assert {h["actor"] for h in case["history"][1:]} == {"reviewer-1", "institution:H1", "senior-1"}
    assert case["outcome"] == "upheld" and case["deducted_amount"] == case["confirmed_amount"]
