"""The knowledge base (知识库): catalogues loaded once, validated, indexed by code.

Every row is dated (``effective_from`` .. ``effective_to``, both inclusive, the
latter optional); a row is retired by giving it an ``effective_to``, never by
deleting it, and a lookup on day *d* returns the version in force on *d*.

Tables (files under ``services/data/kb/``, each ``{"table", "version", "rows": [...]}``):

- ``drugs``        western/patent drugs and decoction pieces (``type`` herb)
- ``services``     medical services and consumables (``kind``)
- ``diagnoses``    ICD-10 codes (and chapter rows with ``prefix: true``)
- ``interactions`` drug–drug interactions and decoction-piece incompatibilities
"""

from __future__ import annotations

import pathlib
from bisect import bisect_right
from typing import Any, Callable

import orjson

from services.rules.exceptions import DataError
from services.rules.timeutil import Memo, effective_days

_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_BOOL = (bool,)
_LIST = (list,)
_DICT = (dict,)

SEXES = ("M", "F")
SETTINGS = ("outpatient", "inpatient", "pharmacy", "emergency", "chronic")
SERVICE_CATEGORIES = (
    "registration", "consult", "bed", "nursing", "lab", "imaging", "treatment",
    "surgery", "dialysis", "anesthesia", "rehab", "tcm", "material", "other",
)


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    """A check that the value is one of ``allowed`` (its JSON Schema is an enum: ``check.allowed``)."""

    def check(v: Any) -> str | None:
        return None if v in allowed else f"must be {'|'.join(allowed)}"

    check.allowed = allowed  # type: ignore[attr-defined]
    return check


def _str_list(v: Any) -> str | None:
    if not all(isinstance(x, str) and x for x in v):
        return "must be a list of non-empty strings"
    return None


def _sex(v: Any) -> str | None:
    return None if v in SEXES else f"must be one of {SEXES}"


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _level(v: Any) -> str | None:
    return None if v in (1, 2, 3) else "must be 1, 2 or 3"


def _settings(v: Any) -> str | None:
    bad = [x for x in v if x not in SETTINGS]
    return f"unknown setting(s) {bad}; allowed {SETTINGS}" if bad else None


def _max_days(v: Any) -> str | None:
    for k, n in v.items():
        if k not in SETTINGS or not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            return f"must map settings {SETTINGS} to positive ints (got {k!r}: {n!r})"
    return None


def _period(v: Any) -> str | None:
    if set(v) != {"days", "max"} or not all(isinstance(v[k], int) and v[k] > 0 for k in v):
        return 'must be {"days": int > 0, "max": int > 0}'
    return None


def _category(v: Any) -> str | None:
    return None if v in SERVICE_CATEGORIES else f"must be one of {SERVICE_CATEGORIES}"


Spec = dict[str, tuple[tuple[type, ...], bool, Callable[[Any], str | None] | None]]

_DATED: Spec = {
    "effective_from": (_STR, True, None),
    "effective_to": (_STR, False, None),
    "note": (_STR, False, None),
}

DRUG_SPEC: Spec = {
    "code": (_STR, True, None),
    "name": (_STR, True, None),
    "name_en": (_STR, True, None),
    "type": (_STR, True, _one_of("western", "patent", "herb")),
    "ingredient": (_STR, True, None),
    "class": (_STR, True, None),
    "class_name": (_STR, True, None),
    "form": (_STR, True, None),
    "manufacturer": (_STR, True, None),
    "unit": (_STR, True, None),
    "sex": (_STR, False, _sex),
    "child_only": (_BOOL, False, None),
    "neonate_only": (_BOOL, False, None),
    "indications": (_LIST, False, _str_list),
    "indication_text": (_STR, False, None),
    "second_line": (_BOOL, False, None),
    "first_line_classes": (_LIST, False, _str_list),
    "min_level": (_INT, False, _level),
    "settings": (_LIST, False, _settings),
    "max_days": (_DICT, False, _max_days),
    "daily_qty": (_NUM, False, _positive),
    "max_daily_qty": (_NUM, False, _positive),
    "price_cap": (_NUM, False, _positive),
    "vbp_selected": (_BOOL, False, None),
    "insutypes": (_LIST, False, _str_list),
    "course_days": (_INT, False, _positive),
    "herb_single_unpaid": (_BOOL, False, None),
    "herb_never_paid": (_BOOL, False, None),
    # 麻醉药品 / 第一类精神药品 / 第二类精神药品: statutory day limits per prescription (R18, 处方管理办法 §23–24)
    "controlled": (_STR, False, _one_of("narcotic", "psychotropic_1", "psychotropic_2")),
    **_DATED,
}

