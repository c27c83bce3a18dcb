"""The per-event context: the event's wire dict read once, enriched with KB rows.

Built once per event and shared by every rule family and by the state update,
so times are parsed and catalogue rows are looked up exactly once. The tags
rules are gated on are kept as bits (``fmask``, see ``kb.TAG_BITS``); values
only some rules need (ages, display names, the ISO date) are computed on first
use.
"""

from __future__ import annotations

import zlib
from datetime import date
from typing import Any

from services.contracts.event import EncounterType
from services.rules.kb import KB, ROW_TAGS, mask_tags, tag_bit
from services.rules.state import V_ENC
from services.rules.timeutil import EPOCH_ORD, date_of_day, day_of_date, day_of_time

DRUG_KINDS = frozenset({"drug", "herb"})
STATE_TAGS = frozenset({"L", "V", "A", "E", "P", "C", "S"})  # state sections, as context tags
GENDER_ZH = {"M": "男", "F": "女", "U": "未知"}
GENDER_EN = {"M": "male", "F": "female", "U": "unknown"}

STATE_BITS = {key: tag_bit(key) for key in sorted(STATE_TAGS)}
KIND_BITS = {kind: tag_bit(kind) for kind in ("drug", "herb", "service", "consumable")}
DRUG = KIND_BITS["drug"]  # Ctx.kmask & DRUG: the request has drug lines
RX_KINDS = KIND_BITS["drug"] | KIND_BITS["herb"]
RX = tag_bit("rx")
DX = tag_bit("dx")
UNCOVERED = tag_bit("uncovered")  # some line has no catalogue row in force on its service date
NEW_VISIT = tag_bit("new_visit")  # an outpatient encounter not among the recorded visits (V) yet
ENCOUNTER_TAGS = frozenset(e.value for e in EncounterType)
ENCOUNTER_BITS = {tag: tag_bit(tag) for tag in sorted(ENCOUNTER_TAGS)}
# Every tag a family may name in ``needs``: set by the context (state sections, line kinds, rx, dx,
# new_visit, the encounter type) or carried by KB rows (kb.ROW_TAGS). Checked when rules load.
CONTEXT_TAGS = STATE_TAGS | frozenset(KIND_BITS) | {"rx", "dx", "new_visit", "uncovered"} | ENCOUNTER_TAGS
KNOWN_TAGS = CONTEXT_TAGS | ROW_TAGS


def enc_hash(institution_id: str, encounter_id: str) -> int:
    """A short, stable id for an encounter, kept in the state instead of its strings."""
    return zlib.crc32(f"{institution_id}\x00{encounter_id}".encode())


class Line:
    """One order/charge line with its catalogue row (or None when the code is unknown); made by
    ``make_line``."""

    __slots__ = ("code", "kind", "qty", "amt", "ds", "start", "row", "m", "span", "_raw")
    code: str
    kind: str
    qty: float
    amt: float
    ds: int | None
    start: int  # the service date: started_at, else the event's date
    row: dict[str, Any] | None
    m: int  # the row's feature tags as bits
    span: int  # the days a per-day item (unit 日, e.g. bed fee) covers: its quantity; else 1
    _raw: dict[str, Any]

    @property
    def lid(self) -> str:
        """The line's id (few rules name lines: read when asked)."""
        return self._raw["line_id"]

    @property
    def price(self) -> float | None:
        return self._raw.get("unit_price")

    @property
    def doctor_id(self) -> str | None:
        """The line's ordering doctor (医保医师代码), when the HIS names one per line."""
        return self._raw.get("doctor_id")

    @property
    def take_home(self) -> bool:
        """出院带药: discharge medication (an inpatient line the patient takes home)."""
        return bool(self._raw.get("take_home"))

    @property
    def name(self) -> str:
        return self._raw.get("name") or (self.row["name"] if self.row else self.code)

    @property
    def name_en(self) -> str:
        """The catalogue's English name; the code itself when the catalogue has no row."""
        return self.row["name_en"] if self.row else self.code

    @property
    def unit_price(self) -> float | None:
        price = self._raw.get("unit_price")
        if price is not None:
            return price
        amt = self._raw.get("amount")
        return amt / self.qty if amt is not None and self.qty else None


