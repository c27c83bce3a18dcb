"""Rule families on catalogue restrictions of single lines (限定支付范围): one KB attribute each.

Stateless: each looks at the request's lines and the KB row of each line.
"""

from __future__ import annotations

from typing import Any

from services.rules.context import DRUG, GENDER_EN, GENDER_ZH
from services.rules.families import Hit, ev_item, family, kb_ev
from services.rules.kb import tag_bit
from services.rules.state import A_DX, A_ENC, drug_supplies, supply_days
from services.rules.timeutil import date_of_day

KIND_TABLE = {"drug": "drugs", "herb": "drugs", "service": "services", "consumable": "services"}
SETTING_ZH = {"outpatient": "门诊", "inpatient": "住院", "pharmacy": "药店购药", "emergency": "急诊", "chronic": "门诊慢特病"}
INSUTYPE_ZH = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险", "410": "工伤保险", "510": "生育保险"}
UNIT_EN = {"g": "g", "丸": "pill(s)", "支": "vial(s)", "片": "tablet(s)", "瓶": "bottle(s)", "盒": "box(es)", "粒": "capsule(s)",
           "袋": "sachet(s)", "次": "time(s)", "日": "day(s)", "个": "piece(s)", "套": "set(s)", "小时": "hour(s)", "根": "piece(s)",
           "项": "item(s)", "组": "group(s)", "把": "piece(s)"}
INSUTYPE_EN = {"310": "employee basic medical insurance", "390": "urban and rural resident basic medical insurance",
               "410": "work-injury insurance", "510": "maternity insurance"}


def _table(line: Any) -> str:
    return KIND_TABLE[line.kind]


def _selected(line: Any, p: dict[str, Any]) -> bool:
    if line.kind not in p["kinds"]:
        return False
    cats = p["categories"]
    excl = p["exclude_categories"]
    if not cats and not excl:
        return True
    cat = line.row.get("category") if line.row is not None else None
    if cats and cat not in cats:
        return False
    return cat not in excl


# Line.m bits: a line without its family's tag cannot hit (the tag is set exactly when the
# row carries the attribute the family tests), so the loops skip it on one int test; a line with
# it has a row with that attribute (Line.m is 0 without a row), not tested again.
SEX, INSUTYPE, LEVEL, SETTING = tag_bit("sex"), tag_bit("insutype"), tag_bit("level"), tag_bit("setting")
INDICATION, PRICE_CAP, VBP_ALT, DAILY_QTY = tag_bit("indication"), tag_bit("price_cap"), tag_bit("vbp_alt"), tag_bit("daily_qty")

ITEM_FILTER: dict[str, type | tuple[type, ...]] = {"kinds": list, "categories": list, "exclude_categories": list}


@family(
    "item_sex", needs="sex", params=ITEM_FILTER,
    fields=("item", "item_en", "item_code", "sex_zh", "sex_en", "allowed_zh", "allowed_en"),
)
def item_sex(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """A line restricted to one sex (区分性别使用) for a patient of the other."""
    gender = cx.gender
    if gender == "U":
        return []
    hits = []
    for line in cx.items:
        if not line.m & SEX:
            continue
        row = line.row
        if row is None or not row.get("sex") or row["sex"] == gender or not _selected(line, p):
            continue
        sex = row["sex"]
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "sex_zh": GENDER_ZH[gender], "sex_en": GENDER_EN[gender],
                  "allowed_zh": GENDER_ZH[sex], "allowed_en": GENDER_EN[sex]}
        hits.append((fields, [line.lid], line.amt, [ev_item(cx, line), kb_ev(_table(line), row["code"], f"sex={sex}")]))
    return hits


