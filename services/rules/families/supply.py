"""Rule families on drugs across requests: the supply ledger (duplicates, classes, interactions, purchases, second line)."""

from __future__ import annotations

from typing import Any

from services.rules.context import DRUG
from services.rules.families import Hit, ev_item, family, kb_ev
from services.rules.kb import tag_bit
from services.rules.state import (
    BY_START,
    E_CLASSES,
    E_ENC,
    F_DAYS,
    F_START,
    L_AMT,
    L_BUYS,
    L_CODE,
    L_DAYS,
    L_ENC,
    L_EVENT,
    L_ING,
    L_INST,
    L_MONTH,
    L_PAST,
    L_QTY,
    L_START,
    drug_supplies,
    on_hand,
    past_rows,
)
from services.rules.timeutil import date_of_day, month_of_day

SECOND_LINE, INTERACTING = tag_bit("second_line"), tag_bit("interacting")
SEVERITY_ZH = {"contraindicated": "禁忌", "major": "严重", "moderate": "中度"}  # interactions.json severities


def ledger_evidence(cx: Any, row: list[Any]) -> dict[str, Any]:
    """Evidence entry for an earlier supply held in the ledger (its amount: None in a row written before
    amounts were kept)."""
    code, start = row[L_CODE], row[L_START]
    kb_row = cx.kb.drugs.get(code, start)  # (cx.kb_drug and amount_of inline: R19 names every supply of a chain)
    return {
        "kind": "event", "event_id": row[L_EVENT], "institution_id": row[L_INST], "date": date_of_day(start),
        "item_code": code, "item_name": kb_row["name"] if kb_row else code,
        "quantity": row[L_QTY], "days_supply": row[L_DAYS], "amount": row[L_AMT] if len(row) > L_AMT else None,
    }


def _name_en(cx: Any, row: list[Any]) -> str:
    kb_row = cx.kb.drugs.get(row[L_CODE], row[L_START])
    return kb_row["name_en"] if kb_row else row[L_CODE]


