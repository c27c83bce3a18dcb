"""Pure: the review workflow's transitions, roles, reasons, amounts and deadlines; the record mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.decisionlog import records, workflow
from services.decisionlog.workflow import Case, WorkflowError, transition

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def go(case: Case, action: str, role: str, actor: str = "a", reason: str | None = "why",
       amount: float | None = None) -> workflow.Transition:
    return transition(case, action, role, actor, reason, amount, NOW, 10)


def test_every_action_from_its_state_to_the_next_with_a_deadline() -> None:
    t = go(Case("open", 50.0, None, None), "confirm", "reviewer")
    assert (t.to_state, t.amount, t.due_at) == ("initial_review", 50.0, "2026-03-11T08:00:00.000000Z")
    assert go(Case("open", 50.0, None, None), "dismiss", "reviewer").outcome == "dismissed"
    assert go(Case("initial_review", 50.0, 40.0, "r1"), "accept", "institution").amount == 40.0
    assert go(Case("initial_review", 50.0, 40.0, "r1"), "appeal", "institution").to_state == "appealed"
    assert go(Case("appealed", 50.0, 40.0, "r1"), "take", "senior_reviewer", "s1").to_state == "re_review"
    full = go(Case("re_review", 50.0, 40.0, "r1"), "uphold", "senior_reviewer", "s1")
    assert (full.outcome, full.amount, full.due_at) == ("upheld", 40.0, None)
    part = go(Case("re_review", 50.0, 40.0, "r1"), "uphold", "senior_reviewer", "s1", amount=15.0)
    assert (part.outcome, part.amount) == ("partially_upheld", 15.0)
    assert go(Case("re_review", 50.0, 40.0, "r1"), "overturn", "senior_reviewer", "s1").outcome == "dismissed"


def test_refusals_name_the_state_the_role_or_the_field() -> None:
    with pytest.raises(WorkflowError) as e:
        go(Case("closed", 50.0, None, "r1"), "appeal", "institution")
    assert e.value.status == 409 and "closed" in e.value.message
    with pytest.raises(WorkflowError) as e:
        go(Case("initial_review", 50.0, 40.0, "r1"), "uphold", "senior_reviewer")
    assert e.value.status == 409 and "allowed: appeal, accept" in e.value.message
    with pytest.raises(WorkflowError) as e:
        go(Case("open", 50.0, None, None), "confirm", "institution")
    assert e.value.status == 403
    with pytest.raises(WorkflowError) as e:
        go(Case("appealed", 50.0, 40.0, "r1"), "take", "senior_reviewer", actor="r1")
    assert e.value.status == 403 and "复审" in e.value.message
    with pytest.raises(WorkflowError) as e:
        go(Case("initial_review", 50.0, 40.0, "r1"), "appeal", "institution", reason="  ")
    assert (e.value.status, e.value.field) == (422, "reason")
    with pytest.raises(WorkflowError) as e:
        go(Case("open", 50.0, None, None), "confirm", "reviewer", amount=51.0)
    assert (e.value.status, e.value.field) == (422, "amount")
    with pytest.raises(WorkflowError) as e:
        go(Case("open", 50.0, None, None), "approve", "reviewer")
    assert (e.value.status, e.value.field) == (422, "action")


def test_times_are_normalised_to_utc_and_days_are_china_days() -> None:
    assert records.utc_iso("2026-03-01T07:30:00+08:00") == "2026-02-28T23:30:00.000000Z"
    assert records.utc_iso("2026-03-01T07:30:00") == "2026-02-28T23:30:00.000000Z"  # no offset: CST
    assert records.cst_day("2026-02-28T23:30:00Z") == "2026-03-01"


def test_rulebase_records_keep_manifests_and_activations_only() -> None:
    assert records.rulebase_row("bundle.abc.0", {}, "t") is None
    assert records.rulebase_row("manifest.abc", {"revision": "abc"}, "t")["revision"] == "abc"  # type: ignore[index]
    active = records.rulebase_row("active", {"revision": "abc", "activated_at": "2026"}, "t")
    assert active is not None and active["revision_key"] == "active.abc.2026"


def test_each_step_has_its_own_deadline_when_configured() -> None:
    from services.common.settings import SettingsError, load_settings

    days = load_settings({"PRESETTLE_REVIEW_DEADLINE_DAYS": "10,appealed=5"}).review_deadlines
    assert days == {"open": 10, "initial_review": 10, "appealed": 5, "re_review": 10}
    t = transition(Case("initial_review", 50.0, 40.0, "r1"), "appeal", "institution", "a", "why", None, NOW, days)
    assert t.due_at == "2026-03-06T08:00:00.000000Z"  # appealed: 5 days
    assert workflow.days_for(days, "open") == 10 and workflow.days_for(7, "re_review") == 7
    for bad in ("x=5", "0", "appealed=400", "soon"):
        with pytest.raises(SettingsError, match="PRESETTLE_REVIEW_DEADLINE_DAYS"):
            load_settings({"PRESETTLE_REVIEW_DEADLINE_DAYS": bad})
