"""The decision-log store on SQLite and on a real PostgreSQL: the same tests, both databases."""

from __future__ import annotations

from typing import Any

import pytest

from services.decisionlog import records, workflow
from services.decisionlog.store import Scope, Store, region_prefix


def fake_pseudonym(patient_id: str) -> str:
    return "p-" + patient_id[::-1]


def audit(n: int, institution: str = "H1", patient: str = "P0001", scene: int = 6, alerts: int = 1,
          region: str = "330102", day: int = 1) -> dict[str, Any]:
    decision_id = f"d-{institution}-{n:04d}"
    return {
        "decision_id": decision_id, "event_id": f"e{n}", "institution_id": institution, "patient_id": patient,
        "scene": scene, "occurred_at": f"2026-03-{day:02d}T09:{n % 60:02d}:00+08:00", "engine_status": "evaluated",
        "replayed": False, "unchecked_lines": [], "rulebase_revision": "rev1", "shadow_alerts": [],
        "engine_ms": 1.5, "decided_at": "2026-03-01T01:00:00+00:00", "worker": "worker-0", "request_id": None,
        "institution_region": region, "institution_level": 3, "department": "内科", "doctor_id": "D1",
        "alerts": [{"rule_id": f"R0{i + 1}", "rule_version": "1.0.0", "message_zh": "m", "message_en": "m",
                    "line_ids": [], "amount": 10.0 * (i + 1), "evidence": [{"kind": "kb", "code": "N40"}],
                    "region": "default", "alert_id": f"{decision_id}.R0{i + 1}.1", "severity": "C"}
                   for i in range(alerts)],
    }


def put(store: Store, *recs: dict[str, Any]) -> dict[str, int]:
    return store.write([records.decision_rows(r, fake_pseudonym) for r in recs])


def test_migrations_are_versioned_and_applied_once(store_url: str) -> None:
    first = Store.open(store_url)
    assert first.versions() == [1, 2]
    again = Store(store_url)
    assert again.migrate() == []  # nothing left to apply
    first.close()
    again.close()


def test_decisions_are_stored_once_and_read_back_with_feedback(store: Store) -> None:
    rec = audit(1, alerts=2)
    assert put(store, rec)["decisions"] == 1
    assert put(store, rec)["decisions"] == 0  # idempotent by decision id
    store.write(feedback=[records.feedback_row({
        "alert_id": rec["alerts"][0]["alert_id"], "decision_id": rec["decision_id"], "rule_id": "R01",
        "outcome": "overridden", "reason": "病情需要", "institution_id": "H1", "dialect": "native",
        "received_at": "2026-03-01T01:00:01+00:00"})] * 2)
    got = store.decision(rec["decision_id"])
    assert got is not None
    assert "patient_id" not in got and got["patient_ref"] == "p-1000P"  # never in clear
    assert [a["rule_id"] for a in got["alerts"]] == ["R01", "R02"]
    assert got["alerts"][0]["evidence"] == [{"kind": "kb", "code": "N40"}]
    assert [f["outcome"] for f in got["feedback"]] == ["overridden"]
    assert got["case"]["state"] == "open"  # scene 6 with alerts opens a case
    assert store.counts()["alerts"] == 2


def test_a_retrospective_finding_is_stored_and_opens_a_case(store: Store) -> None:
    """A death recorded after a claim yields an audit record with scene null (retrospective: true)."""
    rec = {**audit(7), "scene": None, "retrospective": True}
    assert put(store, rec) == {"decisions": 1, "feedback": 0, "statuses": 0, "revisions": 0, "cases": 1}
    got = store.decision(rec["decision_id"])
    assert got is not None and got["scene"] is None and got["retrospective"] is True  # the record as sent
    assert got["case"]["state"] == "open"
    assert records.decision_rows(rec, fake_pseudonym)[0]["scene"] == records.RETROSPECTIVE_SCENE  # filterable


