"""The state update's shortcuts give what the plain versions gave: ``_fold`` walks an ingredient's rows
as they come while they are dated in order and sorts otherwise, adds folded entries in date order and
drops those before ``past_from`` from the front; ``evict`` drops expired visits in place, also one that
a late event put behind a live visit. Pure: rows built by hand, no engine."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from services.rules import state as st

DAY = 20_600  # an epoch day (2026-05-27)


def row(start: int, days: int, enc: int, past: list[Any] | None = None) -> list[Any]:
    return ["atorvastatin", "XC10AAA", start, days, days, "H1", f"e{enc}", enc, st.month_of_day(start), [enc],
            past if past is not None else [], [], 0, 3.2]


def entry(start: int, enc: int) -> list[Any]:
    return [f"e{enc}", "H1", start, 7, enc, 7]


def fold(rows: list[Any], day: int) -> list[Any]:
    """The ledger after ``_fold`` of ``rows`` (its only rows) in the order given."""
    ledger = copy.deepcopy(rows)
    st._fold(ledger, list(ledger), day)
    return ledger


def test_fold_gives_the_same_ledger_whatever_the_rows_order() -> None:
    rows = [row(DAY - 50, 10, 1, [entry(DAY - 70, 9), entry(DAY - 60, 8)]), row(DAY - 30, 10, 2),
            row(DAY - 12, 5, 3), row(DAY - 5, 30, 4)]
    expected = fold(rows, DAY)
    (host,) = expected  # every supply but the newest was used up before the next began: all folded
    assert host[st.L_ENC] == 4
    assert [e[st.F_START] for e in host[st.L_PAST]] == [DAY - 70, DAY - 60, DAY - 50, DAY - 30, DAY - 12]
    for order in itertools.permutations(rows):
        assert fold(list(order), DAY) == expected


def test_fold_sorts_a_folded_entry_dated_before_those_held() -> None:
    # the newest row's own folded entries are later than the supply that folds into it now
    rows = [row(DAY - 40, 5, 1), row(DAY - 3, 30, 2, [entry(DAY - 20, 7), entry(DAY - 10, 8)])]
    (host,) = fold(rows, DAY)
    assert [e[st.F_START] for e in host[st.L_PAST]] == [DAY - 40, DAY - 20, DAY - 10]


def test_fold_drops_the_entries_before_past_from_and_keeps_the_rest() -> None:
    first = st.past_from(DAY)
    old = [entry(first - 30, 5), entry(first - 1, 6), entry(first, 7), entry(first + 3, 8)]
    (host,) = fold([row(DAY - 20, 5, 1, old), row(DAY - 2, 30, 2)], DAY)
    assert [e[st.F_START] for e in host[st.L_PAST]] == [first, first + 3, DAY - 20]


def visits_after_evict(rows: list[Any], day: int) -> list[Any] | None:
    state: dict[str, Any] = {"d": day - 1, "V": copy.deepcopy(rows)}
    st.evict(state, day, st.Windows())
    return state.get("V")


def test_evict_drops_expired_visits_in_front_and_behind_a_live_one() -> None:
    win = st.Windows().visits
    rows = [[DAY - win - 3, "H1", 1, "e1"], [DAY - win, "H1", 2, "e2"], [DAY - 2, "H1", 3, "e3"],
            [DAY - win - 1, "H1", 4, "e4"],  # a late event's visit, expired, behind a live one
            [DAY, "H1", 5, "e5"]]
    assert visits_after_evict(rows, DAY) == [rows[2], rows[4]]


def test_evict_removes_the_visits_when_none_is_live() -> None:
    win = st.Windows().visits
    assert visits_after_evict([[DAY - win - 3, "H1", 1, "e1"], [DAY - win, "H1", 2, "e2"]], DAY) is None


def test_evict_keeps_the_visits_when_the_first_is_live() -> None:
    rows = [[DAY - 3, "H1", 1, "e1"], [DAY - 1, "H1", 2, "e2"]]
    assert visits_after_evict(rows, DAY) == rows
