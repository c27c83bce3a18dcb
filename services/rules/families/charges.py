"""Rule families on charges: duplicate (bundled) charges, unbundling, frequency, periods, courses, dates.

Per-stay counts come from the state's open-stay accumulators (E), which only
incremental inpatient events (scenes 4/5) feed; a settlement (8/9) carries the
stay's whole list, so it is judged on its own lines.
"""

from __future__ import annotations

from typing import Any

from services.rules.families import Hit, ev_item, family, kb_ev
from services.rules.kb import tag_bit
from services.rules.state import (
    A_ADM,
    A_DIS,
    A_ENC,
    C_BASE,
    C_FIRST,
    C_KEY,
    C_LAST,
    C_LOG,
    CL_END,
    CL_EVENT,
    CL_INST,
    CL_START,
    E_COUNTERS,
    E_ENC,
    E_LOG,
    I_AMT,
    I_CODE,
    I_QTY,
    I_SPAN,
    I_START,
    K_CODE,
    K_LAST_DAY,
    K_QTY,
    P_AMT,
    P_CODE,
    P_DAY,
    P_ENC,
    P_EVENT,
    P_INST,
    P_QTY,
    S_FROM,
    S_STATUS,
    course_key,
    covered_day,
    qty_on,
    status_on,
    stay_of,
)
from services.rules.timeutil import date_of_day

INCREMENTAL = frozenset({4, 5})
BUNDLED, BUNDLE_PART, FREQUENCY = tag_bit("bundled"), tag_bit("bundle_part"), tag_bit("frequency")
PERIOD, COURSE = tag_bit("period"), tag_bit("course")


def stay_work(cx: Any) -> list[Any] | None:
    """The open-stay accumulator row of this encounter (prior state), or None."""
    if cx.enc_type != "inpatient" or cx.scene not in INCREMENTAL:
        return None
    for w in cx.state.get("E", ()):
        if w[E_ENC] == cx.ench:
            return w
    return None


def _counters(work: list[Any] | None) -> dict[str, list[Any]]:
    """code → its counter in the open-stay accumulator (the first one, as _counter finds)."""
    out: dict[str, list[Any]] = {}
    if work is not None:
        for c in work[E_COUNTERS]:
            if c[K_CODE] not in out:
                out[c[K_CODE]] = c
    return out


def _counter(work: list[Any] | None, code: str) -> list[Any] | None:
    if work is None:
        return None
    for c in work[E_COUNTERS]:
        if c[K_CODE] == code:
            return c
    return None


def stay_adm_day(cx: Any) -> int:
    """The admission day the open-stay day masks count from (the stay's ``A`` row; else the event's)."""
    stay = stay_of(cx.state, cx.ench)
    if stay is not None:
        return stay[A_ADM]
    return cx.adm_day if cx.adm_day is not None else cx.day


def earlier_charges(cx: Any, code: str, day: int, qty: float, work: list[Any] | None = None) -> list[dict[str, Any]]:
    """Evidence of the stay's earlier charges of ``code`` on ``day`` (``qty`` of them, ``qty_on``):
    one entry per event of the open-stay log whose lines cover the day, with the day's quantity and
    amount (a multi-day line: one unit and its amount per day; 可追溯); what the log no longer holds
    (folded into its base, or a row written before the log) as one entry without event id."""
    row = cx.kb.services.get(code, day)
    name = row["name"] if row else code
    out = []
    left = qty
    if work is not None and len(work) > E_LOG:
        for entry in work[E_LOG]:
            q = amount = 0.0
            for it in entry[1:]:
                if it[I_CODE] == code and it[I_START] <= day < it[I_START] + it[I_SPAN]:
                    if it[I_SPAN] == 1:
                        q += it[I_QTY]
                        amount += it[I_AMT]
                    else:
                        q += 1.0
                        amount += it[I_AMT] / it[I_SPAN]
            if q:
                left -= q
                out.append({"kind": "event", "event_id": entry[0], "institution_id": cx.inst, "date": date_of_day(day),
                            "item_code": code, "item_name": name, "quantity": q, "days_supply": None,
                            "amount": round(amount, 2)})
    if left > 1e-9 or not out:
        out.append({"kind": "event", "event_id": None, "institution_id": cx.inst, "date": date_of_day(day),
                    "item_code": code, "item_name": name, "quantity": left if out else qty, "days_supply": None,
                    "amount": None})
    return out