SERVICE_SPEC: Spec = {
    "code": (_STR, True, None),
    "name": (_STR, True, None),
    "name_en": (_STR, True, None),
    "kind": (_STR, True, _one_of("service", "consumable")),
    "category": (_STR, True, _category),
    "unit": (_STR, True, None),
    "sex": (_STR, False, _sex),
    "child_only": (_BOOL, False, None),
    "neonate_only": (_BOOL, False, None),
    "min_age_years": (_INT, False, None),
    "min_level": (_INT, False, _level),
    "settings": (_LIST, False, _settings),
    "departments": (_LIST, False, _str_list),
    "max_per_day": (_NUM, False, _positive),
    "max_per_enc": (_NUM, False, _positive),
    "period_limit": (_DICT, False, _period),
    "includes": (_LIST, False, _str_list),
    "components": (_LIST, False, _str_list),
    "min_components": (_INT, False, _positive),
    "price_cap": (_NUM, False, _positive),
    "insutypes": (_LIST, False, _str_list),
    "course_days": (_INT, False, _positive),
    **_DATED,
}

DIAGNOSIS_SPEC: Spec = {
    "code": (_STR, True, None),
    "name": (_STR, True, None),
    "name_en": (_STR, True, None),
    "prefix": (_BOOL, False, None),
    "sex": (_STR, False, _sex),
    "age_min_years": (_INT, False, None),
    "age_max_years": (_INT, False, None),
    "age_max_days": (_INT, False, _positive),
    "group": (_STR, False, None),
    "ref_los": (_INT, False, _positive),
    **_DATED,
}

INTERACTION_SPEC: Spec = {
    "a": (_STR, True, None),
    "b": (_STR, True, None),
    "kind": (_STR, True, _one_of("drug", "herb")),
    "severity": (_STR, True, _one_of("major", "moderate", "contraindicated")),
    "effect_zh": (_STR, True, None),
    "effect_en": (_STR, True, None),
    "basis": (_STR, True, None),
    **_DATED,
}

TABLES: dict[str, Spec] = {
    "drugs": DRUG_SPEC,
    "services": SERVICE_SPEC,
    "diagnoses": DIAGNOSIS_SPEC,
    "interactions": INTERACTION_SPEC,
}

# Row attribute → feature tag. A rule family that needs a tag is skipped for an
# event none of whose lines carries that attribute (the main hot-path saving).
FEATURES = {
    "sex": "sex", "child_only": "age", "neonate_only": "age", "min_age_years": "age",
    "indications": "indication", "second_line": "second_line", "min_level": "level",
    "settings": "setting", "departments": "setting", "max_days": "max_days",
    "max_daily_qty": "daily_qty", "price_cap": "price_cap", "insutypes": "insutype",
    "course_days": "course", "herb_single_unpaid": "herb_pay", "herb_never_paid": "herb_pay",
    "max_per_day": "frequency", "max_per_enc": "frequency", "period_limit": "period",
    "includes": "bundled", "components": "bundle_part",
}

DX_FEATURES = {"sex": "dx_sex", "age_min_years": "dx_age", "age_max_years": "dx_age", "age_max_days": "dx_age"}
# Tags the KB derives across rows at load (KB.load): included in a bundle, a bundle's part,
# a non-selected product with a volume-procured alternative, an ingredient with interactions,
# a drug whose class has other ingredients (shared_classes; R20), a bed fee.
DERIVED_TAGS = frozenset({"bundled", "bundle_part", "vbp_alt", "interacting", "bed", "shared_class"})
ROW_TAGS = frozenset(FEATURES.values()) | frozenset(DX_FEATURES.values()) | DERIVED_TAGS

# Tags as bits: the engine gates rules with one int AND per event instead of set
# operations. A tag gets its bit the first time it is named (a family's needs, a
# row's features, an encounter type), so any tag string works.
TAG_BITS: dict[str, int] = {}


def tag_bit(tag: str) -> int:
    bit = TAG_BITS.get(tag)
    if bit is None:
        bit = TAG_BITS[tag] = 1 << len(TAG_BITS)
    return bit


