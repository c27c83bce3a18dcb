"""Fixes from the independent audit (issue 10): R16 with a test reported late, R19/R20 citations.
records already held counts with the records after it, in the busiest period that contains it."""

from __future__ import annotations

from services.rules.engine import Engine
from tests.rules.audit_kit import Story, ev, line

DM = [("E11.900", "2型糖尿病")]
HBA1C = "002503020050000"  # glycated haemoglobin: once per 60 days (KB period_limit)


def test_a_test_uploaded_weeks_late_counts_with_the_test_after_it(engine: Engine) -> None:
    """HbA1c recorded on 03-01; a test done on 01-15 at H2 is uploaded on 03-20: 45 days apart."""
    s = Story(engine)
    s.send(ev("P-late-a", "late-a-1", "2026-03-01", scene=6, dx=DM, items=[line("1", HBA1C, "service", 1, 60.0)]))
    alert = s.one(ev("P-late-a", "late-a-2", "2026-03-20", scene=6, inst="H2", dx=DM,
                     items=[line("1", HBA1C, "service", 1, 60.0, start="2026-01-15")]), "R16")
    assert alert is not None
    # the earlier record it relied on, then the line itself
    assert [e["event_id"] for e in alert["evidence"] if e["kind"] == "event"] == ["late-a-1", "late-a-2"]
    assert "60天内累计2次" in alert["message_zh"], alert["message_zh"]


def test_near_miss_a_late_test_more_than_a_period_before(engine: Engine) -> None:
    """The same upload for a test of 12-20 (71 days before 03-01): no 60-day period holds both."""
    s = Story(engine)
    s.send(ev("P-late-b", "late-b-1", "2026-03-01", scene=6, dx=DM, items=[line("1", HBA1C, "service", 1, 60.0)]))
    assert s.one(ev("P-late-b", "late-b-2", "2026-03-20", scene=6, inst="H2", dx=DM,
                    items=[line("1", HBA1C, "service", 1, 60.0, start="2025-12-20")]), "R16") is None


def test_an_event_dated_before_later_ones_that_arrives_last(engine: Engine) -> None:
    """Events of 03-20 then one dated 02-10 arriving after it: 38 days apart, two in one period."""
    s = Story(engine)
    s.send(ev("P-late-c", "late-c-1", "2026-03-20", scene=6, dx=DM, items=[line("1", HBA1C, "service", 1, 60.0)]))
    assert s.one(ev("P-late-c", "late-c-2", "2026-02-10", scene=6, inst="H2", dx=DM,
                    items=[line("1", HBA1C, "service", 1, 60.0)]), "R16") is not None


def test_r19_and_r20_cite_the_right_items_of_the_prescription_review_rules(engine: Engine) -> None:
    """《医院处方点评管理规范(试行)》: 重复给药 is 第十八条(七); two drugs of the same pharmacological action
    is 第十九条(四); 第十七条 (不规范处方) is neither (found by the independent audit)."""
    basis = {r["id"]: r["policy_basis"] for r in engine.rules_catalog()}
    assert "第十八条(七)(重复给药)" in basis["R19"] and "第十七条" not in basis["R19"]
    assert "第十九条(四)" in basis["R20"] and "第十七条" not in basis["R20"]
