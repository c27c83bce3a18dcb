"""Rule families on provider status the bureau feeds: the treating institution's 定点协议
(suspended / terminated) and the ordering doctor's 医保医师 payment qualification (suspended).

Read from :class:`services.rules.providers.Providers` (``Ctx.prov``; None: no provider status
known, nothing fires). Each line is judged at its own service date (each day a multi-day line
covers); an event without lines at its own date. The doctor of a line is ``items[].doctor_id``
(NHSA ``drord_dr_codg``), else the encounter's ``doctor_id`` (NHSA ``dr_codg``).
"""

from __future__ import annotations

from typing import Any

from services.rules.families import Hit, family
from services.rules.timeutil import date_of_day

STATUS_ZH = {"suspended": "暂停", "terminated": "解除"}
STATUS_EN = {"suspended": "suspended", "terminated": "terminated"}
SUBJECT_ZH = {"institution": "定点医药机构", "doctor": "医保医师"}


def _period(p: Any) -> tuple[str, str]:
    since = date_of_day(p.frm)
    if p.to is None:
        return f"{since}起", f"from {since}"
    until = date_of_day(p.to)
    return f"{since}至{until}", f"from {since} to {until}"


@family("provider_status", params={"subject": str, "statuses": list, "exempt_med_types": list,
                                   "exempt_departments": list},
        fields=("provider", "status_zh", "status_en", "period_zh", "period_en", "reason", "document_no"))
def provider_status(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """定点协议 / 医保支付资格: lines dated inside a period of a status in ``statuses`` of the
    treating institution (``subject: institution``) or of the line's doctor (``subject: doctor``).
    Events of a ``med_type`` in ``exempt_med_types`` or a department starting with one of
    ``exempt_departments`` are not judged (R43: emergencies and rescue, 急诊、抢救)."""
    prov = cx.prov
    if prov is None:
        return []
    if cx.med_type in p["exempt_med_types"] or (cx.dept and cx.dept.startswith(tuple(p["exempt_departments"]))):
        return []
    if p["subject"] == "institution" and not prov.known("institution", cx.inst):
        return []
    return _provider_hits(cx, p, prov)


def _provider_hits(cx: Any, p: dict[str, Any], prov: Any) -> list[Hit]:
    """provider_status past its early exits. A function of its own: its inner functions make cells
    of its locals, built on every call, and most events leave at an early exit."""
    subject = p["subject"]
    wanted = p["statuses"]
    enc_doctor = cx.enc.get("doctor_id")
    if subject == "institution":
        def who(line: Any) -> str | None:
            return cx.inst
    else:
        def who(line: Any) -> str | None:
            return (line.doctor_id or enc_doctor) if line is not None else enc_doctor
    groups: dict[tuple[str, int], tuple[str, Any, list[Any]]] = {}  # (provider, period start) -> lines
    if not cx.items:
        sid = who(None)
        period = prov.affecting(subject, sid, cx.day)
        if sid is None or period is None or period.status not in wanted:
            return []
        groups[(sid, period.frm)] = (sid, period, [])
    share: dict[int, float] = {}  # id(line) -> its amount on the affected days (a multi-day line: those days only)
    for line in cx.items:
        sid = who(line)
        if sid is None or not prov.known(subject, sid):
            continue
        first = None
        days = 0
        for day in range(line.start, line.start + line.span):
            period = prov.affecting(subject, sid, day)
            if period is not None and period.status in wanted:
                days += 1
                if first is None:
                    first = period
        if first is not None:
            groups.setdefault((sid, first.frm), (sid, first, []))[2].append(line)
            share[id(line)] = line.amt if days == line.span else line.amt * days / line.span
    hits = []
    for sid, period, lines in groups.values():
        zh, en = _period(period)
        fields = {"provider": sid, "status_zh": STATUS_ZH.get(period.status, period.status),
                  "status_en": STATUS_EN.get(period.status, period.status), "period_zh": zh, "period_en": en,
                  "reason": period.reason or "-", "document_no": period.document_no or "-"}
        hits.append((fields, [ln.lid for ln in lines], sum(share[id(ln)] for ln in lines), [period.evidence(subject, sid)]))
    return hits
