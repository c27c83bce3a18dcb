"""Rule family on the insured status the bureau feeds (deceased, suspended 失信, uninsured)."""

from __future__ import annotations

from typing import Any

from services.rules.families import Hit, family
from services.rules.state import S_FROM, S_REASON, S_STATUS, S_TO, status_on
from services.rules.timeutil import date_of_day

STATUS_ZH = {"deceased": "已死亡", "suspended": "暂停联网结算(失信)", "uninsured": "未参保或参保中断"}
STATUS_EN = {"deceased": "deceased", "suspended": "suspended from direct settlement", "uninsured": "not insured"}


@family("insured_status", needs=("S",), params={"statuses": list}, fields=("status_zh", "status_en", "since", "reason"))
def insured_status(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """参保状态: the patient is deceased, suspended or uninsured on the event date."""
    if "S" not in cx.state:
        return []
    row = status_on(cx.state, cx.day)
    if row is None or row[S_STATUS] not in p["statuses"]:
        return []
    kind = row[S_STATUS]
    fields = {"status_zh": STATUS_ZH[kind], "status_en": STATUS_EN[kind], "since": date_of_day(row[S_FROM]), "reason": row[S_REASON] or "-"}
    until = f" to {date_of_day(row[S_TO])}" if row[S_TO] is not None else ""
    detail = f"{kind} from {date_of_day(row[S_FROM])}{until}" + (f"; reason: {row[S_REASON]}" if row[S_REASON] else "")
    evidence = [{"kind": "kb", "table": "patient_status", "code": kind, "detail": detail}]
    return [(fields, [ln.lid for ln in cx.items], cx.total, evidence)]
