"""Event-time arithmetic: every day in the state is an epoch-day int (days since 1970-01-01, China time).

The conversions used on the hot path (timestamp → day, day → 'YYYY-MM-DD',
day → yyyymm) are memoised: they are pure functions of their argument, and a
stream of events only ever names a few hundred distinct days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from services.rules.exceptions import DataError

CST = timezone(timedelta(hours=8), "CST")
EPOCH_ORD = date(1970, 1, 1).toordinal()
NEVER = 10**7  # an open effective_to

_MEMO_MAX = 50_000  # distinct arguments remembered per memo (a memo is cleared when full)


class Memo(dict[Any, Any]):
    """The remembered results of a pure function of one argument: ``memo[x]`` is ``fn(x)``,
    computed on the first lookup (``__missing__``) and kept (at most ``size``, default
    ``_MEMO_MAX``; cleared when full). Three conversions below are ``memo.__getitem__``: a remembered
    result is one C call, with no Python frame, which matters at several conversions per event."""

    __slots__ = ("fn", "size")

    def __init__(self, fn: Callable[[Any], Any], size: int | None = None) -> None:
        super().__init__()
        self.fn = fn
        self.size = size

    def __missing__(self, key: Any) -> Any:
        value = self.fn(key)
        if len(self) >= (self.size or _MEMO_MAX):
            self.clear()
        self[key] = value
        return value


def _day_of_date(text: str) -> int:
    return date.fromisoformat(text).toordinal() - EPOCH_ORD


def _date_of_day(day: int) -> str:
    return date.fromordinal(day + EPOCH_ORD).isoformat()


def _month_of_day(day: int) -> int:
    d = date.fromordinal(day + EPOCH_ORD)
    return d.year * 100 + d.month


# 'YYYY-MM-DD' → epoch day.
day_of_date: Callable[[str], int] = Memo(_day_of_date).__getitem__
# Epoch day → 'YYYY-MM-DD'.
date_of_day: Callable[[int], str] = Memo(_date_of_day).__getitem__
# Epoch day → yyyymm int (natural month).
month_of_day: Callable[[int], int] = Memo(_month_of_day).__getitem__


_TIME_DAY: dict[str, int] = {}  # a timestamp (as given) → epoch day of its date in China time


def day_of_time(text: str) -> int:
    """ISO-8601 timestamp → epoch day of its date in China time (UTC+08:00). Remembered per
    timestamp like the others, but in a function: event times are mostly distinct (a Memo's miss
    costs a call from C back into Python), their dates are few (day_of_date)."""
    day = _TIME_DAY.get(text)
    if day is not None:
        return day
    if text.endswith("+08:00") or len(text) <= 10:
        day = day_of_date(text[:10])
    else:
        dt = datetime.fromisoformat(text)
        day = dt.toordinal() - EPOCH_ORD if dt.tzinfo is None else dt.astimezone(CST).toordinal() - EPOCH_ORD
    if len(_TIME_DAY) >= _MEMO_MAX:
        _TIME_DAY.clear()
    _TIME_DAY[text] = day
    return day


def age_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def effective_days(row: dict[str, Any], where: str) -> tuple[int, int]:
    """A dated row's (effective_from, effective_to) as epoch days; an open end is ``NEVER``."""
    try:
        frm = day_of_date(row["effective_from"])
        to = day_of_date(row["effective_to"]) if row.get("effective_to") else NEVER
    except ValueError:
        raise DataError(f"{where}: effective_from/effective_to must be YYYY-MM-DD dates") from None
    if to < frm:
        raise DataError(f"{where}: effective_to {row['effective_to']} is before effective_from {row['effective_from']}")
    return frm, to
