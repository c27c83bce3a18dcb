"""The alert index arithmetic (services/rules/alert_index.py): pure, no broker."""

from __future__ import annotations

from services.rules import alert_index as index


def test_issue_then_feedback_once_per_alert_and_outcome() -> None:
    entry = index.issue(None, "H1", ["d-1.R19.1", "d-1.R03.2"], at=1000)
    new, status = index.feedback(entry, "H1", "d-1.R19.1", "accepted")
    assert status == "recorded" and new is not None and new["a"]["d-1.R19.1"] == ["accepted"]
    assert index.feedback(new, "H1", "d-1.R19.1", "accepted") == (None, "duplicate")
    again, status = index.feedback(new, "H1", "d-1.R19.1", "overridden")
    assert status == "recorded" and again is not None and again["a"]["d-1.R19.1"] == ["accepted", "overridden"]


def test_unknown_alert_and_other_institution_look_the_same() -> None:
    entry = index.issue(None, "H1", ["d-1.R19.1"], at=1000)
    assert index.feedback(None, "H1", "d-1.R19.1", "accepted") == (None, "unknown")
    assert index.feedback(entry, "H2", "d-1.R19.1", "accepted") == (None, "unknown")
    assert index.feedback(entry, "H1", "d-1.R19.2", "accepted") == (None, "unknown")


def test_reissue_keeps_recorded_feedback_and_entries_expire() -> None:
    entry = index.issue(None, "H1", ["d-1.R19.1"], at=1000)
    entry, _ = index.feedback(entry, "H1", "d-1.R19.1", "accepted")
    assert entry is not None
    again = index.issue(entry, "H1", ["d-1.R19.1"], at=2000)  # a replayed decision re-issues
    assert again["a"]["d-1.R19.1"] == ["accepted"] and again["t"] == 1000
    assert not index.expired(again, 1000 + index.WINDOW_S) and index.expired(again, 1001 + index.WINDOW_S)
