"""Rule families on diagnoses: sex (R03) and age (R06) contradictions from the ICD table."""

from __future__ import annotations

from typing import Any

from services.rules.context import GENDER_EN, GENDER_ZH
from services.rules.families import Hit, ev_item, family, kb_ev
from services.rules.state import A_ADM, A_DX, A_ENC, V_DX, V_ENC


@family("dx_sex", needs=("dx_sex",), params={}, fields=("dx_code", "dx_name", "dx_name_en", "sex_zh", "sex_en", "allowed_zh", "allowed_en"))
def dx_sex(cx: Any, p: dict[str, Any]) -> list[Hit]:
    gender = cx.gender
    if gender == "U" or not cx.dx:
        return []
    hits: list[Hit] = []
    for dx in cx.dx:
        row = dx.row
        if row is None:
            continue
        sex = row.get("sex")
        if sex is not None and sex != gender:
            fields = {
                "dx_code": dx.code, "dx_name": dx.name, "dx_name_en": dx.name_en,
                "sex_zh": GENDER_ZH[gender], "sex_en": GENDER_EN[gender],
                "allowed_zh": GENDER_ZH[sex], "allowed_en": GENDER_EN[sex],
            }
            hits.append((fields, [], 0.0, [kb_ev("diagnoses", row["code"], f"sex={sex}")]))
    return hits


@family("dx_age", needs=("dx_age",), params={}, fields=("dx_code", "dx_name", "dx_name_en", "age_zh", "age_en", "limit_zh", "limit_en"))
def dx_age(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """诊断与年龄不符: the patient's age is outside the diagnosis row's (or chapter's) age range."""
    if not cx.dx:
        return []
    # A stay's diagnoses are judged at admission (a newborn admitted on day 20 and settled on day 35
    # had a newborn's diagnosis) — the event's admitted_at, else the admission the state recorded for the
    # stay (an order sent without it); other encounters at the event's date.
    adm = cx.adm_day
    if cx.enc_type == "inpatient" and adm is None:
        for stay in cx.state.get("A", ()):
            if stay[A_ENC] == cx.ench:
                adm = stay[A_ADM]
    age_d, age_y = cx.age_on(adm) if cx.enc_type == "inpatient" and adm is not None else (cx.age_d, cx.age_y)
    hits: list[Hit] = []
    for dx in cx.dx:
        row = dx.row
        if row is None:
            continue
        lo, hi, hid = row.get("age_min_years"), row.get("age_max_years"), row.get("age_max_days")
        if hid is not None and age_d > hid:
            limit_zh, limit_en, detail = f"出生{hid}天内", f"within {hid} days of birth", f"age_max_days={hid}"
        elif lo is not None and age_y < lo:
            limit_zh, limit_en, detail = f"{lo}岁及以上", f"aged {lo} or over", f"age_min_years={lo}"
        elif hi is not None and age_y > hi:
            limit_zh, limit_en, detail = f"{hi}岁及以下", f"aged {hi} or under", f"age_max_years={hi}"
        else:
            continue
        fields = {
            "dx_code": dx.code, "dx_name": dx.name, "dx_name_en": dx.name_en, "limit_zh": limit_zh, "limit_en": limit_en,
            "age_zh": f"{age_d}天" if age_y < 1 else f"{age_y}岁", "age_en": f"{age_d} days" if age_y < 1 else f"{age_y} years",
        }
        hits.append((fields, [], 0.0, [kb_ev("diagnoses", row["code"], detail)]))
    return hits


@family("missing_diagnosis", needs=("rx",), params={"kinds": list}, fields=("items", "items_en", "count"))
def missing_diagnosis(cx: Any, p: dict[str, Any]) -> list[Hit]:
    """处方无诊断: drug lines on a request that carries no diagnosis (nor a recorded stay diagnosis, nor an earlier
    event of the outpatient encounter with one)."""
    if cx.dx:
        return []
    if cx.enc_type == "inpatient":
        for stay in cx.state.get("A", ()):
            if stay[A_ENC] == cx.ench and stay[A_DX]:
                return []
    else:  # an earlier event of the visit (its order, scene 2) carried the diagnosis: the prescription had one
        for v in cx.state.get("V", ()):
            if v[V_ENC] == cx.ench and len(v) > V_DX and v[V_DX]:
                return []
    return _missing_hit(cx, p["kinds"])


def _missing_hit(cx: Any, kinds: list[str]) -> list[Hit]:
    """missing_diagnosis' hit (a function of its own: its comprehensions would make cells of the
    rule's locals, built on every call, and most calls return before)."""
    lines = [ln for ln in cx.items if ln.kind in kinds]
    if not lines:
        return []
    fields = {"items": "、".join(ln.name for ln in lines), "items_en": ", ".join(ln.name_en for ln in lines), "count": len(lines)}
    return [(fields, [ln.lid for ln in lines], sum(ln.amt for ln in lines), [ev_item(cx, ln) for ln in lines])]
