"""Rule families on inpatient stays: split/frequent/re-admission, length of stay, idle stays."""

from __future__ import annotations

from typing import Any

from services.rules.families import Hit, ev_item, family, kb_ev
from services.rules.families.charges import earlier_charges, stay_adm_day
from services.rules.kb import tag_bit
from services.rules.state import (
    A_ADM,
    A_DIS,
    A_DX,
    A_ENC,
    A_EVENT,
    A_INST,
    E_ACTIVE,
    E_AMOUNT,
    E_CHARGED,
    E_COUNTERS,
    E_ENC,
    E_EXAM,
    K_CODE,
    K_DAYS,
    K_LAST_DAY,
    K_QTY,
    MASK_DAYS,
    day_bits,
    qty_on,
    span_bits,
    treated_span,
)
from services.rules.timeutil import date_of_day


def stay_dx(cx: Any) -> str | None:
    """Main diagnosis of the current stay: this event's, else the one recorded at admission."""
    if cx.main_dx is not None:
        return cx.main_dx.code
    for stay in cx.state.get("A", ()):
        if stay[A_ENC] == cx.ench:
            return stay[A_DX]
    return None


def stay_adm(cx: Any) -> int:
    if cx.adm_day is not None:
        return cx.adm_day
    for stay in cx.state.get("A", ()):
        if stay[A_ENC] == cx.ench:
            return stay[A_ADM]
    return cx.day


def related(cx: Any, a: str, b: str) -> tuple[str, str] | None:
    """Why two diagnoses are related, in Chinese and English ('同一类目N18' / 'category N18'), or None."""
    if a[:3] == b[:3]:
        return f"同一类目{a[:3]}", f"category {a[:3]}"
    ra, rb = cx.kb_dx(a), cx.kb_dx(b)
    if ra is not None and rb is not None and ra.get("group") and ra.get("group") == rb.get("group"):
        return f"同一相关病种组{ra['group']}", f"group {ra['group']}"
    return None


def stay_evidence(cx: Any, stay: list[Any]) -> dict[str, Any]:
    row = cx.kb_dx(stay[A_DX]) if stay[A_DX] else None
    return {
        "kind": "event", "event_id": stay[A_EVENT], "institution_id": stay[A_INST],
        "date": date_of_day(stay[A_DIS] if stay[A_DIS] is not None else stay[A_ADM]),
        "admitted_on": date_of_day(stay[A_ADM]),
        "discharged_on": date_of_day(stay[A_DIS]) if stay[A_DIS] is not None else None,
        "diagnosis_code": stay[A_DX], "diagnosis_name": row["name"] if row else stay[A_DX], "amount": None,
    }


@family(
    "split_admission", needs=("inpatient", "A"),
    params={"gap_days": int, "window_days": int, "same_institution": bool, "exempt_prefixes": list},
    fields=("prev_inst", "prev_dis_date", "gap", "prev_dx", "prev_dx_name", "prev_dx_name_en", "dx", "dx_name", "dx_name_en",
            "why", "why_en"),
    windows={"discharges": "window_days"},
)
def split_admission(cx: Any, p: dict[str, Any]) -> list[Hit]:
    stays = cx.state.get("A")
    if not stays or cx.enc_type != "inpatient":
        return []
    dx = stay_dx(cx)
    if dx is None or dx.startswith(tuple(p["exempt_prefixes"])):
        return []
    adm = stay_adm(cx)
    hits: list[Hit] = []
    for stay in stays:
        dis = stay[A_DIS]
        if dis is None or stay[A_ENC] == cx.ench or stay[A_DX] is None:
            continue
        if p["same_institution"] and stay[A_INST] != cx.inst:
            continue
        gap = adm - dis
        if not 0 <= gap <= p["gap_days"] or gap > p["window_days"]:
            continue
        why = related(cx, stay[A_DX], dx)
        if why is None:
            continue
        ev = stay_evidence(cx, stay)
        row = cx.kb_dx(dx)
        prev_row = cx.kb_dx(stay[A_DX])
        fields = {
            "prev_inst": stay[A_INST], "prev_dis_date": ev["discharged_on"], "gap": gap,
            "prev_dx": stay[A_DX], "prev_dx_name": ev["diagnosis_name"], "prev_dx_name_en": prev_row["name_en"] if prev_row else stay[A_DX],
            "dx": dx, "dx_name": row["name"] if row else dx, "dx_name_en": row["name_en"] if row else dx, "why": why[0], "why_en": why[1],
        }
        amount = cx.total if cx.scene in (8, 9) else 0.0
        hits.append((fields, [], amount, [ev, kb_ev("diagnoses", dx, f"related to {stay[A_DX]}: {why[1]}")]))
    return hits