@family(
    "item_age", needs="age", params={"neonate_days": int, "child_years": int},
    fields=("item", "item_en", "item_code", "limit_zh", "limit_en", "age_zh", "age_en"),
)
def item_age(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """限新生儿 / 限儿童 / minimum age: the patient's age on the line's service date is outside the item's range.
    A per-day line (unit 日, e.g. an incubator for 5 days) is judged on every day it covers: the days outside
    the range are flagged, and the amount is theirs."""
    hits = []
    for line in cx.items:
        row = line.row
        if row is None or not (row.get("neonate_only") or row.get("child_only") or row.get("min_age_years") is not None):
            continue
        out = None
        bad = 0
        for day in range(line.start, line.start + line.span):
            found = _age_limit(row, p, *cx.age_on(day))
            if found is not None:
                bad += 1
                if out is None:
                    out = (day, found)
        if out is None:
            continue
        day, (limit_zh, limit_en, detail) = out
        age_d, age_y = cx.age_on(day)
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "limit_zh": limit_zh, "limit_en": limit_en,
                  "age_zh": f"{age_d}天" if age_y < 1 else f"{age_y}岁", "age_en": f"{age_d} days" if age_y < 1 else f"{age_y} years"}
        amount = line.amt if bad == line.span else line.amt * bad / line.span
        hits.append((fields, [line.lid], amount, [ev_item(cx, line, date=date_of_day(day)), kb_ev(_table(line), row["code"], detail)]))
    return hits


def _age_limit(row: dict[str, Any], p: dict[str, Any], age_d: int, age_y: int) -> tuple[str, str, str] | None:
    """The item's age limit the patient is outside of at (age in days, age in years), else None."""
    if row.get("neonate_only") and age_d > p["neonate_days"]:
        return f"限新生儿(出生{p['neonate_days']}天内)", f"newborns only (≤ {p['neonate_days']} days)", "neonate_only"
    if row.get("child_only") and age_y >= p["child_years"]:
        return f"限儿童(未满{p['child_years']}岁)", f"children only (< {p['child_years']} years)", "child_only"
    if row.get("min_age_years") is not None and age_y < row["min_age_years"]:
        return f"限{row['min_age_years']}岁及以上", f"age {row['min_age_years']}+ only", f"min_age_years={row['min_age_years']}"
    return None


@family("item_insutype", needs="insutype", params={}, fields=("item", "item_en", "item_code", "allowed_zh", "allowed_en", "insutype", "insutype_en"))
def item_insutype(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """限工伤/生育保险: the patient's insurance type is not among the item's."""
    ins = cx.insutype
    if ins is None:
        return []
    hits = []
    for line in cx.items:
        if not line.m & INSUTYPE:
            continue
        row = line.row
        if row is None or not row.get("insutypes") or ins in row["insutypes"]:
            continue
        allowed = row["insutypes"]
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code,
                  "insutype": f"{INSUTYPE_ZH.get(ins, '其他险种')}({ins})", "insutype_en": f"{INSUTYPE_EN.get(ins, 'other insurance')} ({ins})",
                  "allowed_zh": "、".join(f"{INSUTYPE_ZH.get(a, '其他险种')}({a})" for a in allowed),
                  "allowed_en": ", ".join(f"{INSUTYPE_EN.get(a, 'other insurance')} ({a})" for a in allowed)}
        hits.append((fields, [line.lid], line.amt, [ev_item(cx, line), kb_ev(_table(line), row["code"], f"insutypes={','.join(allowed)}")]))
    return hits


@family("item_level", needs="level", params={}, fields=("item", "item_en", "item_code", "level", "min_level"))
def item_level(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """限医疗机构级别: the institution's level is below the item's minimum."""
    level = cx.level
    if level is None:
        return []
    hits = []
    for line in cx.items:
        if not line.m & LEVEL:
            continue
        row = line.row
        if row is None or not row.get("min_level") or level >= row["min_level"]:
            continue
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "level": level, "min_level": row["min_level"]}
        hits.append((fields, [line.lid], line.amt, [ev_item(cx, line), kb_ev(_table(line), row["code"], f"min_level={row['min_level']}")]))
    return hits