def test_history_tables_refuse_update_and_delete(store: Store) -> None:
    put(store, audit(1))
    for sql in ("UPDATE decisions SET amount = 0", "DELETE FROM decisions", "DELETE FROM alerts",
                "UPDATE case_history SET actor = 'x'", "DELETE FROM cases"):
        with pytest.raises(Exception, match="append-only|refused"):
            with store.tx() as conn:
                store.execute(conn, sql)
    assert store.counts()["decisions"] == 1


def test_filters_scope_and_cursor_paging(store: Store) -> None:
    put(store, *[audit(i, alerts=i % 2) for i in range(1, 8)], audit(50, institution="H2", region="110101"),
        audit(51, patient="P0002", scene=2, day=3))
    page, cursor = store.decisions(limit=3)
    seen = [d["decision_id"] for d in page]
    while cursor:
        page, cursor = store.decisions(limit=3, cursor=cursor)
        seen += [d["decision_id"] for d in page]
    assert len(seen) == len(set(seen)) == 9
    h1_only = Scope(institution="H1")
    assert all(d["institution_id"] == "H1" for d in store.iter_decisions(h1_only, page_size=2))
    assert len(list(store.iter_decisions(Scope(region_prefix=region_prefix("330000"))))) == 8
    assert store.decision("d-H2-0050", h1_only) is None
    with_alerts, _ = store.decisions(has_alerts=True)
    assert {d["decision_id"] for d in with_alerts} == {"d-H1-0001", "d-H1-0003", "d-H1-0005", "d-H1-0007",
                                                        "d-H2-0050", "d-H1-0051"}
    by_rule, _ = store.decisions(rule_id="R01", institution="H2")
    assert [d["decision_id"] for d in by_rule] == ["d-H2-0050"]
    by_patient, _ = store.decisions(patient_ref=fake_pseudonym("P0002"))
    assert [d["decision_id"] for d in by_patient] == ["d-H1-0051"]
    day3, _ = store.decisions(start=records.utc_iso("2026-03-03T00:00:00+08:00"))
    assert [d["decision_id"] for d in day3] == ["d-H1-0051"]
    assert store.decisions(scene=2)[0][0]["rule_ids"] == ["R01"]
    with pytest.raises(ValueError, match="cursor"):
        store.decisions(cursor="not-a-cursor")


def test_a_case_goes_through_every_state_with_its_history(store: Store) -> None:
    put(store, audit(1, alerts=2))
    cid = "c-d-H1-0001"
    case = store.case(cid)
    assert case is not None and case["state"] == "open" and case["amount"] == 30.0
    kw: dict[str, Any] = {"attachments": [], "deadline_days": 10}
    store.act(cid, Scope(), "confirm", "reviewer", "reviewer-1", "重复收费", 30.0, **kw)
    with pytest.raises(workflow.WorkflowError) as refused:
        store.act(cid, Scope(), "uphold", "senior_reviewer", "senior-1", "x", None, **kw)
    assert refused.value.status == 409 and "initial_review" in refused.value.message
    store.act(cid, Scope(institution="H1"), "appeal", "institution", "institution:H1", "病情需要",
              None, attachments=["https://his.example/doc/1", "说明"], deadline_days=10)
    with pytest.raises(workflow.WorkflowError) as same:
        store.act(cid, Scope(), "take", "senior_reviewer", "reviewer-1", None, None, **kw)
    assert same.value.status == 403
    store.act(cid, Scope(), "take", "senior_reviewer", "senior-1", None, None, **kw)
    done = store.act(cid, Scope(), "uphold", "senior_reviewer", "senior-1", "部分属实", 10.0, **kw)
    assert done is not None
    assert (done["state"], done["outcome"], done["deducted_amount"], done["due_at"]) == (
        "closed", "partially_upheld", 10.0, None)
    assert [h["to_state"] for h in done["history"]] == ["open", "initial_review", "appealed", "re_review", "closed"]
    assert done["history"][2]["attachments"] == ["https://his.example/doc/1", "说明"]
    assert done["history"][2]["actor"] == "institution:H1"
    assert store.act(cid, Scope(institution="H2"), "appeal", "institution", "institution:H2", "x", None, **kw) is None
    assert [c["case_id"] for c in store.cases(state="closed")[0]] == [cid]
    assert store.cases(overdue=True)[0] == []