def first_sight(cx: Any) -> bool:
    """Whether this event judges the stay's admission: the admission itself (scene 3), or the first event
    of a stay the state has not recorded yet — a hospital that sends no admission event (an order, scene 4,
    or only the settlement, 8/9). A stay already recorded was judged when it was first seen."""
    if cx.scene == 3:
        return True
    ench = cx.ench
    for s in cx.state.get("A", ()):  # (a loop: a generator would make ``ench`` a cell)
        if s[A_ENC] == ench:
            return False
    return True


@family(
    "frequent_admission", needs=("inpatient", "A"),
    params={"window_days": int, "max_admissions": int, "exempt_prefixes": list},
    fields=("count", "days", "dates", "dates_en"), windows={"stays": "window_days"},
)
def frequent_admission(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """频繁住院: this admission makes max_admissions or more within window_days; planned cycles
    (main diagnosis Z51.0 radiotherapy, Z51.1 chemotherapy, Z49 dialysis) neither count nor fire."""
    if cx.enc_type != "inpatient" or not first_sight(cx):
        return []
    exempt = tuple(p["exempt_prefixes"])
    dx = stay_dx(cx)
    if dx and dx.startswith(exempt):
        return []
    adm = stay_adm(cx)
    prior = [s for s in cx.state.get("A", ()) if s[A_ENC] != cx.ench and 0 <= adm - s[A_ADM] < p["window_days"]
             and not (s[A_DX] and s[A_DX].startswith(exempt))]
    count = len(prior) + 1
    if count < p["max_admissions"]:
        return []
    prior.sort(key=lambda s: s[A_ADM])
    fields = {"count": count, "days": p["window_days"], "dates": "、".join(f"{date_of_day(s[A_ADM])}({s[A_INST]})" for s in prior),
              "dates_en": ", ".join(f"{date_of_day(s[A_ADM])} ({s[A_INST]})" for s in prior)}
    return [(fields, [], 0.0, [stay_evidence(cx, s) for s in prior])]


@family(
    "readmission", needs=("inpatient", "A"), params={"window_days": int, "exempt_prefixes": list},
    fields=("prev_inst", "prev_dis_date", "gap", "prev_dx", "dx"), windows={"discharges": "window_days"},
)
def readmission(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """非计划再入院: an admission within window_days of any discharge (any institution); planned cycles exempt."""
    if cx.enc_type != "inpatient" or not first_sight(cx):
        return []
    dx = stay_dx(cx) or ""
    if dx and dx.startswith(tuple(p["exempt_prefixes"])):
        return []
    adm = stay_adm(cx)
    best = None
    for s in cx.state.get("A", ()):
        if s[A_DIS] is None or s[A_ENC] == cx.ench:
            continue
        gap = adm - s[A_DIS]
        if 0 <= gap <= p["window_days"] and (best is None or s[A_DIS] > best[A_DIS]):
            best = s
    if best is None:
        return []
    fields = {"prev_inst": best[A_INST], "prev_dis_date": date_of_day(best[A_DIS]), "gap": adm - best[A_DIS],
              "prev_dx": best[A_DX] or "-", "dx": dx or "-"}
    return [(fields, [], 0.0, [stay_evidence(cx, best)])]


def _stay_days(cx: Any) -> tuple[int, int]:
    adm = stay_adm(cx)
    end = cx.dis_day
    if end is None:
        for s in cx.state.get("A", ()):
            if s[A_ENC] == cx.ench and s[A_DIS] is not None:
                end = s[A_DIS]
    return adm, (end if end is not None else cx.day)


@family(
    "long_stay", needs=("inpatient",), params={"factor": float, "default_ref_los": int},
    fields=("los", "ref", "factor", "dx", "dx_name", "dx_name_en"),
)
def long_stay(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """住院天数异常: length of stay above factor × the reference LOS of the main diagnosis."""
    if cx.enc_type != "inpatient":
        return []
    adm, end = _stay_days(cx)
    los = end - adm
    dx = stay_dx(cx)
    row = cx.kb_dx(dx) if dx else None
    ref = row.get("ref_los") if row is not None and row.get("ref_los") else p["default_ref_los"]
    if los <= p["factor"] * ref:
        return []
    fields = {"los": los, "ref": ref, "factor": f"{p['factor']:g}", "dx": dx or "-", "dx_name": row["name"] if row else "-",
              "dx_name_en": row["name_en"] if row else "-"}
    evidence = [kb_ev("diagnoses", row["code"], f"ref_los={ref}")] if row is not None else []
    return [(fields, [], cx.total, evidence)]


@family(
    "low_acuity", needs=("inpatient",), params={"max_los": int, "exam_share": float, "exam_categories": list},
    fields=("los", "share", "limit"), state_params=("exam_categories",),
)
def low_acuity(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """无指征住院(低标准入院): a short stay whose charges are mostly examinations."""
    if cx.enc_type != "inpatient":
        return []
    adm, end = _stay_days(cx)
    los = end - adm
    if los > p["max_los"]:
        return []
    total = exam = 0.0
    exam_lines = []
    categories = p["exam_categories"]  # the state's E_EXAM accumulates the same (a state parameter)
    for ln in cx.items:
        total += ln.amt
        if ln.kind == "service" and ln.row is not None and ln.row["category"] in categories:
            exam += ln.amt
            exam_lines.append(ln)
    if not cx.items:
        for w in cx.state.get("E", ()):
            if w[E_ENC] == cx.ench:
                total, exam = w[E_AMOUNT], w[E_EXAM]
    if total <= 0 or exam / total <= p["exam_share"]:
        return []
    fields = {"los": los, "share": f"{exam / total:.0%}", "limit": f"{p['exam_share']:.0%}"}
    evidence = []
    for ln in exam_lines:  # (a loop: a comprehension would make ``cx`` a cell of low_acuity)
        evidence.append(ev_item(cx, ln))
    return [(fields, [ln.lid for ln in exam_lines], total, evidence)]


@family("idle_stay", needs=("inpatient",), params={"min_days": int, "passive_categories": list},
        fields=("days", "first", "last"), state_params=("passive_categories",))
def idle_stay(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """挂床住院: min_days or more consecutive charged stay days with only bed/nursing/consultation charges
    (a day with no charge at all is unknown and breaks the run)."""
    if cx.enc_type != "inpatient" or not cx.items:
        return []
    adm = stay_adm(cx)
    charged = active = 0
    for w in cx.state.get("E", ()):
        if w[E_ENC] == cx.ench:
            charged, active = w[E_CHARGED], w[E_ACTIVE]
    if cx.scene in (8, 9):
        charged = active = 0  # the settlement carries the whole stay
    passive = p["passive_categories"]  # the state's E_ACTIVE mask uses the same (a state parameter)
    for ln in cx.items:
        span = ln.span
        if ln.ds is not None and ln.ds > span:  # a drug given for days is treatment each of them
            span = treated_span(ln)
        if span == 1:  # span_bits(ln.start, 1, adm), inline for the common one-day line
            off = ln.start - adm
            bits = 1 << off if 0 <= off < MASK_DAYS else 0
        else:
            bits = span_bits(ln.start, span, adm)
        charged |= bits
        if ln.kind != "service" or ln.row is None or ln.row["category"] not in passive:
            active |= bits
    idle = charged & ~active  # days charged, with bed/nursing/consultation charges only
    if not idle:
        return []
    # The longest run of set bits (the first one when several are as long): after k
    # steps of run &= run >> 1, bit i is set iff bits i .. i+k of idle all are.
    best = 0
    run = idle
    while run:
        last = run
        run &= run >> 1
        best += 1
    if best < p["min_days"]:
        return []
    best_end = (last & -last).bit_length() - 1 + best - 1
    first = adm + best_end - best + 1
    fields = {"days": best, "first": date_of_day(first), "last": date_of_day(adm + best_end)}
    return [_idle_hit(cx, fields, first, adm + best_end)]


def _idle_hit(cx: Any, fields: dict[str, Any], first: int, last: int) -> Hit:
    """idle_stay's alert: the request's lines within its idle days ``first``..``last``. (A module
    function: comprehensions in idle_stay would make its locals cells, built on every call.)"""
    lines = [ln for ln in cx.items if ln.start <= last and ln.start + ln.span - 1 >= first]
    return (fields, [ln.lid for ln in lines], sum(ln.amt for ln in lines), [ev_item(cx, ln, date=date_of_day(ln.start)) for ln in lines])


@family(
    "during_stay", needs=("A",), params={"max_open_days": int, "encounter_types": list},
    fields=("inst", "adm_date", "where_zh", "where_en"), windows={"open_stay": "max_open_days"},
)
def during_stay(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """住院期间门诊/购药 (R35): an outpatient or pharmacy claim dated inside a stay at any institution
    (at the admitting one: 转嫁费用; its admission day is excluded there, an emergency visit often
    precedes the admission). 住院期间再次入院 (R41, encounter_types inpatient): a new admission dated
    inside another stay that is still open or not yet discharged on that day."""
    enc_type = cx.enc_type
    if enc_type not in p["encounter_types"]:
        return []
    if enc_type == "inpatient":
        if cx.scene != 3 and cx.adm_day is None:
            return []
        day = stay_adm(cx)
    else:
        day = cx.day
    for s in cx.state.get("A", ()):
        if s[A_ENC] == cx.ench or s[A_ADM] > day:
            continue
        if s[A_INST] == cx.inst and s[A_ADM] == day:
            continue
        if s[A_DIS] is None:
            inside = day - s[A_ADM] <= p["max_open_days"]
        else:  # a transfer or a visit on the discharge day is fine
            inside = s[A_ADM] <= day < s[A_DIS] if enc_type == "inpatient" else s[A_ADM] < day < s[A_DIS]
        if inside:
            same = s[A_INST] == cx.inst
            fields = {"inst": s[A_INST], "adm_date": date_of_day(s[A_ADM]),
                      "where_zh": "本机构" if same else f"{s[A_INST]}", "where_en": "this institution" if same else s[A_INST]}
            return [(fields, [ln.lid for ln in cx.items], cx.total, [stay_evidence(cx, s)])]
    if enc_type == "inpatient" and cx.scene in (8, 9):
        # The overlap learnt at settlement: another admission (at any institution) dated inside this stay,
        # recorded before it was settled — e.g. a hospital that sends no admission event settles a stay
        # during which the patient was admitted elsewhere. This stay is the one not yet discharged then.
        # A transfer admitted on this stay's discharge day is fine.
        end = cx.dis_day
        if end is None:
            for s in cx.state.get("A", ()):
                if s[A_ENC] == cx.ench and s[A_DIS] is not None:
                    end = s[A_DIS]
        last = end - 1 if end is not None else cx.day
        for s in cx.state.get("A", ()):
            if s[A_ENC] != cx.ench and day < s[A_ADM] <= last:
                fields = {"inst": cx.inst, "adm_date": date_of_day(day), "where_zh": "本机构", "where_en": "this institution"}
                return [(fields, [ln.lid for ln in cx.items], cx.total, [stay_evidence(cx, s)])]
    return []


BED = tag_bit("bed")


@family(
    "bed_days", needs=("inpatient", "bed"), params={"exempt_codes": list},
    fields=("what_zh", "what_en"),
)
def bed_days(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """床位费: more than one bed fee on one day across all bed types, or more bed days than nights
    of the stay (计入不计出: the admission day counts, the discharge day does not; a same-day stay
    counts one). At order time (scenes 4/5) the stay's earlier bed charges (the open-stay
    counters) count too, and the days so far bound the bed days."""
    exempt = p["exempt_codes"]
    # (Loops and module functions, not comprehensions: those would make cells of this function's
    # locals, built on every call.)
    beds = []
    for ln in cx.items:
        if ln.m & BED and ln.code not in exempt:
            beds.append(ln)
    if not beds:
        return []
    work = None
    if cx.scene in (4, 5):
        for w in cx.state.get("E", ()):
            if w[E_ENC] == cx.ench:
                work = w
                break
    earlier: dict[str, list[Any]] = {}  # code → the stay's counter (the last one of a code)
    bed_codes: set[str] = set()  # the stay's earlier bed charges (not exempt)
    if work is not None:
        for c in work[E_COUNTERS]:
            earlier[c[K_CODE]] = c
        get = cx.kb.services.get
        for code in earlier:
            row = get(code, cx.day)
            if row is not None and row["category"] == "bed" and code not in exempt:
                bed_codes.add(code)
    adm = stay_adm_day(cx)
    hits: list[Hit] = []
    # (a) one bed fee a day across bed types (each day an earlier line of the stay covers: its day mask)
    per_day: dict[int, list[Any]] = {}
    if bed_codes or len(_codes(beds)) > 1:  # else no day can have two bed fees (a settlement of one ward)
        for ln in beds:
            for day in range(ln.start, ln.start + ln.span):
                per_day.setdefault(day, []).append(ln)
    dup_days: list[int] = []
    amount = 0.0
    fields: dict[str, Any] = {}
    evidence: list[dict[str, Any]] = []
    lids: list[str] = []
    for day, lines in sorted(per_day.items()):
        codes = _codes(lines)
        before = [] if work is None else _beds_before(work, earlier, bed_codes, codes, day, adm)
        if len(codes) + len(before) < 2:
            continue
        # the day's bed fees, each at its price for one day: all but the dearest are charged twice
        prices = [(ln.unit_price or 0.0) * (ln.qty / ln.span) for ln in lines]
        charges: list[dict[str, Any]] = []
        for c in before:  # each earlier bed charge of the day by its event (the open-stay log)
            assert work is not None  # (before is empty without it)
            mine = earlier_charges(cx, c, day, qty_on(work, earlier[c], day, adm), work)
            charges += mine
            for e in mine:
                if e["amount"] is not None:
                    prices.append(e["amount"])
                else:  # what the log no longer holds: at the catalogue's price
                    row = cx.kb.services.get(c, day)
                    prices.append((row.get("price_cap") or 0.0) * e["quantity"] if row is not None else 0.0)
        amount += sum(prices) - max(prices)
        for ln in lines:
            if ln.lid not in lids:
                lids.append(ln.lid)
        dup_days.append(day)
        if len(dup_days) > 1:
            continue
        fields, evidence = _same_day_beds(cx, day, lines, before, charges)  # the first such day's
    if dup_days:  # one alert: the first such day named, the amount of every such day
        if len(dup_days) > 1:
            first, last, n = date_of_day(dup_days[0]), date_of_day(dup_days[-1]), len(dup_days)
            fields["what_zh"] += f"；{first}至{last}共{n}日如此"
            fields["what_en"] += f"; {n} such days from {first} to {last}"
        hits.append((fields, lids, amount, evidence))
    # (b) bed days no more than the nights of the stay: the days charged (a day with two bed fees is
    # one bed day; (a) reports the second fee), from the lines' day masks
    mask = outside = 0
    for ln in beds:
        bits = day_bits(ln, adm)
        mask |= bits
        outside += ln.span - bits.bit_count()  # days the mask does not track (before admission, past MASK_DAYS)
    for c in bed_codes:
        k = earlier[c]
        if len(k) > K_DAYS:
            mask |= k[K_DAYS]
        else:  # a counter written before the day mask: its quantity
            outside += k[K_QTY]
    days = mask.bit_count() + outside
    adm = stay_adm(cx)
    dis = cx.dis_day
    if dis is None:
        for s in cx.state.get("A", ()):
            if s[A_ENC] == cx.ench and s[A_DIS] is not None:
                dis = s[A_DIS]
    if dis is not None:
        allowed = max(1, dis - adm)
    else:
        last_day = max(ln.start + ln.span - 1 for ln in beds)  # the latest day charged so far, earlier lines too
        for c in bed_codes:
            last_day = max(last_day, earlier[c][K_LAST_DAY])
        allowed = last_day - adm + 1
    if days > allowed + 1e-9:  # (the texts are built only then: Chinese f-strings cost)
        if dis is not None:
            basis_zh, basis_en = f"{date_of_day(adm)}入院、{date_of_day(dis)}出院共{allowed}天(计入不计出)", \
                f"admitted {date_of_day(adm)}, discharged {date_of_day(dis)}: {allowed} day(s), counting the admission day, not the discharge day"
        else:
            basis_zh, basis_en = f"{date_of_day(adm)}入院至{date_of_day(last_day)}共{allowed}天", \
                f"admitted {date_of_day(adm)}: {allowed} day(s) up to {date_of_day(last_day)}"
        price = max((ln.unit_price or 0.0) for ln in beds)
        fields = {"what_zh": f"床位费计{days:g}天，超过住院天数：{basis_zh}",
                  "what_en": f"{days:g} bed days charged, more than the stay: {basis_en}"}
        hits.append((fields, [ln.lid for ln in beds], price * (days - allowed), _items_evidence(cx, beds)))
    return hits


def _codes(lines: list[Any]) -> set[str]:
    return {ln.code for ln in lines}


def _beds_before(work: list[Any], earlier: dict[str, list[Any]], bed_codes: set[str], codes: set[str],
                 day: int, adm: int) -> list[str]:
    """The stay's earlier bed charges on ``day`` of codes other than ``codes`` (sorted)."""
    return sorted(c for c in bed_codes if c not in codes and qty_on(work, earlier[c], day, adm) > 0)


def _same_day_beds(cx: Any, day: int, lines: list[Any], before: list[str],
                   charges: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """bed_days' fields and evidence for the first day with two bed fees."""
    names = [ln.name for ln in lines] + [cx.kb.services.get(c, day)["name"] for c in before]
    names_en = [ln.name_en for ln in lines] + [cx.kb.services.get(c, day)["name_en"] for c in before]
    fields = {"what_zh": f"{date_of_day(day)}同日收取{len(names)}项床位费({'、'.join(names)})，每日只能收取一项",
              "what_en": f"{len(names)} bed fees on {date_of_day(day)} ({', '.join(names_en)}); one a day is payable"}
    return fields, [ev_item(cx, ln, date=date_of_day(day)) for ln in lines] + charges


def _items_evidence(cx: Any, lines: list[Any]) -> list[dict[str, Any]]:
    return [ev_item(cx, ln) for ln in lines]