def _bundled_hit(cx: Any, hits: list[Hit], dup: Any, parent_name: str, parent_code: str, child_code: str,
                 evidence: list[dict[str, Any]], day: int | None = None, amount: float | None = None) -> None:
    """``day``: the first day both are charged (a multi-day line's own start by default); ``amount``: the
    charge of the days they overlap (the whole line by default)."""
    day = dup.start if day is None else day
    evidence.append(kb_ev("services", parent_code, f"includes {child_code}"))
    child = dup.row if child_code == dup.code else cx.kb.services.get(child_code, day)
    parent = cx.kb.services.get(parent_code, day)
    fields = {"item": dup.name if child_code == dup.code else child["name"], "item_en": child["name_en"] if child else child_code,
              "item_code": child_code, "bundle": parent_name, "bundle_en": parent["name_en"] if parent else parent_code,
              "bundle_code": parent_code, "date": date_of_day(day)}
    hits.append((fields, [dup.lid], dup.amt if amount is None else amount, evidence))


def _overlap(a: Any, b: Any) -> tuple[int, int]:
    """First day and number of days two lines both cover (a per-day line of quantity n covers n days)."""
    lo = max(a.start, b.start)
    return lo, min(a.start + a.span, b.start + b.span) - lo


def _children(here: dict[tuple[str, int], Any], code: str, start: int, span: int) -> dict[int, Any]:
    """The request's lines of ``code`` on the days from ``start`` (``span`` days), by id. (A module
    function: as a comprehension in ``bundled`` it would make cells of its locals on every call.)"""
    out = {}
    for day in range(start, start + span):
        c = here.get((code, day))
        if c is not None:
            out[id(c)] = c
    return out