def make_line(raw: dict[str, Any], code: str, kind: str, row: dict[str, Any] | None, start: int) -> Line:
    """A Line of the item ``raw`` (its ``code`` and ``kind`` as the context read them) with its
    catalogue row. A plain function, not ``Line.__init__``: a class call through an ``__init__``
    costs about as much as filling in all its fields, and a context makes one per line."""
    line = Line()  # (no __init__: the bare class call costs less than object.__new__(Line), ≈ 300 instructions)
    line._raw = raw
    line.code = code
    line.kind = kind
    line.row = row
    qty = line.qty = raw["quantity"]
    amt = raw.get("amount")
    if amt is None:
        price = raw.get("unit_price")
        amt = price * qty if price is not None else 0.0
    line.amt = amt
    line.ds = raw.get("days_supply")
    line.start = start
    if row is None:
        line.m = 0
        line.span = 1
    else:
        line.m = row["_m"]
        # A per-day item (unit 日, e.g. bed fee) with quantity n covers n consecutive days.
        line.span = int(-(-qty // 1)) if qty > 1 and row["unit"] == "日" else 1
    return line


class Dx:
    """One diagnosis with its catalogue row (or None when the code is unknown); made by ``make_dx``."""

    __slots__ = ("code", "row", "_raw")
    code: str
    row: dict[str, Any] | None
    _raw: dict[str, Any]

    @property
    def main(self) -> bool:
        """Marked as the main diagnosis (主诊断)."""
        return bool(self._raw.get("main"))

    @property
    def name(self) -> str:
        row = self.row
        return self._raw.get("name") or (row["name"] if row else self.code)

    @property
    def name_en(self) -> str:
        row = self.row
        return row["name_en"] if row else self.code


def make_dx(raw: dict[str, Any], code: str, row: dict[str, Any] | None) -> Dx:
    """A Dx of the diagnosis ``raw`` (its ``code`` as the context read it), as ``make_line`` makes lines."""
    dx = Dx()
    dx._raw = raw
    dx.code = code
    dx.row = row
    return dx


_STATE_MASKS: dict[tuple[str, ...], int] = {}  # the keys of a state, in its order → the bits of its sections


def _state_mask(keys: tuple[str, ...]) -> int:
    mask = 0
    for key in keys:
        mask |= STATE_BITS.get(key, 0)
    if len(_STATE_MASKS) < 4096:
        _STATE_MASKS[keys] = mask
    return mask


class Ctx:
    """Everything a rule reads about one event. ``state`` is the PRIOR state (read only).

    ``features`` holds the tags a rule family can ask for (``needs``): the
    encounter type, the line kinds ("rx" when drugs or decoction pieces), "dx"
    when diagnoses are present, the KB
    feature tags of the lines' rows, the state sections present, and
    "new_visit" for an outpatient encounter the visits (V) do not hold yet;
    ``fmask`` is the same set as bits (``kmask`` the line kinds' bits alone).
    """

    __slots__ = (
        "ev", "event_id", "scene", "day", "region", "inst", "enc", "enc_id",
        "ench", "enc_type", "med_type", "dept", "dx", "main_dx",
        "items", "fmask", "kmask", "state", "adm_day", "dis_day", "kb", "_date",
        "_patient", "_birth_ord", "_age_y", "_total", "cancel", "_supplies", "_ledger", "dated",
        "prov",
    )

    def __init__(self, kb: KB, state: dict[str, Any], ev: dict[str, Any], prov: Any = None) -> None:
        self.ev = ev
        self.prov = prov  # provider status timelines (services.rules.providers.Providers), None: unknown
        self.kb = kb
        self.state = state
        self.event_id: str = ev["event_id"]
        # A cancellation (撤销 / 退费): the event id it cancels ("" when it names only items); None for an order.
        self.cancel: str | None = (ev.get("cancels") or "") if ev.get("event_type") == "cancellation" else None
        self.scene: int = ev["scene"]
        day = self.day = day_of_time(ev["occurred_at"])
        self._date: str | None = None
        patient = self._patient = ev["patient"]
        institution = ev["institution"]
        inst = self.inst = institution["id"]
        # 异地就医: the treating institution's region parameters apply; the patient's own (参保地)
        # region only when the institution does not say where it is.
        self.region: str = institution.get("region") or patient.get("region") or "default"
        enc = self.enc = ev["encounter"]
        enc_id = self.enc_id = enc["id"]
        self.ench: int = zlib.crc32(f"{inst}\x00{enc_id}".encode())  # enc_hash(inst, enc_id)
        enc_type = self.enc_type = enc["type"]
        self.med_type: str | None = enc.get("med_type")
        self.dept: str | None = enc.get("department")
        adm = enc.get("admitted_at")
        self.adm_day: int | None = day_of_time(adm) if adm else None
        dis = enc.get("discharged_at")
        self.dis_day: int | None = day_of_time(dis) if dis else None
        self._birth_ord: int | None = None  # the birth date's ordinal (birth_ord), computed on first use
        self._age_y: int | None = None
        self._total: float | None = None
        self._supplies: list[list[Any]] | None = None  # state.drug_supplies, computed on first use
        self._ledger: list[Any] | None = None  # the ledger drug_supplies read its prior rows from
        keys = tuple(state)  # a tuple hashes and compares cheaper than a frozenset; states have few key orders
        mask = _STATE_MASKS.get(keys)
        if mask is None:
            mask = _state_mask(keys)
        mask |= ENCOUNTER_BITS.get(enc_type) or tag_bit(enc_type)
        if enc_type == "outpatient":
            visits = state.get("V")
            if visits is not None:
                ench = self.ench
                for v in visits:
                    if v[V_ENC] == ench:
                        break
                else:
                    mask |= NEW_VISIT
        snap = kb.snapshot(day)
        by_kind = snap.by_kind
        kmask = 0
        lines = []
        dated = False  # some line's service date is not the event's date
        for raw in ev.get("items") or ():
            kind = raw["kind"]
            started = raw.get("started_at")
            start = day_of_time(started) if started else day
            if start == day:
                try:
                    index, kbit = by_kind[kind]
                except KeyError:  # a kind outside the four (Snapshot.kind)
                    index, kbit = snap.kind(kind)
            else:  # a line is judged against the catalogue in force on its own service date
                on_start = kb.snapshot(start)
                index, kbit = on_start.by_kind.get(kind) or on_start.kind(kind)
                dated = True
            code = raw["code"]
            row = index.get(code)
            if row is None and "-" in code:  # "<national code>-<local code>", as some HIS send it
                row = index.get(code.split("-", 1)[0])
            lines.append(make_line(raw, code, kind, row, start))
            kmask |= kbit
            if row is None:
                mask |= UNCOVERED
            else:
                mask |= row["_m"]
        self.items: list[Line] = lines
        self.dated: bool = dated
        if kmask & RX_KINDS:
            mask |= RX
        self.kmask = kmask
        raw_dx = ev.get("diagnoses")
        main = None
        dxs = []
        if raw_dx:
            mask |= DX
            dx_of = snap.dx
            for raw in raw_dx:
                code = raw["code"]
                row = dx_of(code)
                d = make_dx(raw, code, row)
                dxs.append(d)
                if row is not None:
                    mask |= row["_m"]
                if main is None and raw.get("main"):
                    main = d  # the first one marked main, else the first one
            if main is None:
                main = dxs[0]
        self.dx: list[Dx] = dxs
        self.main_dx: Dx | None = main
        self.fmask: int = mask | kmask

    @property
    def total(self) -> float:
        """The event's amount: the sum of its lines' amounts."""
        total = self._total
        if total is None:
            total = 0.0
            for line in self.items:
                total += line.amt
            self._total = total
        return total

    @property
    def gender(self) -> str:
        return self._patient["gender"]

    @property
    def kinds(self) -> set[str]:
        return {line.kind for line in self.items}

    @property
    def level(self) -> int | None:
        return self.ev["institution"].get("level")

    @property
    def insutype(self) -> str | None:
        return self._patient.get("insurance_type")

    @property
    def features(self) -> set[str]:
        return mask_tags(self.fmask)

    @property
    def birth_ord(self) -> int:
        """The birth date as a proleptic Gregorian ordinal (``date.toordinal``)."""
        ordinal = self._birth_ord
        if ordinal is None:
            ordinal = self._birth_ord = day_of_date(self._patient["birth_date"]) + EPOCH_ORD
        return ordinal

    @property
    def birth(self) -> date:
        return date.fromordinal(self.birth_ord)

    @property
    def age_d(self) -> int:
        return self.day + EPOCH_ORD - self.birth_ord

    @property
    def age_y(self) -> int:
        age = self._age_y
        if age is None:
            on = date.fromordinal(self.day + EPOCH_ORD)
            birth = date.fromordinal(self.birth_ord)
            age = self._age_y = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
        return age

    def age_on(self, day: int) -> tuple[int, int]:
        """The patient's age on ``day``: (days, whole years)."""
        if day == self.day:
            return self.age_d, self.age_y
        on = date.fromordinal(day + EPOCH_ORD)
        birth = date.fromordinal(self.birth_ord)
        years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
        return day + EPOCH_ORD - birth.toordinal(), years

    @property
    def date(self) -> str:
        text = self._date
        if text is None:
            text = self._date = date_of_day(self.day)
        return text

    def kb_drug(self, code: str, day: int | None = None) -> dict[str, Any] | None:
        return self.kb.drugs.get(code, self.day if day is None else day)

    def kb_dx(self, code: str) -> dict[str, Any] | None:
        return self.kb.diagnosis(code, self.day)

    def date_of(self, day: int) -> str:
        return date_of_day(day)