@family(
    "supply_overlap", needs=("drug", "L"),
    params={"window_days": int, "remaining_fraction": float},
    fields=("item", "item_en", "item_code", "prev_inst", "prev_date", "prev_qty", "prev_days", "remaining", "prev_item",
            "prev_item_en", "supplies"),
    windows={"ledger": "window_days"},
)
def supply_overlap(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """Same ingredient again while the patient still holds more than a fraction of the last supply.

    What is held is added up over every earlier supply (``state.on_hand``: early refills stack up,
    囤药), and the request's lines of one ingredient are one supply (分解处方)."""
    ledger = cx.state.get("L")
    if not ledger or not cx.kmask & DRUG:
        return []
    window = p["window_days"]
    frac = p["remaining_fraction"]
    ench = cx.ench
    hits = []
    for ing, _, start, _, _, lines, prior in drug_supplies(cx):
        if not prior:
            continue
        stock, chain = on_hand(prior, start, ench)
        if stock <= 0:
            continue
        prev = chain[-1]
        if not (start - prev[L_START] < window and stock > round(prev[L_DAYS] * frac, 2)):
            continue
        line = lines[0]
        evidence = _ledger_evidence_of(cx, chain)
        ev = evidence[-1]
        fields = {
            "item": line.name, "item_en": line.name_en, "item_code": line.code, "prev_inst": prev[L_INST],
            "prev_date": ev["date"], "prev_qty": f"{prev[L_QTY]:g}", "prev_days": prev[L_DAYS],
            "remaining": stock, "prev_item": ev["item_name"], "prev_item_en": _name_en(cx, prev),
            "supplies": len(chain),
        }
        evidence.append(kb_ev("drugs", line.code, f"ingredient={ing}"))
        hits.append((fields, [ln.lid for ln in lines], sum(ln.amt for ln in lines), evidence))
    return hits



# Evidence lists built by module functions: a comprehension in a rule function would make ``cx`` a cell
# of it, built on every call, whether the rule fires or not.
def _ledger_evidence_of(cx: Any, rows: list[Any]) -> list[dict[str, Any]]:
    return [ledger_evidence(cx, r) for r in rows]


def _items_evidence(cx: Any, lines: list[Any]) -> list[dict[str, Any]]:
    return [ev_item(cx, ln) for ln in lines]

def _active(prev: list[Any], start: int, frac: float) -> int | None:
    """Remaining days of a ledger supply at ``start`` if above ``frac`` of it, else None."""
    remaining = prev[L_DAYS] - (start - prev[L_START])
    if start >= prev[L_START] and remaining > round(prev[L_DAYS] * frac, 2) and remaining > 0:
        return remaining
    return None


@family(
    "same_class", needs=("drug", "shared_class"),
    params={"remaining_fraction": float, "exempt_classes": list},
    fields=("items", "items_en", "class_name", "class_code"),
)
def same_class(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """重复开药(同药理): two ingredients of one pharmacological class in the request, or one in the
    request while another of the class is still in supply (same ledger rule as R19)."""
    if not cx.kmask & DRUG:
        return []
    exempt = p["exempt_classes"]
    # A class of one ingredient has nothing to compare (that is R19's): the engine runs the rule only
    # when some line's row is of a shared class (the "shared_class" tag), lines of others are skipped.
    shared = cx.kb.shared_classes
    by_class: dict[str, list[Any]] = {}
    several = False  # some class has two lines in the request
    requested: set[str] = set()  # the ingredients of those lines
    for line in cx.items:
        row = line.row
        if row is None or line.kind != "drug":
            continue
        cls = row["class"]
        if cls in exempt or cls not in shared:
            continue
        requested.add(row["ingredient"])
        group = by_class.get(cls)
        if group is None:
            by_class[cls] = [line]
        else:
            group.append(line)
            several = True
    if not by_class:
        return []
    # Earlier supplies (other encounters) of other ingredients of the request's classes, in ledger
    # order (an ingredient has one class: a supply of a requested ingredient is R19's, never named here).
    earlier: dict[str, list[Any]] = {}
    ledger = cx.state.get("L")
    if ledger:
        class_of = cx.kb.class_of
        ench = cx.ench
        for prev in ledger:
            ing = prev[L_ING]
            if ing in requested:
                continue
            cls = class_of.get(ing)
            if cls in by_class and prev[L_ENC] != ench:
                group = earlier.get(cls)
                if group is None:
                    earlier[cls] = [prev]
                else:
                    group.append(prev)
    if not earlier and not several:
        return []  # one line per class and nothing held: nothing to compare
    hits = []
    for cls, lines in by_class.items():
        prevs = earlier.get(cls, ())
        if not prevs and len(lines) < 2:
            continue
        ings = {ln.row["ingredient"] for ln in lines}
        others = []
        named: set[str] = set()
        for prev in (sorted(prevs, key=BY_START, reverse=True) if len(prevs) > 1 else prevs):  # newest first
            if prev[L_ING] in named:
                continue
            prow = cx.kb_drug(prev[L_CODE], prev[L_START])
            if prow is not None and _active(prev, lines[0].start, p["remaining_fraction"]) is not None:
                others.append((prev, prow))
                named.add(prev[L_ING])
        if len(others) > 1:
            others.sort(key=lambda o: o[0][L_START])
        if len(ings) < 2 and not others:
            continue
        row = lines[0].row
        names = [ln.name for ln in lines] + [f"{prow['name']}({date_of_day(prev[L_START])}，{prev[L_INST]})" for prev, prow in others]
        names_en = [ln.name_en for ln in lines] + [f"{prow['name_en']} ({date_of_day(prev[L_START])}, {prev[L_INST]})" for prev, prow in others]
        fields = {"items": "、".join(names), "items_en": ", ".join(names_en), "class_name": row["class_name"], "class_code": cls}
        evidence = _items_evidence(cx, lines) + _ledger_evidence_of(cx, [prev for prev, _ in others])
        evidence.append(kb_ev("drugs", row["code"], f"class={cls}"))
        hits.append((fields, [ln.lid for ln in lines], sum(ln.amt for ln in lines), evidence))
    return hits


@family(
    "interaction", needs=("interacting",), params={"remaining_fraction": float, "severities": list},
    fields=("a", "a_en", "b", "b_en", "effect_zh", "effect_en", "severity", "severity_en"),
)
def interaction(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """相互作用 / 配伍禁忌: a pair from the interaction table within the request, or between the request
    and a supply still running."""
    kb = cx.kb
    inter = kb.interacting
    # Drug/herb lines whose ingredient is in the interaction table (the row's "interacting" tag).
    lines = [ln for ln in cx.items if ln.m & INTERACTING]
    if not lines:
        return []
    partners = kb.partners
    day = cx.day
    sev = p["severities"]
    hits = []
    seen: set[tuple[str, str]] = set()
    for i, a in enumerate(lines):
        ia = a.row["ingredient"]
        pa = partners[ia]
        for b in lines[i + 1:]:
            ib = b.row["ingredient"]
            if ib not in pa or (ia, ib) in seen:
                continue
            row = kb.interaction(ia, ib, day)
            if row is None or row["severity"] not in sev:
                continue
            seen.add((ia, ib))
            seen.add((ib, ia))
            fields = {"a": a.name, "a_en": a.name_en, "b": b.name, "b_en": b.name_en, "effect_zh": row["effect_zh"],
                      "effect_en": row["effect_en"], "severity": SEVERITY_ZH[row["severity"]], "severity_en": row["severity"]}
            evidence = [ev_item(cx, a), ev_item(cx, b), kb_ev("interactions", f"{row['a']}+{row['b']}", f"{row['severity']}: {row['basis']}")]
            hits.append((fields, [a.lid, b.lid], a.amt + b.amt, evidence))
    ench = cx.ench
    for prev in cx.state.get("L", ()):
        ip = prev[L_ING]
        if ip not in inter or prev[L_ENC] == ench:
            continue
        for a in lines:
            ia = a.row["ingredient"]
            if ip not in partners[ia] or (ia, ip) in seen or _active(prev, a.start, p["remaining_fraction"]) is None:
                continue
            row = kb.interaction(ia, ip, day)
            if row is None or row["severity"] not in sev:
                continue
            seen.add((ia, ip))
            seen.add((ip, ia))
            ev = ledger_evidence(cx, prev)
            fields = {"a": a.name, "a_en": a.name_en, "b": f"{ev['item_name']}({ev['date']}，{prev[L_INST]})",
                      "b_en": f"{_name_en(cx, prev)} ({ev['date']}, {prev[L_INST]})", "effect_zh": row["effect_zh"],
                      "effect_en": row["effect_en"], "severity": SEVERITY_ZH[row["severity"]], "severity_en": row["severity"]}
            evidence = [ev_item(cx, a), ev, kb_ev("interactions", f"{row['a']}+{row['b']}", f"{row['severity']}: {row['basis']}")]
            hits.append((fields, [a.lid], a.amt, evidence))
    return hits


@family(
    "frequent_purchase", needs=("drug", "L"), params={"max_per_month": int},
    fields=("item", "item_en", "item_code", "count", "limit", "month"),
)
def frequent_purchase(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """频繁购药: the same ingredient bought more than max_per_month times (encounters) in the natural
    month of the line's service date; every earlier purchase of the month is in the evidence."""
    ledger = cx.state.get("L")
    if not ledger or not cx.kmask & DRUG:
        return []
    limit = p["max_per_month"]
    ench = cx.ench
    hits = []
    for ing, _, start, _, _, lines, prior in drug_supplies(cx):
        month = month_of_day(start)
        recorded = 0  # purchases recorded in the month (an upper bound: a re-sent one is counted once below)
        late = False
        for r in prior:
            if r[L_MONTH] == month:
                recorded += len(r[L_BUYS])  # its own and the month's supplies folded into it
            elif r[L_MONTH] > month and len(r) > L_PAST:
                late = True  # a purchase reported after later ones: its month's are folded into them
        if late:
            for r in prior:
                if r[L_MONTH] > month and len(r) > L_PAST:
                    for e in r[L_PAST]:
                        if month_of_day(e[F_START]) == month:
                            recorded += 1
        if recorded < limit:
            continue  # fewer than the limit before this one: cannot exceed it
        rows = []
        for prev in prior:
            if prev[L_MONTH] == month:
                rows.append(prev)
            if prev[L_MONTH] >= month and len(prev) > L_PAST:  # its folded purchases (state.L_PAST)
                for r in past_rows(prev):
                    if r[L_MONTH] == month:
                        rows.append(r)
        buys: set[int] = set()
        for prev in rows:
            buys.add(prev[L_ENC])
            buys.update(prev[L_BUYS])
        if ench in buys or len(buys) + 1 <= limit:
            continue  # the same purchase sent again is already counted
        line = lines[0]
        count = len(buys) + 1
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "count": count, "limit": limit,
                  "month": f"{month // 100}-{month % 100:02d}"}
        rows.sort(key=BY_START)
        evidence = _ledger_evidence_of(cx, rows) + _items_evidence(cx, lines)
        evidence.append(kb_ev("drugs", line.code, f"ingredient={ing}; purchases this month before this one={len(buys)}"))
        hits.append((fields, [ln.lid for ln in lines], sum(ln.amt for ln in lines), evidence))
    return hits


@family(
    "second_line", needs="second_line", params={"lookback_days": int},
    fields=("item", "item_en", "item_code", "first_line", "first_line_en"), windows={"ledger": "lookback_days"},
)
def second_line(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """限二线使用: a second-line drug with no first-line agent in this request, this stay or the
    supply ledger within lookback_days."""
    kb = cx.kb
    classes_now = {ln.row["class"] for ln in cx.items if ln.kind == "drug" and ln.row is not None}
    stay_classes: list[str] = []
    for w in cx.state.get("E", ()):
        if w[E_ENC] == cx.ench:
            stay_classes = w[E_CLASSES]
            break
    hits = []
    for line in cx.items:
        if not line.m & SECOND_LINE:
            continue
        row = line.row
        if row is None or not row.get("second_line"):
            continue
        wanted = row.get("first_line_classes") or []
        if any(c in classes_now or c in stay_classes for c in wanted):
            continue
        found = False
        start, back = line.start, p["lookback_days"]
        for prev in cx.state.get("L", ()):
            group = kb.by_ingredient.get(prev[L_ING])
            if not group or group[0]["class"] not in wanted:
                continue
            # a first-line supply begun on or before the line whose last day is within the look-back
            if _used_within(start, prev[L_START], prev[L_DAYS], back) or (len(prev) > L_PAST and any(
                    _used_within(start, e[F_START], e[F_DAYS], back) for e in prev[L_PAST])):
                found = True
                break
        if found:
            continue
        names = "、".join(f"{kb.by_class[c][0]['class_name']}({c})" for c in wanted)
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "first_line": names,
                  "first_line_en": "ATC " + ", ".join(wanted)}
        evidence = [ev_item(cx, line), kb_ev("drugs", row["code"], "second_line; first_line_classes=" + ",".join(wanted))]
        hits.append((fields, [line.lid], line.amt, evidence))
    return hits


def _used_within(day: int, start: int, days: int, back: int) -> bool:
    """A supply from ``start`` covering ``days`` days (0: unknown, its first day only) was begun on or before
    ``day`` and its last day is less than ``back`` days before it."""
    return start <= day and day - (start + max(days, 1) - 1) < back