@family("item_setting", needs="setting", params={}, fields=("item", "item_en", "item_code", "where_zh", "where_en", "allowed_zh", "allowed_en"))
def item_setting(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """限就医方式 / 限科室: the encounter type or department is not among the item's."""
    hits = []
    enc_type = cx.enc_type
    dept = cx.dept
    for line in cx.items:
        if not line.m & SETTING:
            continue
        row = line.row
        if row is None:
            continue
        settings = row.get("settings")
        depts = row.get("departments")
        if settings and enc_type not in settings:
            fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "where_zh": SETTING_ZH.get(enc_type, enc_type), "where_en": enc_type,
                      "allowed_zh": "、".join(SETTING_ZH.get(s, s) for s in settings), "allowed_en": ", ".join(settings)}
            detail = f"settings={','.join(settings)}"
        elif depts and dept is not None and not dept.startswith(tuple(depts)):
            fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "where_zh": f"科室{dept}", "where_en": f"department {dept}",
                      "allowed_zh": "科室" + "、".join(depts), "allowed_en": "departments " + ", ".join(depts)}
            detail = f"departments={','.join(depts)}"
        else:
            continue
        hits.append((fields, [line.lid], line.amt, [ev_item(cx, line), kb_ev(_table(line), row["code"], detail)]))
    return hits