@family("bundled", needs="bundled", params={}, fields=("item", "item_en", "item_code", "bundle", "bundle_en", "bundle_code", "date"))
def bundled(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """重复收费: an item charged on the same day as an item whose content already includes it
    (both in this request, or the other one earlier the same day of this stay)."""
    lines = [ln for ln in cx.items if ln.m & BUNDLED]
    if not lines:
        return []
    work = stay_work(cx)
    adm = stay_adm_day(cx) if work is not None else 0
    # every day a line covers (a per-day item of quantity n, e.g. 3 days of special care, covers n days)
    here: dict[tuple[str, int], Any] = {}
    multi = False
    for ln in lines:
        if ln.span == 1:
            here[(ln.code, ln.start)] = ln
        else:
            multi = True
            for day in range(ln.start, ln.start + ln.span):
                here[(ln.code, day)] = ln
    included_by = cx.kb.included_by
    hits: list[Hit] = []
    for ln in lines:
        for code in ln.row.get("includes") or ():          # ln is the bundle
            if not multi:
                child = here.get((code, ln.start))
                if child is not None:
                    _bundled_hit(cx, hits, child, ln.name, ln.code, code, [ev_item(cx, child), ev_item(cx, ln)])
                    continue
            else:
                children = _children(here, code, ln.start, ln.span)
                if children:
                    for child in children.values():
                        first, days = _overlap(child, ln)
                        amount = child.amt if child.span == 1 else child.amt * days / child.span
                        _bundled_hit(cx, hits, child, ln.name, ln.code, code,
                                     [ev_item(cx, child, date=date_of_day(first)), ev_item(cx, ln, date=date_of_day(first))],
                                     first, amount)
                    continue
            if work is not None:  # every day an earlier line of the stay covers (its day mask)
                c = _counter(work, code)
                if c is not None and ln.start <= c[K_LAST_DAY] and (on := covered_day(c, ln.start, ln.span, adm)) is not None:
                    _bundled_hit(cx, hits, ln, ln.name, ln.code, code,
                                 [ev_item(cx, ln), *earlier_charges(cx, code, on, qty_on(work, c, on, adm), work)], on)
        if work is None:
            continue
        for parent in included_by.get(ln.code, ()):  # ln is included in an earlier bundle
            if _children(here, parent, ln.start, ln.span):
                continue
            c = _counter(work, parent)
            if c is not None and ln.start <= c[K_LAST_DAY] and (on := covered_day(c, ln.start, ln.span, adm)) is not None:
                earlier = earlier_charges(cx, parent, on, qty_on(work, c, on, adm), work)
                _bundled_hit(cx, hits, ln, earlier[0]["item_name"], parent, ln.code, [ev_item(cx, ln), *earlier], on)
    return hits


@family("bundle", needs="bundle_part", params={}, fields=("bundle", "bundle_en", "bundle_code", "items", "items_en", "count"))
def bundle(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """分解收费: the components of a bundle charged separately on one service day (at least min_components of
    them), in this request or, for an open stay (scenes 4/5), with the stay's earlier charges of that day."""
    parts = [ln for ln in cx.items if ln.m & BUNDLE_PART]
    if not parts:
        return []
    work = stay_work(cx)
    if len(parts) < 2 and work is None:
        return []
    # service day → code → line (every day a line covers), and the codes charged on each day
    by_day: dict[int, dict[str, Any]] = {}
    for ln in parts:
        for d in range(ln.start, ln.start + ln.span):
            by_day.setdefault(d, {}).setdefault(ln.code, ln)
    present: dict[int, set[str]] = {}
    for ln in cx.items:
        for d in range(ln.start, ln.start + ln.span):
            if d in by_day:
                present.setdefault(d, set()).add(ln.code)
    counters = _counters(work)
    adm = stay_adm_day(cx) if counters else 0
    hits = []
    for day, codes in sorted(by_day.items()):
        if len(codes) < 2 and not counters:
            continue
        here = present[day]

        def earlier(code: str, day: int = day) -> list[Any] | None:
            """The stay's counter of ``code`` if an earlier line charges it on ``day`` (components are tracked codes)."""
            c = counters.get(code)
            return c if c is not None and day <= c[K_LAST_DAY] and covered_day(c, day, 1, adm) == day else None

        for b in cx.kb.bundles:
            if not b["_from"] <= day <= b["_to"] or b["code"] in here:
                continue
            mine = [codes[c] for c in b["components"] if c in codes]
            if not mine or (len(mine) < b["min_components"] and not counters):
                continue
            prior = [(c, k) for c in b["components"] if c not in codes and (k := earlier(c)) is not None] if counters else []
            if len(mine) + len(prior) < b["min_components"] or (counters and earlier(b["code"]) is not None):
                continue
            evidence = [ev_item(cx, ln, date=date_of_day(day)) for ln in mine]
            names, names_en = [ln.name for ln in mine], [ln.name_en for ln in mine]
            for c, k in prior:
                found = earlier_charges(cx, c, day, qty_on(work or [], k, day, adm), work)
                names.append(found[0]["item_name"])
                row = cx.kb.services.get(c, day)
                names_en.append(row["name_en"] if row else c)
                evidence.extend(found)
            fields = {"bundle": b["name"], "bundle_en": b["name_en"], "bundle_code": b["code"], "items": "、".join(names),
                      "items_en": ", ".join(names_en), "count": len(names)}
            evidence.append(kb_ev("services", b["code"], f"components={','.join(b['components'])}; min_components={b['min_components']}"))
            hits.append((fields, [ln.lid for ln in mine], sum(ln.amt for ln in mine), evidence))
    return hits


@family("frequency", needs="frequency", params={}, fields=("item", "item_en", "item_code", "qty", "limit", "per_zh", "per_en"))
def frequency(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """限定频次: units per day or per encounter above the item's limit."""
    lines = [ln for ln in cx.items if ln.m & FREQUENCY]
    if not lines:
        return []
    work = stay_work(cx)
    counters = _counters(work)
    # Fast path (most events): single-day lines, one per code and day, each within the day's limit
    # with nothing earlier of the stay on its day, and each code's lines within the encounter's
    # limit with what the stay already counted: no hit. Anything else takes the general count below.
    # A daily posting comes after the code's last day: nothing earlier covers it (no day mask to read).
    seen: set[tuple[str, int]] = set()
    enc_sum: dict[str, float] = {}  # code → its lines' quantity so far (in line order, as enc_qty below)
    for ln in lines:
        qty, row, code, start = ln.qty, ln.row, ln.code, ln.start
        if ln.span != 1 or (code, start) in seen:
            break
        c = counters.get(code)
        limit = row.get("max_per_day")
        if limit and (qty > limit or (c is not None and start <= c[K_LAST_DAY])):
            break  # over the limit alone, or an earlier line of the stay may cover the day: counted below
        limit = row.get("max_per_enc")
        if limit:
            total = enc_sum[code] = enc_sum.get(code, 0.0) + qty
            if total + (c[K_QTY] if c is not None else 0.0) > limit:
                break
        seen.add((code, start))
    else:
        return []
    adm = stay_adm_day(cx) if work is not None else 0
    day_qty: dict[tuple[str, int], float] = {}
    enc_qty: dict[str, float] = {}
    first: dict[tuple[str, int], Any] = {}
    for ln in lines:
        per_day = ln.qty if ln.span == 1 else 1.0
        for day in range(ln.start, ln.start + ln.span):
            key = (ln.code, day)
            day_qty[key] = day_qty.get(key, 0.0) + per_day
            first.setdefault(key, ln)
        enc_qty[ln.code] = enc_qty.get(ln.code, 0.0) + ln.qty
    hits = []
    done: set[str] = set()
    for (code, day), qty in day_qty.items():
        ln = first[(code, day)]
        row = ln.row
        c = counters.get(code)
        limit = row.get("max_per_day")
        before = qty_on(work, c, day, adm) if c is not None and work is not None else 0.0
        total = qty + before
        if limit and total > limit:
            evidence = [ev_item(cx, ln, date=date_of_day(day))]
            if before:
                evidence += earlier_charges(cx, code, day, before, work)
            evidence.append(kb_ev("services", row["code"], f"max_per_day={limit:g}"))
            fields = {"item": ln.name, "item_en": ln.name_en, "item_code": code, "qty": f"{total:g}", "limit": f"{limit:g}",
                      "per_zh": f"{date_of_day(day)}当日", "per_en": f"on {date_of_day(day)}"}
            unit = ln.amt / ln.qty if ln.qty else 0.0
            hits.append((fields, [ln.lid], unit * (total - limit), evidence))
            done.add(code)
            continue
        limit = row.get("max_per_enc")
        if limit and code not in done:
            total = enc_qty[code] + (c[K_QTY] if c is not None else 0.0)
            if total > limit:
                done.add(code)
                evidence = [ev_item(cx, ln, date=date_of_day(day)),
                            kb_ev("services", row["code"], f"max_per_enc={limit:g}")]
                fields = {"item": ln.name, "item_en": ln.name_en, "item_code": code, "qty": f"{total:g}", "limit": f"{limit:g}",
                          "per_zh": "本次就诊", "per_en": "in this encounter"}
                unit = ln.amt / ln.qty if ln.qty else 0.0
                hits.append((fields, [ln.lid], unit * (total - limit), evidence))
    return hits


@family(
    "period", needs="period", params={"window_days": int},
    fields=("item", "item_en", "item_code", "count", "limit", "days"), windows={},
)
def period(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """周期超频次: more than N units of an item within its period (KB period_limit), across encounters."""
    rows = cx.state.get("P", ())
    hits = []
    seen: set[str] = set()
    for ln in cx.items:
        if not ln.m & PERIOD:
            continue
        row = ln.row
        if row is None or not row.get("period_limit") or ln.code in seen:
            continue
        seen.add(ln.code)
        days, limit = row["period_limit"]["days"], row["period_limit"]["max"]
        days = min(days, p["window_days"])
        count, prior = _period_count(rows, cx.items, ln.code, ln.start, days, cx.ench)
        if count <= limit:
            continue
        evidence = _period_evidence(prior, row["name"])
        evidence.append(ev_item(cx, ln))
        evidence.append(kb_ev("services", row["code"], f"period_limit={limit} per {row['period_limit']['days']} days"))
        fields = {"item": ln.name, "item_en": ln.name_en, "item_code": ln.code, "count": f"{count:g}", "limit": limit, "days": days}
        hits.append((fields, [ln.lid], ln.amt, evidence))
    return hits


def _period_count(rows: Any, items: list[Any], code: str, start: int, days: int, ench: int) -> tuple[float, list[Any]]:
    """(the most units of ``code`` within one period that contains ``start``, the earlier records
    counted in it). Every earlier record of the code within a period of the line, before or after
    it, counts (a line reported late, an event that arrives after later ones, counts with what came
    after); a record of this encounter on the line's day is the line itself re-sent. Loops, not
    comprehensions: they would make cells of this function's locals on every call (notes in
    docs/rules.md)."""
    near = []
    later = False
    for r in rows:
        if r[P_CODE] == code:
            d = r[P_DAY]
            if -days < d - start < days and not (r[P_ENC] == ench and d == start):
                near.append(r)
                if d > start:
                    later = True
    mine = []
    for x in items:
        if x.code == code:
            d = x.start
            if -days < d - start < days:
                mine.append((d, x.qty))
                if d > start:
                    later = True
    if not later:  # everything is on or before the line's day: the period ending on it holds it all
        return sum(r[P_QTY] for r in near) + sum(q for _, q in mine), near
    return _busiest(near, mine, start, days)


def _busiest(near: list[Any], mine: list[tuple[int, float]], start: int, days: int) -> tuple[float, list[Any]]:
    """The busiest period [lo, lo + days) that contains ``start`` (lo from start - days + 1 to
    start): a period starting at a record's day (or the earliest possible) is always among the best."""
    count = -1.0
    prior: list[Any] = []
    for lo in sorted({start - days + 1, *(r[P_DAY] for r in near if r[P_DAY] <= start),
                      *(d for d, _ in mine if d <= start)}):
        hi = lo + days
        inside = [r for r in near if lo <= r[P_DAY] < hi]
        total = sum(r[P_QTY] for r in inside) + sum(q for d, q in mine if lo <= d < hi)
        if total > count:
            count, prior = total, inside
    return count, prior


def _period_evidence(prior: list[Any], name: str) -> list[dict[str, Any]]:
    return [{"kind": "event", "event_id": r[P_EVENT] if len(r) > P_EVENT else None,
             "institution_id": r[P_INST], "date": date_of_day(r[P_DAY]),
             "item_code": r[P_CODE], "item_name": name, "quantity": r[P_QTY], "days_supply": None,
             "amount": r[P_AMT] if len(r) > P_AMT else None}
            for r in sorted(prior, key=_p_day)]


def _p_day(r: list[Any]) -> int:
    return r[P_DAY]


@family(
    "course", needs="course", params={"gap_days": int},
    fields=("item", "item_en", "item_code", "days", "limit", "first_date"), windows={"course_gap": "gap_days"},
)
def course(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """限支付疗程: days since the course's first use (a gap > gap_days starts a new course) above the limit.
    The course runs through the earlier events (the state's ``C`` rows) and the request's own earlier lines
    (by service date: a settlement carrying one line a day is judged day by day)."""
    rows = cx.state.get("C", ())
    gap = p["gap_days"]
    lines = [ln for ln in cx.items if ln.m & COURSE and ln.row is not None and ln.row.get("course_days")]
    if len(lines) > 1:
        lines.sort(key=lambda ln: ln.start)
    hits = []
    # key → [first_day, last_day, state row or None, the request's first line of the course or None]
    cur: dict[str, list[Any]] = {}
    for ln in lines:
        row = ln.row
        key = course_key(ln)
        end = ln.start + max(1, ln.ds or 1) - 1
        c = cur.get(key)
        if c is None:
            for r in rows:
                if r[C_KEY] == key:
                    c = [r[C_FIRST], r[C_LAST], r, None]
                    break
        if c is not None and ln.start - c[1] <= gap:
            if ln.start < c[0]:
                c[0], c[3] = ln.start, ln
            c[1] = max(c[1], end)
        else:  # a new course
            c = [ln.start, end, None, ln]
        cur[key] = c
        first = c[0]
        days = end - first + 1
        limit = row["course_days"]
        if days <= limit:
            continue
        fields = {"item": ln.name, "item_en": ln.name_en, "item_code": ln.code, "days": days, "limit": limit, "first_date": date_of_day(first)}
        evidence = _course_events(c[2], ln) if c[2] is not None else []
        if c[3] is not None and c[3] is not ln:
            evidence.append(ev_item(cx, c[3]))
        evidence.append(ev_item(cx, ln))
        evidence.append(kb_ev("drugs" if ln.kind in ("drug", "herb") else "services", row["code"], f"course_days={limit}"))
        hits.append((fields, [ln.lid], ln.amt, evidence))
    return hits


def _course_events(r: list[Any], ln: Any) -> list[dict[str, Any]]:
    """Evidence of the earlier events of a course row (可追溯): its log entries (event id, institution, first
    day, days), and what folded into its base (no event id). Quantity and amount are not kept (null)."""
    out = []
    log = r[C_LOG] if len(r) > C_LOG else ()
    if len(r) > C_BASE and r[C_BASE] and (not log or r[C_BASE][0] < min(e[CL_START] for e in log)):
        first, last = r[C_BASE]
        out.append({"kind": "event", "event_id": None, "institution_id": None, "date": date_of_day(first),
                    "item_code": ln.code, "item_name": ln.name, "quantity": None, "days_supply": last - first + 1, "amount": None})
    elif not log:  # a row written before the log
        out.append({"kind": "event", "event_id": None, "institution_id": None, "date": date_of_day(r[C_FIRST]),
                    "item_code": ln.code, "item_name": ln.name, "quantity": None,
                    "days_supply": r[C_LAST] - r[C_FIRST] + 1, "amount": None})
    for e in sorted(log, key=lambda e: e[CL_START]):
        out.append({"kind": "event", "event_id": e[CL_EVENT], "institution_id": e[CL_INST] if len(e) > CL_INST else None,
                    "date": date_of_day(e[CL_START]), "item_code": ln.code, "item_name": ln.name, "quantity": None,
                    "days_supply": e[CL_END] - e[CL_START] + 1, "amount": None})
    return out


@family("charge_dates", needs=("inpatient",), params={}, fields=("item", "item_en", "item_code", "date", "why_zh", "why_en"))
def charge_dates(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """计费日期与住院时间不符: a line dated before admission, after discharge, or after the patient's death."""
    if cx.enc_type != "inpatient" or not cx.items:
        return []
    adm = cx.adm_day
    dis = cx.dis_day
    for stay in cx.state.get("A", ()):
        if stay[A_ENC] == cx.ench:
            adm = stay[A_ADM] if adm is None else adm
            dis = stay[A_DIS] if dis is None else dis
            break
    death = None
    for r in cx.state.get("S", ()):
        if r[S_STATUS] == "deceased":
            s = status_on(cx.state, r[S_FROM])
            if s is not None and s[S_STATUS] == "deceased":
                death = r[S_FROM] if death is None else min(death, r[S_FROM])
    hits = []
    for ln in cx.items:
        d = ln.start
        if death is not None and d + ln.span - 1 > death:
            amount = ln.amt
            if d <= death:  # a per-day line running past the day of death: its days after it
                amount = ln.amt * (d + ln.span - 1 - death) / ln.span
                d = death + 1
            why_zh, why_en = f"晚于参保人死亡日期{date_of_day(death)}", f"after the patient's death on {date_of_day(death)}"
        elif adm is not None and d < adm:
            amount = ln.amt
            if d + ln.span - 1 >= adm:  # a per-day line running into the stay: its days before admission
                amount = ln.amt * (adm - d) / ln.span
            why_zh, why_en = f"早于入院日期{date_of_day(adm)}", f"before admission on {date_of_day(adm)}"
        elif dis is not None and d + ln.span - 1 > dis:
            amount = ln.amt
            if d <= dis:  # a per-day line running past the discharge day: its days after it
                amount = ln.amt * (d + ln.span - 1 - dis) / ln.span
                d = dis + 1
            why_zh, why_en = f"晚于出院日期{date_of_day(dis)}", f"after discharge on {date_of_day(dis)}"
        else:
            continue
        fields = {"item": ln.name, "item_en": ln.name_en, "item_code": ln.code, "date": date_of_day(d), "why_zh": why_zh, "why_en": why_en}
        hits.append((fields, [ln.lid], amount, [ev_item(cx, ln, date=date_of_day(d))]))
    return hits