def tag_mask(tags: Any) -> int:
    mask = 0
    for tag in tags:
        mask |= tag_bit(tag)
    return mask


def mask_tags(mask: int) -> set[str]:
    return {tag for tag, bit in TAG_BITS.items() if mask & bit}


def validate_row(table: str, spec: Spec, row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a row must be an object")
    unknown = set(row) - set(spec)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {sorted(unknown)} (allowed: {sorted(spec)})")
    for name, (types, required, check) in spec.items():
        if name not in row or row[name] is None:
            if required:
                raise DataError(f"{where}: missing required field {name!r}")
            continue
        value = row[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise DataError(f"{where}: field {name!r}={value!r} must be {'/'.join(t.__name__ for t in types)}")
        if isinstance(value, str) and not value.strip() and required:
            raise DataError(f"{where}: field {name!r} is empty")
        if check is not None:
            msg = check(value)
            if msg:
                raise DataError(f"{where}: field {name!r}={value!r} {msg}")
    row["_from"], row["_to"] = effective_days(row, where)
    row["_t"] = "d" if table == "drugs" else table[0]
    feats = frozenset(tag for attr, tag in FEATURES.items() if row.get(attr))
    if table == "diagnoses":
        feats = frozenset(tag for attr, tag in DX_FEATURES.items() if row.get(attr) is not None)
    row["_f"] = feats


class Dated:
    """code → the versions of a row, each in force over [_from, _to]."""

    __slots__ = ("_one", "_many")

    def __init__(self) -> None:
        self._one: dict[str, dict[str, Any]] = {}
        self._many: dict[str, list[dict[str, Any]]] = {}

    def add(self, key: str, row: dict[str, Any], where: str) -> None:
        versions = self._many.get(key)
        if versions is None:
            prev = self._one.get(key)
            versions = [prev] if prev is not None else []
        for v in versions:
            if v["_from"] <= row["_to"] and row["_from"] <= v["_to"]:
                raise DataError(f"{where}: {key!r} overlaps another version in force over the same dates")
        versions.append(row)
        if len(versions) == 1:
            self._one[key] = row
        else:
            self._one.pop(key, None)
            versions.sort(key=lambda r: r["_from"])
            self._many[key] = versions

    def get(self, key: str, day: int) -> dict[str, Any] | None:
        row = self._one.get(key)
        if row is not None:
            return row if row["_from"] <= day <= row["_to"] else None
        versions = self._many.get(key)
        if versions:
            for row in versions:
                if row["_from"] <= day <= row["_to"]:
                    return row
        return None

    def __contains__(self, key: str) -> bool:
        return key in self._one or key in self._many

    def rows(self) -> list[dict[str, Any]]:
        out = list(self._one.values())
        for versions in self._many.values():
            out.extend(versions)
        return out


def _read_table(path: pathlib.Path, table: str) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: knowledge-base table {table!r} is missing") from None
    return _parse_table(data, str(path), table)


def _parse_table(data: bytes, where: str, table: str) -> list[dict[str, Any]]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("table") != table or not isinstance(doc.get("rows"), list):
        raise DataError(f'{where}: expected {{"table": "{table}", "version": ..., "rows": [...]}}')
    return doc["rows"]


class KB:
    """Indexes over the dated catalogue rows. Read-only after ``load``."""

    def __init__(self) -> None:
        self.drugs = Dated()        # code → drug row
        self.services = Dated()     # code → service/consumable row
        self.diagnoses = Dated()    # code → diagnosis row
        self.dx_prefixes: list[dict[str, Any]] = []   # chapter rows (prefix: true), longest first
        self.by_ingredient: dict[str, list[dict[str, Any]]] = {}
        self.by_class: dict[str, list[dict[str, Any]]] = {}
        self.interactions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.bundles: list[dict[str, Any]] = []       # service rows with components
        self.included_by: dict[str, list[str]] = {}   # code → codes whose content includes it
        self._dx_cache: dict[str, tuple[dict[str, Any], ...]] = {}
        self._breaks: list[int] = []                  # days where some row comes into or goes out of force
        self._segments: dict[int, Snapshot] = {}      # date segment (index into _breaks) → its snapshot
        # snapshot(day): the catalogue in force on ``day``, the same object for every day of a date
        # segment (the days between two consecutive effective_from / effective_to boundaries of any
        # row); remembered per day (a lookup, no Python frame, at every event).
        self.snapshot: Callable[[int], Snapshot] = Memo(self._segment_snapshot, 100_000).__getitem__
        self.class_of: dict[str, str] = {}
        self.shared_classes: frozenset[str] = frozenset()
        self.one: dict[str, dict[str, Any]] = {}
        self.first_line_classes: frozenset[str] = frozenset()
        self.interacting: frozenset[str] = frozenset()
        self.partners: dict[str, frozenset[str]] = {}  # ingredient → ingredients it has an interaction row with

    # -- loading -----------------------------------------------------------
    @classmethod
    def load(cls, kb_dir: pathlib.Path) -> "KB":
        return cls._load({table: (kb_dir / f"{table}.json", _read_table(kb_dir / f"{table}.json", table))
                          for table in TABLES})

    @classmethod
    def from_bytes(cls, tables: dict[str, bytes]) -> "KB":
        """A KB from its table files' contents, ``{table name: JSON bytes}`` (an uploaded bundle's ``kb/``)."""
        parsed = {}
        for table in TABLES:
            name = f"kb/{table}.json"
            if table not in tables:
                raise DataError(f"{name}: knowledge-base table {table!r} is missing")
            parsed[table] = (pathlib.Path(name), _parse_table(tables[table], name, table))
        return cls._load(parsed)

    @classmethod
    def _load(cls, tables: dict[str, tuple[pathlib.Path, list[dict[str, Any]]]]) -> "KB":
        kb = cls()
        for table, spec in TABLES.items():
            path, rows = tables[table]
            for i, row in enumerate(rows):
                key = row.get("code") if isinstance(row, dict) else None
                if key is None and isinstance(row, dict) and "a" in row:
                    key = f"{row.get('a')}+{row.get('b')}"
                validate_row(table, spec, row, f"{path.name} row {i} ({key})")
        kb._index(tables)
        return kb

    def _index(self, tables: dict[str, tuple[pathlib.Path, list[dict[str, Any]]]]) -> None:
        path, rows = tables["drugs"]
        for i, row in enumerate(rows):
            self.drugs.add(row["code"], row, f"{path.name} row {i} ({row['code']})")
            self.by_ingredient.setdefault(row["ingredient"], []).append(row)
            self.by_class.setdefault(row["class"], []).append(row)
        path, rows = tables["services"]
        for i, row in enumerate(rows):
            where = f"{path.name} row {i} ({row['code']})"
            if row["code"] in self.drugs:
                raise DataError(f"{where}: code is also a drug code")
            self.services.add(row["code"], row, where)
            if row.get("components"):
                if not row.get("min_components") or row["min_components"] > len(row["components"]):
                    raise DataError(f"{where}: a bundle needs min_components between 1 and len(components)")
                self.bundles.append(row)
        for i, row in enumerate(rows):
            where = f"{path.name} row {i} ({row['code']})"
            for field in ("includes", "components"):
                for ref in row.get(field) or ():
                    if ref not in self.services:
                        raise DataError(f"{where}: {field} names unknown service code {ref!r}")
                    if ref == row["code"]:
                        raise DataError(f"{where}: {field} names the row itself")
        path, rows = tables["diagnoses"]
        for i, row in enumerate(rows):
            where = f"{path.name} row {i} ({row['code']})"
            if row.get("prefix"):
                self.dx_prefixes.append(row)
            else:
                self.diagnoses.add(row["code"], row, where)
            amin, amax = row.get("age_min_years"), row.get("age_max_years")
            if amin is not None and amax is not None and amin > amax:
                raise DataError(f"{where}: age_min_years {amin} > age_max_years {amax}")
        self.dx_prefixes.sort(key=lambda r: -len(r["code"]))
        path, rows = tables["interactions"]
        for i, row in enumerate(rows):
            where = f"{path.name} row {i} ({row['a']}+{row['b']})"
            for side in ("a", "b"):
                if row[side] not in self.by_ingredient:
                    raise DataError(f"{where}: {side}={row[side]!r} is no ingredient in drugs.json")
            if row["a"] == row["b"]:
                raise DataError(f"{where}: a and b are the same ingredient")
            self.interactions.setdefault((row["a"], row["b"]), []).append(row)
            self.interactions.setdefault((row["b"], row["a"]), []).append(row)
        for ing, group in self.by_ingredient.items():
            classes = {r["class"] for r in group}
            if len(classes) > 1:
                raise DataError(f"drugs.json: ingredient {ing!r} is filed under several classes {sorted(classes)}")
        # Feature tags that depend on other rows: the partner of a bundled pair or
        # a bundle component; a non-selected product with a selected (集采) alternative.
        for r in self.services.rows():
            for c in r.get("includes") or ():
                parents = self.included_by.setdefault(c, [])
                if r["code"] not in parents:
                    parents.append(r["code"])
        included = set(self.included_by)
        parts = {c for r in self.services.rows() for c in r.get("components") or ()}
        for row in self.services.rows():
            extra = set()
            if row["code"] in included:
                extra.add("bundled")
            if row["code"] in parts:
                extra.add("bundle_part")
            if row["category"] == "bed":
                extra.add("bed")  # bed fees: one a day across bed types, no more than the nights (R40)
            if extra:
                row["_f"] = row["_f"] | extra
        selected: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in self.drugs.rows():
            if r.get("vbp_selected"):
                selected.setdefault((r["ingredient"], r["form"]), []).append(r)
        for row in self.drugs.rows():
            alts = selected.get((row["ingredient"], row["form"]))
            if row.get("vbp_selected") is False and alts:
                row["_f"] = row["_f"] | {"vbp_alt"}
                row["_vbp"] = tuple(sorted(alts, key=lambda r: r["code"]))
        self.class_of = {ing: group[0]["class"] for ing, group in self.by_ingredient.items()}
        counts: dict[str, int] = {}
        for cls in self.class_of.values():
            counts[cls] = counts.get(cls, 0) + 1
        # Classes of two or more ingredients: only there can two ingredients of one class meet (R20).
        self.shared_classes = frozenset(cls for cls, n in counts.items() if n > 1)
        self.one = {**self.drugs._one, **self.services._one}  # code → row when the code has one version
        self.first_line_classes = frozenset(c for r in self.drugs.rows() for c in r.get("first_line_classes") or ())
        self.interacting = frozenset(i for pair in self.interactions for i in pair)
        partners: dict[str, set[str]] = {}
        for a, b in self.interactions:
            partners.setdefault(a, set()).add(b)
        self.partners = {a: frozenset(bs) for a, bs in partners.items()}
        for row in self.drugs.rows():
            if row["ingredient"] in self.interacting:
                row["_f"] = row["_f"] | {"interacting"}
            if row["class"] in self.shared_classes:
                row["_f"] = row["_f"] | {"shared_class"}
        dated = self.drugs.rows() + self.services.rows() + self.diagnoses.rows() + self.dx_prefixes
        for row in dated:
            row["_m"] = tag_mask(row["_f"])  # the row's feature tags as bits (see TAG_BITS)
        self._breaks = sorted({r["_from"] for r in dated} | {r["_to"] + 1 for r in dated})
        # Row-level cross checks that need the indexes.
        for row in self.drugs.rows():
            for cls_code in row.get("first_line_classes") or ():
                if cls_code not in self.by_class:
                    raise DataError(f"drugs.json ({row['code']}): first_line_classes names unknown class {cls_code!r}")

    # -- lookups (hot path) ---------------------------------------------------
    def _segment_snapshot(self, day: int) -> "Snapshot":
        """The snapshot of ``day``'s date segment (see ``snapshot``), made on the segment's first day."""
        seg = bisect_right(self._breaks, day)
        snap = self._segments.get(seg)
        if snap is None:
            snap = self._segments[seg] = Snapshot(self, day)
        return snap

    def item(self, code: str, kind: str, day: int) -> dict[str, Any] | None:
        if kind == "drug" or kind == "herb":
            return self.drugs.get(code, day)
        row = self.services.get(code, day)
        if row is None and len(code) == CONSUMABLE_BASE and code[0] == "C":
            row = self.snapshot(day).services.get(code)  # a 20-character base code (Snapshot._index)
        return row

    def diagnosis(self, code: str, day: int) -> dict[str, Any] | None:
        """Most specific row in force: exact, 'X00.0', 'X00', then chapter prefix rows."""
        cands = self._dx_cache.get(code)
        if cands is None:
            cands = self._dx_candidates(code)
        for row in cands:
            if row["_from"] <= day <= row["_to"]:
                return row
        return None

    def _dx_candidates(self, code: str) -> tuple[dict[str, Any], ...]:
        keys = [code]
        if len(code) > 5:
            keys.append(code[:5])
        if len(code) > 3:
            keys.append(code[:3])
        cands: list[dict[str, Any]] = []
        for key in keys:
            one = self.diagnoses._one.get(key)
            if one is not None:
                cands.append(one)
            cands.extend(self.diagnoses._many.get(key, ()))
        cands.extend(pr for pr in self.dx_prefixes if code.startswith(pr["code"]))
        out = tuple(cands)
        if len(self._dx_cache) < 100_000:
            self._dx_cache[code] = out
        return out

    def interaction(self, a: str, b: str, day: int) -> dict[str, Any] | None:
        for row in self.interactions.get((a, b), ()):
            if row["_from"] <= day <= row["_to"]:
                return row
        return None

    # -- search (admin UI) --------------------------------------------------
    def search_items(self, q: str, limit: int, day: int | None = None) -> list[dict[str, Any]]:
        q = q.strip().lower()
        out = []
        for table, dated in (("drugs", self.drugs), ("services", self.services)):
            for row in sorted(dated.rows(), key=lambda r: (r["code"], r["_from"])):
                if q in row["code"].lower() or q in row["name"].lower() or q in row.get("name_en", "").lower():
                    out.append(public_row(table, row))
                    if len(out) >= limit:
                        return out
        return out

    def search_diagnoses(self, q: str, limit: int) -> list[dict[str, Any]]:
        q = q.strip().lower()
        out = []
        rows = sorted(self.diagnoses.rows() + self.dx_prefixes, key=lambda r: (r["code"], r["_from"]))
        for row in rows:
            if q in row["code"].lower() or q in row["name"].lower() or q in row["name_en"].lower():
                out.append(public_row("diagnoses", row))
                if len(out) >= limit:
                    break
        return out


CONSUMABLE_CODE, CONSUMABLE_BASE = 27, 20  # national consumable code: 20-character base + 7-digit serial


class Snapshot:
    """Item and diagnosis lookups for one date segment, each one dict hit.

    ``by_kind[kind]`` is ``(code → row in force, the kind's tag bit)``: drugs for
    drug/herb lines, services and consumables otherwise (as :meth:`KB.item`);
    ``dx(code)`` is :meth:`KB.diagnosis` on the segment's days, remembered per code.
    """

    __slots__ = ("kb", "day", "drugs", "services", "by_kind", "dx")

    def __init__(self, kb: KB, day: int) -> None:
        self.kb = kb
        self.day = day  # any day of the segment: every row is in force on all of its days or none
        self.drugs = self._index(kb.drugs, day)
        self.services = self._index(kb.services, day)
        self.by_kind = {
            "drug": (self.drugs, tag_bit("drug")), "herb": (self.drugs, tag_bit("herb")),
            "service": (self.services, tag_bit("service")), "consumable": (self.services, tag_bit("consumable")),
        }
        self.dx: Callable[[str], dict[str, Any] | None] = Memo(lambda code: kb.diagnosis(code, day), 100_000).__getitem__

    @staticmethod
    def _index(table: Dated, day: int) -> dict[str, dict[str, Any]]:
        """Code → row in force. A consumable's national 27-character code is also found by its
        20-character base (分类 + 通用名 + 特征 + 企业, without the 7-digit serial) when one product in
        force has that base: a HIS that sends the base code is not told 目录外."""
        out = {}
        bases: dict[str, dict[str, Any] | None] = {}
        for code in (*table._one, *table._many):
            row = table.get(code, day)
            if row is not None:
                out[code] = row
                if len(code) == CONSUMABLE_CODE and code[0] == "C":
                    base = code[:CONSUMABLE_BASE]
                    bases[base] = None if base in bases else row  # None: ambiguous
        for base, row in bases.items():
            if row is not None and base not in out:
                out[base] = row
        return out

    def kind(self, kind: str) -> tuple[dict[str, dict[str, Any]], int]:
        """``by_kind[kind]``, also for a kind outside the four (looked up among services, as KB.item does)."""
        entry = self.by_kind.get(kind)
        return entry if entry is not None else (self.services, tag_bit(kind))



def public_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    out["table"] = table
    return out
