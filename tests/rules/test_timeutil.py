"""Event-time conversions: memoised lookups give what the plain conversions give, bad input raises."""

from __future__ import annotations

from datetime import date

import pytest

from services.rules import timeutil
from services.rules.timeutil import EPOCH_ORD, date_of_day, day_of_date, day_of_time, month_of_day


def test_conversions_agree_with_datetime_twice_in_a_row() -> None:
    for _ in range(2):  # the second round is answered by the memo
        assert day_of_date("2026-03-01") == date(2026, 3, 1).toordinal() - EPOCH_ORD
        assert day_of_time("2026-03-01T23:59:00+08:00") == day_of_date("2026-03-01")
        assert day_of_time("2026-03-01T16:30:00+00:00") == day_of_date("2026-03-02")  # 00:30 China time
        assert day_of_time("2026-03-01") == day_of_date("2026-03-01")
        assert date_of_day(day_of_date("2024-02-29")) == "2024-02-29"
        assert month_of_day(day_of_date("2026-12-31")) == 202612


def test_bad_input_raises_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            day_of_date("2026-02-30")
        with pytest.raises(ValueError):
            day_of_time("yesterday at noon")


def test_a_full_memo_is_cleared_and_keeps_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeutil, "_MEMO_MAX", 3)
    memo = timeutil.Memo(lambda x: x * 2)
    assert [memo[i] for i in range(10)] == [i * 2 for i in range(10)]
    assert len(memo) <= 3
    sized = timeutil.Memo(lambda x: -x, size=2)
    assert [sized[i] for i in range(5)] == [0, -1, -2, -3, -4] and len(sized) <= 2
