"""The worker's count of table-store failures in a row (services/stream/store.py FailureStreak)."""

from services.stream.store import FailureStreak


def test_the_limit_is_reached_only_by_failures_in_a_row() -> None:
    streak = FailureStreak(3)
    assert not streak.failed() and not streak.failed()
    streak.ok()  # a successful write: the store works again
    assert streak.count == 0
    assert not streak.failed() and not streak.failed()
    assert streak.failed()  # the third in a row
    assert streak.count == 3


def test_a_limit_of_one_exits_at_the_first_failure() -> None:
    assert FailureStreak(1).failed()
