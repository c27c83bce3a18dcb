"""Event-time arithmetic: every day in the state is an epoch-day int (days since 1970-01-01, China time)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")
EPOCH_ORD = date(1970, 1, 1).toordinal()
NEVER = 10**7  # an open effective_to


def day_of_date(text: str) -> int:
    """'YYYY-MM-DD' → epoch day."""
    return date.fromisoformat(text).toordinal() - EPOCH_ORD


def day_of_time(text: str) -> int:
    """ISO-8601 timestamp → epoch day of its date in China time (UTC+08:00)."""
    if text.endswith("+08:00") or len(text) <= 10:
        return date.fromisoformat(text[:10]).toordinal() - EPOCH_ORD
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        return dt.toordinal() - EPOCH_ORD
    return dt.astimezone(CST).toordinal() - EPOCH_ORD


def date_of_day(day: int) -> str:
    return date.fromordinal(day + EPOCH_ORD).isoformat()


def month_of_day(day: int) -> int:
    """Epoch day → yyyymm int (natural month)."""
    d = date.fromordinal(day + EPOCH_ORD)
    return d.year * 100 + d.month


def age_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
