"""The decision-log routes on the ingress (no broker: the store filled directly, SQLite under a temp dir):
roles, scopes (404 outside), filters, cursor paging, CSV and XLSX exports, whoami."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.privacy import pseudonym
from services.common.settings import load_settings
from services.decisionlog import records
from services.decisionlog.store import Store
from services.ingress.app import create_app
from services.kbimport.sheets import read_rows
from tests.decisionlog.test_store import audit

STAFF = "rev-330100-key:reviewer:330100:wang,rev-all-key:reviewer:*:li,senior-key-1:senior_reviewer:*:zhao"


@pytest.fixture
def http(tmp_path: Path) -> TestClient:
    # No lifespan (no `with`): no broker; the decision-log routes need only the store.
    settings = load_settings({"PRESETTLE_DATA_DIR": str(tmp_path), "PRESETTLE_STAFF_KEYS": STAFF})
    store = Store.open(settings.database)
    recs = [audit(i, patient="P0001", alerts=i % 2) for i in range(1, 6)]
    recs += [audit(7, institution="H2", region="110101"), audit(8, institution="H2", region="330106")]
    store.write([records.decision_rows(r, pseudonym) for r in recs])
    store.close()
    return TestClient(create_app(settings))


def get(http: TestClient, path: str, key: str, **params: Any) -> Any:
    return http.get(path, headers={"X-API-Key": key}, params=params)


def test_whoami_names_role_scope_and_person(http: TestClient) -> None:
    assert get(http, "/v1/whoami", "dev-key-h1").json() == {
        "role": "institution", "name": "institution:H1", "institution": "H1", "scope": "H1"}
    assert get(http, "/v1/whoami", "rev-330100-key").json()["scope"] == "330100"
    assert get(http, "/v1/whoami", "dev-admin-key").json()["role"] == "admin"
    assert get(http, "/v1/whoami", "nope-nope-nope").status_code == 401


def test_reads_stay_inside_the_scope_and_404_outside(http: TestClient) -> None:
    h = http
    assert get(h, "/v1/decisions/d-H1-0001", "dev-key-h1").json()["alerts"][0]["rule_id"] == "R01"
    outside = get(h, "/v1/decisions/d-H2-0007", "dev-key-h1")
    assert outside.status_code == 404 and outside.json()["field"] == "decision_id"
    assert get(h, "/v1/decisions/d-H2-0007", "rev-330100-key").status_code == 404  # region 110101
    assert get(h, "/v1/decisions/d-H2-0008", "rev-330100-key").status_code == 200  # region 330106
    assert get(h, "/v1/decisions/d-H2-0007", "rev-all-key").status_code == 200
    listed = get(h, "/v1/decisions", "dev-key-h2").json()["decisions"]
    assert {d["institution_id"] for d in listed} == {"H2"}
    assert get(h, "/v1/decisions", "dev-key-h1", institution="H2").json()["decisions"] == []


def test_filters_and_cursor_paging(http: TestClient) -> None:
    h = http
    first = get(h, "/v1/decisions", "dev-admin-key", limit=3).json()
    second = get(h, "/v1/decisions", "dev-admin-key", limit=3, cursor=first["next_cursor"]).json()
    third = get(h, "/v1/decisions", "dev-admin-key", limit=3, cursor=second["next_cursor"]).json()
    ids = [d["decision_id"] for page in (first, second, third) for d in page["decisions"]]
    assert len(ids) == len(set(ids)) == 7 and third["next_cursor"] is None
    assert {d["decision_id"] for d in get(h, "/v1/decisions", "dev-key-h1", patient="P0001",
                                          has_alerts="true").json()["decisions"]} == {
        "d-H1-0001", "d-H1-0003", "d-H1-0005"}
    assert get(h, "/v1/decisions", "dev-key-h1", patient="P9999").json()["decisions"] == []
    assert len(get(h, "/v1/decisions", "dev-admin-key", **{"from": "2026-03-01", "to": "2026-03-01"})
               .json()["decisions"]) == 7
    assert get(h, "/v1/decisions", "dev-admin-key", **{"from": "2026-03-02"}).json()["decisions"] == []
    bad = get(h, "/v1/decisions", "dev-admin-key", **{"from": "yesterday"})
    assert bad.status_code == 422 and bad.json()["field"] == "from"
    assert get(h, "/v1/decisions", "dev-admin-key", cursor="zzz").json()["field"] == "cursor"
    assert get(h, "/v1/decisions", "dev-admin-key", scene=11).status_code == 422
    assert get(h, "/v1/decisions", "dev-admin-key", scene=-1).status_code == 422
    assert get(h, "/v1/decisions", "dev-admin-key", scene=0).json()["decisions"] == []  # 0: retrospective findings


def test_csv_and_xlsx_exports_carry_the_same_rows(http: TestClient, tmp_path: Path) -> None:
    h = http
    r = get(h, "/v1/decisions", "dev-key-h1", format="csv", has_alerts="true")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert sorted(row["decision_id"] for row in rows) == ["d-H1-0001", "d-H1-0003", "d-H1-0005"]
    assert rows[0]["rule_ids"] == "R01" and "P0001" not in r.text
    x = get(h, "/v1/decisions", "dev-key-h1", format="xlsx", has_alerts="true")
    path = tmp_path / "export.xlsx"
    path.write_bytes(x.content)
    sheet = [values for _, values in read_rows(path)]
    assert sheet[0][0] == "decision_id"
    assert sorted(v[0] for v in sheet[1:]) == ["d-H1-0001", "d-H1-0003", "d-H1-0005"]


def post(http: TestClient, path: str, key: str, body: dict[str, Any]) -> Any:
    return http.post(path, headers={"X-API-Key": key}, json=body)


def test_a_case_through_every_state_with_three_keys(http: TestClient) -> None:
    h = http
    cid = "c-d-H1-0001"  # scene 6 with an alert: opened by the sink's write
    assert get(h, f"/v1/cases/{cid}", "dev-key-h1").json()["allowed_actions"] == ["confirm", "dismiss"]
    early = post(h, f"/v1/cases/{cid}/appeal", "dev-key-h1", {"reason": "x"})
    assert early.status_code == 409 and "allowed: confirm, dismiss" in early.json()["message"]
    assert post(h, f"/v1/cases/{cid}/confirm", "dev-key-h1", {}).status_code == 403  # not the institution's
    assert post(h, f"/v1/cases/{cid}/confirm", "rev-330100-key", {"reason": "属实", "amount": 10}).json()[
        "state"] == "initial_review"
    assert post(h, f"/v1/cases/{cid}/appeal", "dev-key-h2", {"reason": "x"}).status_code == 404  # another's case
    appealed = post(h, f"/v1/cases/{cid}/appeal", "dev-key-h1",
                    {"reason": "病情需要", "attachments": ["https://his.example/emr/1"]}).json()
    assert appealed["state"] == "appealed" and appealed["overdue"] is False and appealed["due_at"]
    assert post(h, f"/v1/cases/{cid}/take", "senior-key-1", {}).json()["state"] == "re_review"
    closed = post(h, f"/v1/cases/{cid}/overturn", "senior-key-1", {"reason": "申诉理由成立"}).json()
    assert (closed["state"], closed["outcome"], closed["deducted_amount"]) == ("closed", "dismissed", 0.0)
    assert [(x["action"], x["actor"]) for x in closed["history"]] == [
        ("open", "system"), ("confirm", "wang"), ("appeal", "institution:H1"), ("take", "zhao"),
        ("overturn", "zhao")]
    assert get(h, "/v1/cases", "dev-key-h1", state="closed").json()["cases"][0]["case_id"] == cid
    assert get(h, "/v1/cases", "dev-key-h2", decision_id="d-H1-0001").json()["cases"] == []
    bad = post(h, f"/v1/cases/{cid}/confirm", "rev-all-key", {"amount": -1})
    assert bad.status_code == 422 and bad.json()["field"] == "amount"


def test_a_reviewer_opens_a_case_for_any_decision(http: TestClient) -> None:
    h = http
    assert post(h, "/v1/cases", "dev-key-h1", {"decision_id": "d-H1-0002", "reason": "x"}).status_code == 403
    opened = post(h, "/v1/cases", "rev-all-key", {"decision_id": "d-H1-0002", "reason": "事后抽查"})
    assert opened.status_code == 201 and opened.json()["history"][0]["actor"] == "li"
    assert post(h, "/v1/cases", "rev-all-key", {"decision_id": "d-H1-0002", "reason": "y"}).status_code == 200
    assert post(h, "/v1/cases", "rev-330100-key", {"decision_id": "d-H2-0007", "reason": "y"}).status_code == 404


def test_risk_summary_and_monthly_report_stay_in_scope(http: TestClient) -> None:
    h = http
    risk = get(h, "/v1/risk/institutions", "rev-all-key").json()
    assert {e["key"] for e in risk["entries"]} == {"H1", "H2"} and "formula" in risk
    assert {e["key"] for e in get(h, "/v1/risk/institutions", "dev-key-h2").json()["entries"]} == {"H2"}
    assert get(h, "/v1/risk/cats", "rev-all-key").status_code == 422
    rows = get(h, "/v1/reports/summary", "dev-key-h1", group_by="rule").json()["rows"]
    assert [r["rule"] for r in rows] == ["R01"]
    page = get(h, "/v1/reports/monthly", "dev-key-h1", institution="H1", month="2026-03")
    assert page.status_code == 200 and "月度" in page.text and "Monthly" in page.text and "R01" in page.text
    other = get(h, "/v1/reports/monthly", "dev-key-h1", institution="H2", month="2026-03")
    assert "d-H2" not in other.text
    assert get(h, "/v1/reports/monthly", "dev-key-h1", institution="H1", month="March").json()["field"] == "month"


def test_the_board_ledger_counts_today_and_month_from_the_store(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    settings = load_settings({"PRESETTLE_DATA_DIR": str(tmp_path)})
    store = Store.open(settings.database)
    now = datetime.now(UTC).isoformat()
    recs = [audit(1, alerts=2), audit(2, institution="H2", alerts=1), audit(3, alerts=0)]
    for r in recs:
        r["occurred_at"] = now
    store.write([records.decision_rows(r, pseudonym) for r in [*recs, audit(9, alerts=1)]])  # 9: in March
    store.write(feedback=[records.feedback_row({
        "alert_id": recs[0]["alerts"][0]["alert_id"], "decision_id": recs[0]["decision_id"], "rule_id": "R01",
        "outcome": "overridden", "institution_id": "H1", "dialect": "native", "received_at": now})])
    store.close()
    h = TestClient(create_app(settings))
    mine = get(h, "/dashboard/ledger", "dev-key-h1").json()
    assert mine["today"] == {"decisions": 2, "alerts": 2, "amount": 30.0} == mine["month"]
    assert mine["rules"][0] == {"rule_id": "R01", "alerts": 1, "accepted": 0, "overridden": 1, "accept_rate": 0.0,
                                "override_rate": 1.0}
    assert get(h, "/dashboard/ledger", "dev-admin-key").json()["today"]["decisions"] == 3
    assert get(h, "/dashboard/ledger", "nope-nope-nope").status_code == 401


def test_an_unreachable_database_answers_503_naming_the_setting(tmp_path: Path) -> None:
    from services.common.broker import free_port

    settings = load_settings({"PRESETTLE_DATA_DIR": str(tmp_path),
                              "PRESETTLE_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none"})
    r = get(TestClient(create_app(settings)), "/v1/decisions", "dev-key-h1")
    assert r.status_code == 503 and r.json()["field"] == "PRESETTLE_DATABASE_URL"
    assert "nobody" not in r.text  # the URL (it may hold a password) is never echoed
