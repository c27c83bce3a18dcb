"""Rule families on catalogue coverage: a line whose code is not in force on its service date.

Never silent: a line without a catalogue row skips every line rule, so it gets an alert of its
own (R38 目录外 / 已退出目录 for a national-format code, R39 未对照编码 for a hospital code that
maps to no national code) and is listed in the decision's ``unchecked_lines``.
"""

from __future__ import annotations

import re
from typing import Any

from services.rules.families import Hit, ev_item, family, kb_ev
from services.rules.timeutil import date_of_day

# National code shapes (catalogues.md): western drugs X + 22, patent medicines Z + 19, decoction
# pieces T + 9 digits (formula granules T + 19), services 15 digits (a HIS may append "-<local code>"),
# consumables C + 19 (base) or C + 26 (with the 7-digit serial).
NATIONAL = re.compile(r"^(?:X[A-Z0-9]{22}|Z[A-Z0-9]{19}|T\d{9}|T[A-Z0-9]{19}|\d{15}(?:-.*)?|C\d{19}|C\d{26})$")
KIND_ZH = {"drug": "药品", "herb": "中药饮片", "service": "医疗服务项目", "consumable": "医用耗材"}
KIND_EN = {"drug": "drug", "herb": "decoction piece", "service": "medical service", "consumable": "consumable"}


def coverage(kb: Any, code: str, kind: str, day: int) -> tuple[str, int | None, int | None]:
    """Why a code has no catalogue row in force on ``day``: (reason, left_day, from_day).

    reason: ``retired`` (its last version ended before ``day``: left_day is that version's last
    day), ``not_yet_listed`` (its first version starts after ``day``: from_day), ``not_listed``
    (a national-format code the catalogue does not hold) or ``unmapped`` (no national code)."""
    table = kb.drugs if kind in ("drug", "herb") else kb.services
    base = code.split("-", 1)[0] if "-" in code else code  # "<national code>-<local code>"
    if base in table:
        versions = [r for r in table.rows() if r["code"] == base]
        ended = [r["_to"] for r in versions if r["_to"] < day]
        later = [r["_from"] for r in versions if r["_from"] > day]
        if ended:
            return "retired", max(ended), min(later) if later else None
        return "not_yet_listed", None, min(later) if later else None
    return ("not_listed" if NATIONAL.match(code) else "unmapped"), None, None


def unchecked_entry(kb: Any, line_id: str, code: str, kind: str, day: int) -> dict[str, Any]:
    """One ``unchecked_lines`` entry: the line, why its catalogue rules could not run, the dates known."""
    reason, left, frm = coverage(kb, code, kind, day)
    detail = {
        "retired": f"code left the catalogue after {date_of_day(left)}" if left is not None else "code left the catalogue",
        "not_yet_listed": f"code is in the catalogue only from {date_of_day(frm)}" if frm is not None else "code not yet in force",
        "not_listed": "national-format code not in the catalogue",
        "unmapped": "hospital code not mapped to a national code",
    }[reason]
    return {"line_id": line_id, "code": code, "kind": kind, "service_date": date_of_day(day), "reason": reason,
            "left_catalogue_after": date_of_day(left) if left is not None else None, "detail": detail}


def _hits(cx: Any, reasons: tuple[str, ...]) -> list[Hit]:
    hits = []
    for line in cx.items:
        if line.row is not None:
            continue
        reason, left, frm = coverage(cx.kb, line.code, line.kind, line.start)
        if reason not in reasons:
            continue
        if reason == "retired":
            last = date_of_day(left) if left is not None else "?"  # coverage() gives the day for "retired"
            why_zh = f"已退出目录(最后执行日{last})"
            why_en = f"left the catalogue after {last}"
        elif reason == "not_yet_listed":
            why_zh = f"目录外(服务日期时尚未纳入，{date_of_day(frm)}起执行)" if frm is not None else "目录外(尚未纳入)"
            why_en = f"not yet in the catalogue (in force from {date_of_day(frm)})" if frm is not None else "not yet in the catalogue"
        elif reason == "not_listed":
            why_zh, why_en = "目录外(医保目录无此编码)", "not in the insurance catalogue"
        else:
            why_zh, why_en = "未对照编码(院内编码未对照国家医保编码)", "unmapped hospital code (no national code)"
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "kind_zh": KIND_ZH.get(line.kind, line.kind),
                  "kind_en": KIND_EN.get(line.kind, line.kind), "date": date_of_day(line.start), "why_zh": why_zh, "why_en": why_en}
        detail = f"{reason}" + (f"; last day in force {date_of_day(left)}" if left is not None else "") + (
            f"; in force from {date_of_day(frm)}" if frm is not None else "")
        table = "drugs" if line.kind in ("drug", "herb") else "services"
        hits.append((fields, [line.lid], line.amt, [ev_item(cx, line, date=date_of_day(line.start)), kb_ev(table, line.code, detail)]))
    return hits


COVERAGE_FIELDS = ("item", "item_en", "item_code", "kind_zh", "kind_en", "date", "why_zh", "why_en")


@family("not_in_catalogue", needs="uncovered", params={}, fields=COVERAGE_FIELDS)
def not_in_catalogue(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """目录外 / 已退出目录: a national-format code with no catalogue row in force on the line's service date."""
    return _hits(cx, ("retired", "not_yet_listed", "not_listed"))


@family("unmapped_code", needs="uncovered", params={}, fields=COVERAGE_FIELDS)
def unmapped_code(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """未对照编码: a hospital code that maps to no national code (the catalogue cannot judge the line)."""
    return _hits(cx, ("unmapped",))