def test_a_reviewer_opens_a_case_retrospectively_once(store: Store) -> None:
    put(store, audit(2, scene=2))  # not a settlement scene: no case by itself
    assert store.case("c-d-H1-0002") is None
    case, new = store.open_case("d-H1-0002", Scope(), "reviewer-1", "reviewer", "事后抽查", 15)
    assert new and case is not None and case["state"] == "open"
    assert store.open_case("d-H1-0002", Scope(), "reviewer-1", "reviewer", "again", 15)[1] is False
    assert store.open_case("d-H1-0002", Scope(institution="H2"), "x", "reviewer", "x", 15) == (None, False)


def test_risk_lists_rank_and_explain_against_peers(store: Store) -> None:
    recs = [audit(i, patient="P0001", alerts=2) for i in range(1, 4)]  # 3 decisions, 6 alerts
    recs += [audit(i, patient=f"Q{i}", alerts=0) for i in range(10, 16)]  # 6 quiet decisions
    recs += [audit(20, institution="H2", patient="P0002", alerts=1)]
    put(store, *recs)
    store.act("c-d-H1-0001", Scope(), "confirm", "reviewer", "r1", None, None, [], 10)
    patients = store.risk("patients")
    top = patients[0]
    assert top["key"] == fake_pseudonym("P0001") and top["alerts"] == 6 and top["confirmed_cases"] == 1
    assert top["score_parts"]["confirmed_cases"] == 5.0 and top["score_parts"]["alerts"] == 6.0
    assert top["score"] == round(sum(top["score_parts"].values()), 2)
    assert top["rate_ratio"] > 1 and top["score_parts"]["rate_above_peers"] > 0
    assert all(e["alerts"] for e in patients)  # quiet patients are not listed
    institutions = store.risk("institutions", Scope(institution="H2"))
    assert [e["key"] for e in institutions] == ["H2"]
    doctors = store.risk("doctors")
    assert doctors[0]["key"] == "H1/D1" and doctors[0]["peer_group"] == "H1/内科"


def test_summary_by_institution_rule_and_day(store: Store) -> None:
    rec = audit(1, alerts=2)
    put(store, rec, audit(2, alerts=0), audit(3, institution="H2", alerts=1, day=2))
    store.write(feedback=[records.feedback_row({
        "alert_id": rec["alerts"][0]["alert_id"], "decision_id": rec["decision_id"], "rule_id": "R01",
        "outcome": "accepted", "institution_id": "H1", "dialect": "native", "received_at": "2026-03-01T02:00:00Z"})])
    for action, role, actor in (("confirm", "reviewer", "r1"), ("accept", "institution", "institution:H1")):
        store.act("c-d-H1-0001", Scope(), action, role, actor, None, None, [], 10)
    by_inst = {r["institution"]: r for r in store.summary("institution")}
    h1 = by_inst["H1"]
    assert (h1["decisions"], h1["alerts"], h1["alert_rate"], h1["amount"]) == (2, 2, 1.0, 30.0)
    assert h1["feedback"] == {"accepted": 1, "overridden": 0}
    assert h1["cases"]["upheld"] == 1 and h1["amount_recovered"] == 30.0
    by_rule = {r["rule"]: r for r in store.summary("rule")}
    assert by_rule["R01"]["alerts"] == 2 and by_rule["R01"]["feedback"]["accepted"] == 1
    assert [r["day"] for r in store.summary("day")] == ["2026-03-01", "2026-03-02"]
    assert store.totals(Scope(institution="H1"), "2026-03-01") == {"decisions": 2, "alerts": 2, "amount": 30.0}