@family("herb_pay", needs="herb_pay", params={}, fields=("items", "items_en", "why_zh", "why_en"))
def herb_pay(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """饮片: 单复方均不予支付 (never paid), or 单方不予支付 when every piece of the request is on that list."""
    herbs = [ln for ln in cx.items if ln.kind == "herb"]
    never = [ln for ln in herbs if ln.row is not None and ln.row.get("herb_never_paid")]
    hits = []
    if never:
        fields = {"items": "、".join(ln.name for ln in never), "items_en": ", ".join(ln.name_en for ln in never),
                  "why_zh": "单味或复方均不予支付", "why_en": "not paid alone or in a compound prescription"}
        evidence = [ev_item(cx, ln) for ln in never] + [kb_ev("drugs", ln.code, "herb_never_paid") for ln in never]
        hits.append((fields, [ln.lid for ln in never], sum(ln.amt for ln in never), evidence))
    rest = [ln for ln in herbs if ln not in never]
    # One prescription (剂) is one service date: an inpatient settlement carries every day's pieces, so a
    # day whose pieces are all on the 单方不予支付 list is judged apart from the formulas of other days.
    by_day: dict[int, list[Any]] = {}
    for ln in rest:
        by_day.setdefault(ln.start, []).append(ln)
    for _, group in sorted(by_day.items()):
        if not all(ln.row is not None and ln.row.get("herb_single_unpaid") for ln in group):
            continue
        fields = {"items": "、".join(ln.name for ln in group), "items_en": ", ".join(ln.name_en for ln in group),
                  "why_zh": "单味使用或全部由单方不予支付饮片组成的处方不予支付",
                  "why_en": "not paid when used alone or only with other pieces of that list"}
        evidence = [ev_item(cx, ln) for ln in group] + [kb_ev("drugs", ln.code, "herb_single_unpaid") for ln in group]
        hits.append((fields, [ln.lid for ln in group], sum(ln.amt for ln in group), evidence))
    return hits


def encounter_dx(cx: Any) -> list[str]:
    """Diagnoses known for this encounter: this event's, else the stay's recorded main diagnosis."""
    codes = [d.code for d in cx.dx]
    if not codes and cx.enc_type == "inpatient":
        for stay in cx.state.get("A", ()):
            if stay[A_ENC] == cx.ench and stay[A_DX]:
                codes.append(stay[A_DX])
    return codes


def _any_starts(codes: list[str], prefixes: tuple[str, ...]) -> bool:
    """Some code starts with one of ``prefixes`` (a loop: ``any()`` over a generator in ``indication``
    would make a cell of its locals and a generator per line)."""
    for code in codes:
        if code.startswith(prefixes):
            return True
    return False


@family(
    "indication", needs="indication", params={"judge_without_diagnosis": bool},
    fields=("item", "item_en", "item_code", "indication", "indication_en", "dx_list", "dx_list_en"),
)
def indication(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """限适应症: none of the encounter's diagnoses is among the item's allowed ones."""
    codes = encounter_dx(cx)
    if not codes and not p["judge_without_diagnosis"]:
        return []
    hits = []
    for line in cx.items:
        if not line.m & INDICATION:  # (the row has indications)
            continue
        row = line.row
        allowed = tuple(row["indications"])
        if _any_starts(codes, allowed):
            continue
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code,
                  "indication": row.get("indication_text") or "、".join(allowed),
                  "indication_en": "ICD-10 " + ", ".join(allowed), "dx_list": "、".join(codes) or "无", "dx_list_en": ", ".join(codes) or "none"}
        evidence = [ev_item(cx, line), kb_ev(_table(line), row["code"], "indications=" + ",".join(allowed))]
        hits.append((fields, [line.lid], line.amt, evidence))
    return hits


@family("price_cap", needs="price_cap", params={"tolerance": float}, fields=("item", "item_en", "item_code", "price", "cap"))
def price_cap(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """超限定单价: unit price above the catalogue cap in force on the line's service date (for a
    multi-day line, e.g. a bed fee of n days, the cap in force on each day it covers)."""
    tol = 1.0 + p["tolerance"]
    hits = []
    for line in cx.items:
        if not line.m & PRICE_CAP:  # (the row has a price_cap)
            continue
        row = line.row
        price = line.unit_price
        if price is None:
            continue
        if line.span == 1:
            cap = row["price_cap"]
            if price <= cap * tol + 1e-9:
                continue
            excess, rows = (price - cap) * line.qty, [row]
        else:  # each day at the cap in force that day
            excess, rows, cap = 0.0, [], None
            get = cx.kb.services.get if line.kind in ("service", "consumable") else cx.kb.drugs.get
            per_day = line.qty / line.span
            for day in range(line.start, line.start + line.span):
                r = get(line.code, day)
                if r is None or not r.get("price_cap") or price <= r["price_cap"] * tol + 1e-9:
                    continue
                excess += (price - r["price_cap"]) * per_day
                cap = r["price_cap"] if cap is None else max(cap, r["price_cap"])
                if r not in rows:
                    rows.append(r)
            if not rows or cap is None:
                continue
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "price": f"{price:.2f}", "cap": f"{cap:.2f}"}
        evidence = [ev_item(cx, line, date=date_of_day(line.start))]
        table = _table(line)
        for r in rows:  # (a loop: a comprehension would make ``line`` a cell of price_cap)
            evidence.append(kb_ev(table, r["code"], f"price_cap={r['price_cap']} from {r['effective_from']}"))
        hits.append((fields, [line.lid], excess, evidence))
    return hits


@family("vbp", needs="vbp_alt", params={}, fields=("item", "item_en", "item_code", "manufacturer", "manufacturer_en", "alternatives", "alternatives_en"))
def vbp(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """集采: a non-selected product is used where a volume-procured (中选) product of the same ingredient and form
    is in the catalogue on the line's service date (a stay settled after a procurement round ended is judged
    by the products in force on the day each line was given)."""
    hits = []
    for line in cx.items:
        if not line.m & VBP_ALT:
            continue
        row = line.row
        if row is None or "vbp_alt" not in row["_f"]:
            continue
        day = line.start
        alts = [r for r in row["_vbp"] if r["_from"] <= day <= r["_to"]]
        if not alts:
            continue
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "manufacturer": row["manufacturer"],
                  "manufacturer_en": f"manufacturer code {row['code'][-5:]}",
                  "alternatives": "、".join(f"{a['manufacturer']}({a['code']})" for a in alts),
                  "alternatives_en": ", ".join(a["code"] for a in alts)}
        evidence = [ev_item(cx, line), kb_ev("drugs", row["code"], "vbp_selected=false")]
        evidence += [kb_ev("drugs", a["code"], "vbp_selected=true") for a in alts]
        hits.append((fields, [line.lid], 0.0, evidence))
    return hits


@family("daily_qty", needs="daily_qty", params={"tolerance": float}, fields=("item", "item_en", "item_code", "per_day", "max_per_day", "unit", "unit_en"))
def daily_qty(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """超说明书用量: quantity / days of supply above the maximum daily quantity."""
    tol = 1.0 + p["tolerance"]
    # 分解处方: lines of one product in one request are added up (quantity / days of supply each).
    groups: dict[tuple[str, str, int], list[Any]] = {}
    for line in cx.items:
        if not line.m & DAILY_QTY or not line.ds:  # (the tag: the row has a max_daily_qty)
            continue
        row = line.row
        key = (row["ingredient"], row["unit"], line.start)
        group = groups.get(key)
        if group is None:
            groups[key] = [line]
        else:
            group.append(line)
    hits = []
    for group in groups.values():
        line = group[0]
        row = line.row
        per_day = 0.0
        for ln in group:
            per_day += ln.qty / ln.ds
        if per_day <= row["max_daily_qty"] * tol + 1e-9:
            continue
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "per_day": f"{per_day:g}",
                  "max_per_day": f"{row['max_daily_qty']:g}", "unit": row["unit"],
                  "unit_en": UNIT_EN.get(row["unit"], "unit(s)")}
        evidence = _items_evidence(cx, group) + [kb_ev("drugs", row["code"], f"max_daily_qty={row['max_daily_qty']}")]
        hits.append((fields, [ln.lid for ln in group], sum(ln.amt for ln in group), evidence))
    return hits


NO_DAYS: dict[str, int] = {}  # a drug without max_days of its own
CONTROLLED_ZH = {"narcotic": "麻醉药品", "psychotropic_1": "第一类精神药品", "psychotropic_2": "第二类精神药品"}
CONTROLLED_EN = {"narcotic": "narcotic", "psychotropic_1": "class I psychotropic", "psychotropic_2": "class II psychotropic"}



def _items_evidence(cx: Any, lines: list[Any]) -> list[dict[str, Any]]:
    """(A module function: a comprehension in a rule function would make ``cx`` a cell of it, built on
    every call.)"""
    return [ev_item(cx, ln) for ln in lines]

def _pain(cx: Any, prefixes: list[str]) -> bool:
    """A diagnosis of cancer or chronic pain on the request (the longer limits of 第二十四条)."""
    return any(d.code.startswith(tuple(prefixes)) for d in cx.dx)


def controlled_limit(row: dict[str, Any], pain: bool) -> tuple[int, str, str] | None:
    """《处方管理办法》第二十三、二十四条: the days one outpatient prescription of a controlled drug may
    cover, as (days, Chinese label, English label); None for a drug that is not controlled.

    麻醉药品 and 第一类精神药品: injections one dose (counted as 1 day), controlled/sustained release 7
    days, other forms 3; for cancer pain or moderate-to-severe chronic pain (``pain``) 3 / 15 / 7.
    第二类精神药品: 7 days (a chronic-disease visit may extend it: not applied there)."""
    kind = row.get("controlled")
    if kind is None:
        return None
    if kind == "psychotropic_2":
        return 7, CONTROLLED_ZH[kind], CONTROLLED_EN[kind]
    form = row["form"]
    if "注射" in form:
        days, zh, en = (3 if pain else 1), "注射剂", "injection"
    elif "缓释" in form or "控释" in form or "透皮" in form:
        days, zh, en = (15 if pain else 7), "控缓释制剂", "controlled/sustained release"
    else:
        days, zh, en = (7 if pain else 3), "其他剂型", "other forms"
    who_zh, who_en = ("癌痛/慢性中重度疼痛患者", "cancer or chronic pain patient, ") if pain else ("", "")
    return days, f"{who_zh}{CONTROLLED_ZH[kind]}{zh}", f"{who_en}{CONTROLLED_EN[kind]} {en}"


@family(
    "max_days", needs=("drug",), params={"default_days": int, "emergency_days": int, "chronic_days": int,
                        "chronic_med_types": list, "emergency_med_types": list, "emergency_departments": list,
                        "pain_dx_prefixes": list},
    fields=("item", "item_en", "item_code", "days", "limit", "setting_zh", "setting_en"),
)
def max_days(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """超量开药: days of supply above the limit for the setting (KB per drug, else the rule's defaults).
    Lines without a catalogue row in force on their service date are skipped (they are unchecked_lines)."""
    if not cx.kmask & DRUG:
        return []
    med_type = cx.med_type
    if med_type is not None and med_type in p["chronic_med_types"]:
        setting = "chronic"
    elif (med_type is not None and med_type in p["emergency_med_types"]) or (
        cx.dept is not None and cx.dept.startswith(tuple(p["emergency_departments"]))
    ):
        setting = "emergency"
    else:
        setting = "outpatient"
    # The setting's limit for a drug without a max_days of its own (most drugs).
    if setting == "chronic":
        default = p["chronic_days"]
    elif setting == "emergency":
        default = p["emergency_days"]
    else:
        default = p["default_days"]
    # 分解处方: the lines of one ingredient in one request are added up before the limit applies
    # (state.drug_supplies: computed once per event, shared with R19/R25 and the ledger update).
    hits = []
    # A line without a catalogue row in force (R38/R39, unchecked_lines) is not judged: its kind and
    # controlled class are unknown (its supplies' ingredient is "?" + code, so it is never grouped with others).
    for sup in drug_supplies(cx):
        days = sup[3]
        if not days:
            continue
        lines = sup[5]
        row = lines[0].row
        if row is None:
            continue
        kb_days = row.get("max_days")
        if not kb_days:
            kb_days = NO_DAYS
            limit = default
        elif setting == "chronic":
            limit = kb_days.get("chronic", max(default, kb_days.get("outpatient", 0)))
        elif setting == "emergency":
            limit = min(default, kb_days.get("emergency", 10**6), kb_days.get("outpatient", 10**6))
        else:
            limit = kb_days.get("outpatient", default)
        controlled = row.get("controlled")
        if controlled is None and days <= limit:
            continue
        if len(lines) > 1:  # a line without days (explicit 0, or none and no usual daily quantity) is not judged
            lines = [ln for ln in lines if (ln.ds if ln.ds is not None else supply_days(ln))]
        line = lines[0]
        setting_zh, setting_en, source_extra, base = SETTING_ZH[setting], setting, "", limit
        ctrl = controlled_limit(row, _pain(cx, p["pain_dx_prefixes"])) if controlled else None
        if ctrl is not None and not (controlled == "psychotropic_2" and setting == "chronic"):
            # The statutory limit replaces the general default of the setting (it may be longer: 癌痛
            # 15 days); a limit the catalogue sets for the drug in this setting still applies if lower.
            explicit = kb_days.get(setting)
            limit = ctrl[0] if explicit is None else min(ctrl[0], explicit)
            if limit == ctrl[0]:
                setting_zh, setting_en = f"{setting_zh}{ctrl[1]}", f"{setting} {ctrl[2]}"
                source_extra = f"; controlled={controlled}, form={row['form']}: 处方管理办法 {ctrl[0]} days"
        if days <= limit:
            continue
        fields = {"item": line.name, "item_en": line.name_en, "item_code": line.code, "days": days, "limit": limit,
                  "setting_zh": setting_zh, "setting_en": setting_en}
        if len(lines) > 1:
            fields["item"] = f"{line.name}(同一成分{len(lines)}行合计)"
            fields["item_en"] = f"{line.name_en} ({len(lines)} lines of one ingredient together)"
        source = (f"max_days.{setting}={base}" if setting in kb_days else f"rule default {setting}={base}") + source_extra
        evidence = _items_evidence(cx, lines) + [kb_ev("drugs", row["code"], source)]
        hits.append((fields, [ln.lid for ln in lines], sum(ln.amt for ln in lines), evidence))
    return hits
