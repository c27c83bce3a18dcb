"""Event-time arithmetic: every day in the state is an epoch-day int (days since 1970-01-01, China time).

The conversions used on the hot path (timestamp → day, day → 'YYYY-MM-DD',
day → yyyymm) are memoised: they are pure functions of their argument, and a
stream of events only ever names a few hundred distinct days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from services.rules.exceptions import DataError

CST = timezone(timedelta(hours=8), "CST")
EPOCH_ORD = date(1970, 1, 1).toordinal()
NEVER = 10**7  # an open effective_to

_MEMO_MAX = 50_000  # distinct dates remembered per memo (a memo is cleared when full)
_DATE_DAY: dict[str, int] = {}  # a date string (as given) → epoch day
_DATE_OF: dict[int, str] = {}   # epoch day → 'YYYY-MM-DD'
_MONTH_OF: dict[int, int] = {}  # epoch day → yyyymm
_TIME_DAY: dict[str, int] = {}  # a timestamp (as given) → epoch day of its date in China time


def day_of_date(text: str) -> int:
    """'YYYY-MM-DD' → epoch day."""
    day = _DATE_DAY.get(text)
    if day is None:
        day = date.fromisoformat(text).toordinal() - EPOCH_ORD
        if len(_DATE_DAY) >= _MEMO_MAX:
            _DATE_DAY.clear()
        _DATE_DAY[text] = day
    return day


def day_of_time(text: str) -> int:
    """ISO-8601 timestamp → epoch day of its date in China time (UTC+08:00)."""
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


def date_of_day(day: int) -> str:
    text = _DATE_OF.get(day)
    if text is None:
        text = date.fromordinal(day + EPOCH_ORD).isoformat()
        if len(_DATE_OF) >= _MEMO_MAX:
            _DATE_OF.clear()
        _DATE_OF[day] = text
    return text


def month_of_day(day: int) -> int:
    """Epoch day → yyyymm int (natural month)."""
    month = _MONTH_OF.get(day)
    if month is None:
        d = date.fromordinal(day + EPOCH_ORD)
        month = d.year * 100 + d.month
        if len(_MONTH_OF) >= _MEMO_MAX:
            _MONTH_OF.clear()
        _MONTH_OF[day] = month
    return month


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
