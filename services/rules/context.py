"""The per-event context: the event's wire dict read once, enriched with KB rows.

Built once per event and shared by every rule family and by the state update,
so times are parsed and catalogue rows are looked up exactly once.
"""

from __future__ import annotations

import zlib
from datetime import date
from typing import Any

from services.rules.kb import KB
from services.rules.timeutil import EPOCH_ORD, day_of_time

DRUG_KINDS = frozenset({"drug", "herb"})
STATE_TAGS = frozenset({"L", "V", "A", "E", "P", "C", "S"})  # state sections, as context tags
GENDER_ZH = {"M": "男", "F": "女", "U": "未知"}
GENDER_EN = {"M": "male", "F": "female", "U": "unknown"}


def enc_hash(institution_id: str, encounter_id: str) -> int:
    """A short, stable id for an encounter, kept in the state instead of its strings."""
    return zlib.crc32(f"{institution_id}\x00{encounter_id}".encode())


class Line:
    """One order/charge line with its catalogue row (or None when the code is unknown)."""

    __slots__ = ("lid", "code", "kind", "qty", "amt", "price", "ds", "start", "row", "span", "_raw")

    def __init__(self, raw: dict[str, Any], row: dict[str, Any] | None, day: int) -> None:
        self._raw = raw
        self.lid: str = raw["line_id"]
        self.code: str = raw["code"]
        self.kind: str = raw["kind"]
        self.row = row
        qty = self.qty = raw["quantity"]
        amt = raw.get("amount")
        price = self.price = raw.get("unit_price")
        if amt is None:
            amt = price * qty if price is not None else 0.0
        self.amt: float = amt
        self.ds: int | None = raw.get("days_supply")
        started = raw.get("started_at")
        self.start: int = day_of_time(started) if started else day
        # A per-day item (unit 日, e.g. bed fee) with quantity n covers n consecutive days.
        self.span: int = int(-(-qty // 1)) if qty > 1 and row is not None and row["unit"] == "日" else 1

    @property
    def name(self) -> str:
        return self._raw.get("name") or (self.row["name"] if self.row else self.code)

    @property
    def unit_price(self) -> float | None:
        if self.price is not None:
            return self.price
        amt = self._raw.get("amount")
        return amt / self.qty if amt is not None and self.qty else None


class Dx:
    __slots__ = ("code", "name", "main", "row")

    def __init__(self, raw: dict[str, Any], row: dict[str, Any] | None) -> None:
        self.code: str = raw["code"]
        self.row = row
        self.name: str = raw.get("name") or (row["name"] if row else self.code)
        self.main: bool = bool(raw.get("main"))


class Ctx:
    """Everything a rule reads about one event. ``state`` is the PRIOR state (read only).

    ``features`` holds the tags a rule family can ask for (``needs``): the
    encounter type, the line kinds ("rx" when drugs or decoction pieces), "dx"
    when diagnoses are present, the KB
    feature tags of the lines' rows, and the state sections present.
    """

    __slots__ = (
        "ev", "event_id", "scene", "day", "region", "inst", "level", "enc", "enc_id",
        "ench", "enc_type", "med_type", "dept", "gender", "birth", "age_d", "age_y",
        "insutype", "dx", "main_dx", "items", "features", "kinds", "state", "adm_day", "dis_day",
        "total", "kb", "_date",
    )

    def __init__(self, kb: KB, state: dict[str, Any], ev: dict[str, Any]) -> None:
        self.ev = ev
        self.kb = kb
        self.state = state
        self.event_id: str = ev["event_id"]
        self.scene: int = ev["scene"]
        occurred = ev["occurred_at"]
        if occurred.endswith("+08:00"):
            on = date.fromisoformat(occurred[:10])
        else:
            on = date.fromordinal(day_of_time(occurred) + EPOCH_ORD)
        day = self.day = on.toordinal() - EPOCH_ORD
        self._date: str | None = None
        patient = ev["patient"]
        institution = ev["institution"]
        self.inst: str = institution["id"]
        self.level: int | None = institution.get("level")
        self.region: str = patient.get("region") or institution.get("region") or "default"
        enc = self.enc = ev["encounter"]
        self.enc_id: str = enc["id"]
        self.ench: int = enc_hash(self.inst, self.enc_id)
        enc_type = self.enc_type = enc["type"]
        self.med_type: str | None = enc.get("med_type")
        self.dept: str | None = enc.get("department")
        adm = enc.get("admitted_at")
        self.adm_day: int | None = day_of_time(adm) if adm else None
        dis = enc.get("discharged_at")
        self.dis_day: int | None = day_of_time(dis) if dis else None
        self.gender: str = patient["gender"]
        self.insutype: str | None = patient.get("insurance_type")
        birth = self.birth = date.fromisoformat(patient["birth_date"])
        self.age_d: int = day - (birth.toordinal() - EPOCH_ORD)
        self.age_y: int = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
        tags = {enc_type}
        tags.update(STATE_TAGS.intersection(state))
        kinds: set[str] = set()
        lines = []
        total = 0.0
        item_get = kb.item
        one = kb.one
        for raw in ev.get("items") or ():
            kind = raw["kind"]
            row = one.get(raw["code"])
            if row is None or not row["_from"] <= day <= row["_to"] or (kind in DRUG_KINDS) != (row["_t"] == "d"):
                row = item_get(raw["code"], kind, day)
            line = Line(raw, row, day)
            total += line.amt
            lines.append(line)
            kinds.add(kind)
            if row is not None:
                tags |= row["_f"]
        tags |= kinds
        if kinds & DRUG_KINDS:
            tags.add("rx")
        self.items: list[Line] = lines
        self.total: float = total
        self.kinds = kinds
        raw_dx = ev.get("diagnoses")
        main = None
        if raw_dx:
            tags.add("dx")
            dx_get = kb.diagnosis
            dxs = [Dx(d, dx_get(d["code"], day)) for d in raw_dx]
            for d in dxs:
                if d.row is not None:
                    tags |= d.row["_f"]
            for d in dxs:
                if d.main:
                    main = d
                    break
            if main is None:
                main = dxs[0]
        else:
            dxs = []
        self.dx: list[Dx] = dxs
        self.main_dx: Dx | None = main
        self.features = tags

    @property
    def date(self) -> str:
        if self._date is None:
            self._date = date.fromordinal(self.day + EPOCH_ORD).isoformat()
        return self._date

    def kb_drug(self, code: str, day: int | None = None) -> dict[str, Any] | None:
        return self.kb.drugs.get(code, self.day if day is None else day)

    def kb_dx(self, code: str) -> dict[str, Any] | None:
        return self.kb.diagnosis(code, self.day)

    def date_of(self, day: int) -> str:
        return date.fromordinal(day + EPOCH_ORD).isoformat()

