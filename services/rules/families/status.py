"""Rule family on the insured status the bureau feeds (deceased, suspended 失信, uninsured)."""

from __future__ import annotations

from typing import Any

from services.rules.families import Hit, family
from services.rules.state import S_FROM, S_REASON, S_STATUS, S_TO, status_on
from services.rules.timeutil import date_of_day

STATUS_ZH = {"deceased": "已死亡", "suspended": "暂停联网结算(失信)", "uninsured": "未参保或参保中断"}
STATUS_EN = {"deceased": "deceased", "suspended": "suspended from direct settlement", "uninsured": "not insured"}


def status_affecting(state: dict[str, Any], day: int) -> list[Any] | None:
    """The status row that makes care on ``day`` unpayable, or None. Care up to and including the
    day of death is payable: a death recorded from day d affects days after d."""
    row = status_on(state, day)
    if row is None or row[S_STATUS] == "active" or (row[S_STATUS] == "deceased" and day <= row[S_FROM]):
        return None
    return row


@family("insured_status", needs=("S",), params={"statuses": list}, fields=("status_zh", "status_en", "since", "reason"))
def insured_status(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """参保状态: lines dated (each day a multi-day line covers) inside a deceased, suspended or
    uninsured period; an event without lines is judged at its own date."""
    state = cx.state
    if "S" not in state:
        return []
    wanted = p["statuses"]
    groups: dict[int, tuple[list[Any], list[Any]]] = {}  # id(status row) -> (row, affected lines)
    share: dict[int, float] = {}  # id(line) -> its amount on the affected days (a multi-day line: those days only)
    if not cx.items:
        row = status_affecting(state, cx.day)
        if row is None or row[S_STATUS] not in wanted:
            return []
        groups[id(row)] = (row, [])
    for line in cx.items:
        first = None
        days = 0
        for day in range(line.start, line.start + line.span):
            row = status_affecting(state, day)
            if row is not None and row[S_STATUS] in wanted:
                days += 1
                if first is None:
                    first = row
        if first is not None:
            groups.setdefault(id(first), (first, []))[1].append(line)
            share[id(line)] = line.amt if days == line.span else line.amt * days / line.span
    hits = []
    for row, lines in groups.values():
        kind = row[S_STATUS]
        fields = {"status_zh": STATUS_ZH[kind], "status_en": STATUS_EN[kind], "since": date_of_day(row[S_FROM]), "reason": row[S_REASON] or "-"}
        until = f" to {date_of_day(row[S_TO])}" if row[S_TO] is not None else ""
        detail = f"{kind} from {date_of_day(row[S_FROM])}{until}" + (f"; reason: {row[S_REASON]}" if row[S_REASON] else "")
        if kind == "deceased":
            detail += "; care up to and including the day of death is payable"
        evidence = [{"kind": "kb", "table": "patient_status", "code": kind, "detail": detail}]
        hits.append((fields, [ln.lid for ln in lines], sum(share[id(ln)] for ln in lines), evidence))
    return hits
