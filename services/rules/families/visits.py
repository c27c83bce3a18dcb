"""Rule families on outpatient visits: frequent visits, several institutions on one day."""

from __future__ import annotations

from typing import Any

from services.rules.families import Hit, family
from services.rules.state import V_DAY, V_ENC, V_EVENT, V_INST
from services.rules.timeutil import date_of_day


def _visit_evidence(v: list[Any]) -> dict[str, Any]:
    return {"kind": "event", "event_id": v[V_EVENT] if len(v) > V_EVENT else None, "institution_id": v[V_INST],
            "date": date_of_day(v[V_DAY]), "amount": None}


def _prior_visits(cx: Any) -> list[Any] | None:
    """Earlier visits, or None when this encounter is already counted (a re-sent scene)."""
    visits = cx.state.get("V", ())
    for v in visits:
        if v[V_ENC] == cx.ench:
            return None
    return list(visits)


@family(
    "frequent_visits", needs=("outpatient", "V", "new_visit"), params={"window_days": int, "max_visits": int, "same_day_max": int},
    fields=("count", "days", "same_day"), windows={"visits": "window_days"},
)
def frequent_visits(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """频繁门诊: more than max_visits visits in window_days, or same_day_max or more on one day."""
    if cx.enc_type != "outpatient":
        return []
    visits = cx.state["V"]
    ench = cx.ench
    day = cx.day
    window = p["window_days"]
    count = same = 1
    later = False
    for v in visits:
        if v[V_ENC] == ench:
            return []  # this encounter is already counted (a re-sent scene)
        age = day - v[V_DAY]
        if 0 <= age < window:
            count += 1
            if age == 0:
                same += 1
        elif age < 0:
            later = True
    lo = day - window + 1  # the window of window_days ending on the visit's day
    if later:
        count, lo = _busiest_window(visits, day, window, count, lo)
    if count <= p["max_visits"] and same < p["same_day_max"]:
        return []
    fields = {"count": count, "days": window, "same_day": same}
    if count <= p["max_visits"]:
        shown = _visits_within(visits, day, day + 1)
    else:
        shown = _visits_within(visits, lo, lo + window)
    return [(fields, [], 0.0, [_visit_evidence(v) for v in sorted(shown, key=_by_day_inst)])]


# (Module functions, not comprehensions in frequent_visits: there every local a comprehension reads
# would be a cell, built on each call, and the rule runs on every outpatient event.)
def _busiest_window(visits: list[Any], day: int, window: int, count: int, lo: int) -> tuple[int, int]:
    """A visit reported late (an offline clinic's batch): the recorded visits after it count too, so
    the busiest window of ``window`` days that contains it: (visits counted, its first day)."""
    near = sorted(v[V_DAY] for v in visits if abs(day - v[V_DAY]) < window)
    for start in sorted({d for d in near if lo <= d <= day} | {day}):
        n = 1 + sum(1 for d in near if start <= d < start + window)
        if n > count:
            count, lo = n, start
    return count, lo


def _visits_within(visits: list[Any], lo: int, hi: int) -> list[Any]:
    return [v for v in visits if lo <= v[V_DAY] < hi]


def _by_day_inst(v: list[Any]) -> tuple[Any, Any]:
    return v[V_DAY], v[V_INST]



@family(
    "same_day_institutions", needs=("outpatient", "V", "new_visit"), params={"max_institutions": int},
    fields=("count", "institutions", "institutions_en"),
)
def same_day_institutions(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """同日多院就诊: outpatient visits at more than max_institutions institutions on one day."""
    if cx.enc_type != "outpatient":
        return []
    prior = _prior_visits(cx)
    if prior is None:
        return []
    day, inst = cx.day, cx.inst
    insts = {inst}
    for v in prior:  # (loops: a comprehension would make ``cx`` a cell, built on every outpatient event)
        if v[V_DAY] == day:
            insts.add(v[V_INST])
    if len(insts) <= p["max_institutions"]:
        return []
    fields = {"count": len(insts), "institutions": "、".join(sorted(insts)), "institutions_en": ", ".join(sorted(insts))}
    evidence = []
    for v in prior:
        if v[V_DAY] == day and v[V_INST] != inst:
            evidence.append(_visit_evidence(v))
    return [(fields, [], 0.0, evidence)]
