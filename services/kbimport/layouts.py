"""The national code tables: which column headings feed which catalogue field, and row checks.

Headings are those of the NHSA downloads (docs/rules.md, "Importing a catalogue edition"): the
public Excel tables (医保药品分类与代码 总表, 医疗服务项目分类与代码, 医用耗材分类与代码,
ICD-10 医保版) and the 13xx interface files' field names (1301, 1305, 1306, 1307) where a bureau
has put them in a heading row. Each field lists the headings it accepts, first match wins.

A layout owns the *national* attributes of a row (name, form, manufacturer, unit, …): an import
sets them. Everything else in a catalogue row — restriction attributes (limits, flags,
indications), English names, our ingredient keys and categories — is ours and survives an
import (``edition.merge``). For a code the current edition does not know, ``complete`` derives
what the catalogue requires from related rows (same drug name code, same class, longest shared
service-code prefix) or, failing that, from the row itself, and says so in the report.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.kbimport.sheets import normalise_heading


class RowError(ValueError):
    """A row that cannot be imported: ``field`` is the column at fault (a column name of the layout,
    which the reader turns into the file's own heading, or a heading)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Column:
    name: str
    headings: tuple[str, ...]
    required: bool = True


@dataclass
class Derived:
    """What ``complete`` had to make up for new codes (reported, so someone can fill it in)."""

    name_en_from_name: list[str] = field(default_factory=list)
    ingredient_new: list[str] = field(default_factory=list)
    class_name_from_code: list[str] = field(default_factory=list)
    category_guessed: list[str] = field(default_factory=list)
    unit_default: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


Extract = Callable[[dict[str, str]], list[tuple[str, dict[str, Any]]]]
Complete = Callable[[str, dict[str, Any], "Related", Derived], dict[str, Any]]


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    table: str
    columns: tuple[Column, ...]
    national: tuple[str, ...]
    in_scope: Callable[[dict[str, Any]], bool]
    extract: Extract
    complete: Complete

    @property
    def key_headings(self) -> set[str]:
        return {normalise_heading(h) for h in self.columns[0].headings}

    def resolve(self, headings: list[str], where: str) -> dict[str, int]:
        """Column name → index in the heading row; a missing required column is named."""
        index = {h: i for i, h in reversed(list(enumerate(headings))) if h}
        out: dict[str, int] = {}
        for col in self.columns:
            for heading in col.headings:
                i = index.get(normalise_heading(heading))
                if i is not None:
                    out[col.name] = i
                    break
            else:
                if col.required:
                    alts = " or ".join(col.headings)
                    raise RowError(col.headings[0], f"{where}: missing column {col.headings[0]!r} "
                                                    f"(a {self.title} table has {alts})")
        return out


class Related:
    """Lookups over the current edition's rows for completing new codes."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.by_code: dict[str, dict[str, Any]] = {}
        for r in rows:
            key = r.get("code")
            if key is not None:
                self.by_code[key] = r  # the last version of a code (rows are in date order per code)
        self.by_prefix: dict[str, dict[str, Any]] = {}
        self.class_name: dict[str, str] = {}
        self._categories: dict[tuple[str, str], Counter[str]] = {}  # (kind, code prefix) → categories
        for r in rows:
            code = r.get("code", "")
            if "ingredient" in r:
                self.by_prefix.setdefault(drug_name_key(code), r)
                self.class_name.setdefault(r["class"], r["class_name"])
            if "category" in r:
                for n in range(4, len(code)):
                    self._categories.setdefault((r["kind"], code[:n]), Counter())[r["category"]] += 1

    def category(self, code: str, kind: str) -> str | None:
        """The most common category among same-kind rows sharing the longest code prefix (≥ 4 characters)."""
        for n in range(len(code) - 1, 3, -1):
            cats = self._categories.get((kind, code[:n]))
            if cats:
                return cats.most_common(1)[0][0]
        return None


# -- drugs: 医保药品分类与代码 (western X…, 23 characters; Chinese patent Z…, 20) --------------------
DRUG_CODE = re.compile(r"^(X[A-Z0-9]{22}|Z[A-Z0-9]{19}([A-Z0-9]{3})?)$")  # Z: 20 (published); 23 also seen


def drug_name_key(code: str) -> str:
    """The part of a drug code naming the medicine: X + class (5) + name (4); Z + class (5) + name (5)."""
    return code[:10] if code.startswith("X") else code[:11]


def _drug_extract(rec: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    code = rec["code"]
    if not DRUG_CODE.match(code):
        raise RowError("code", f"{code!r} is not a drug code (X + 22 letters/digits, or Z + 19)")
    nat: dict[str, Any] = {"name": rec["name"], "type": "western" if code[0] == "X" else "patent",
                           "form": rec["form"], "manufacturer": rec["manufacturer"], "unit": rec["unit"]}
    if code[0] == "X":
        nat["class"] = code[1:6]  # the ATC-like 类别码; Chinese patent medicines keep our class (ZC01 …)
    return [(code, nat)]


def _drug_complete(code: str, nat: dict[str, Any], rel: Related, derived: Derived) -> dict[str, Any]:
    sibling = rel.by_prefix.get(drug_name_key(code))
    row = {"code": code, **nat}
    if "class" not in row:
        row["class"] = sibling["class"] if sibling is not None else code[:4]
    if sibling is not None:
        row["ingredient"] = sibling["ingredient"]
        row["name_en"] = sibling["name_en"]
    else:
        row["ingredient"] = drug_name_key(code)  # the drug-name part of the code: stable across editions
        derived.ingredient_new.append(code)
        row["name_en"] = nat["name"]
        derived.name_en_from_name.append(code)
    class_name = rel.class_name.get(row["class"])
    if class_name is None:
        class_name = row["class"]
        derived.class_name_from_code.append(code)
    row["class_name"] = class_name
    return row


DRUGS = Layout(
    name="drugs", title="医保药品分类与代码", table="drugs",
    columns=(
        Column("code", ("药品代码", "医疗目录编码", "国家药品代码")),
        Column("name", ("注册名称", "药品通用名", "医保药品名称")),
        Column("form", ("剂型", "实际剂型", "药品剂型名称", "注册剂型", "医保剂型")),
        Column("manufacturer", ("生产企业", "生产企业名称", "药品企业")),
        Column("unit", ("最小制剂单位", "最小制剂单位名称", "最小使用单位")),
        Column("valid", ("有效标志",), required=False),
    ),
    national=("name", "type", "class", "form", "manufacturer", "unit"),
    in_scope=lambda r: r.get("type") in ("western", "patent"),
    extract=_drug_extract, complete=_drug_complete,
)


# -- services: 医疗服务项目分类与代码 ------------------------------------------------------------
SERVICE_CODE = re.compile(r"^[0-9]{9,20}$")


def _service_extract(rec: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    code = rec["code"]
    if not SERVICE_CODE.match(code):
        raise RowError("code", f"{code!r} is not a service code (9 to 20 digits, e.g. 001102000010000)")
    return [(code, {"name": rec["name"], "kind": "service", "unit": rec["unit"]})]


def _service_complete(code: str, nat: dict[str, Any], rel: Related, derived: Derived) -> dict[str, Any]:
    category = rel.category(code, nat["kind"])
    if category is None:
        category = "other"
    derived.category_guessed.append(code)
    derived.name_en_from_name.append(code)
    return {"code": code, **nat, "name_en": nat["name"], "category": category}


SERVICES = Layout(
    name="services", title="医疗服务项目分类与代码", table="services",
    columns=(
        Column("code", ("医疗目录编码", "国家项目代码", "项目代码", "项目编码", "结算传输编码", "编码")),
        Column("name", ("医疗服务项目名称", "国家项目名称", "项目名称")),
        Column("unit", ("计价单位名称", "计价单位")),
        Column("valid", ("有效标志",), required=False),
    ),
    national=("name", "kind", "unit"),
    in_scope=lambda r: r.get("kind") == "service",
    extract=_service_extract, complete=_service_complete,
)


# -- consumables: 医用耗材分类与代码 (C…, 20 characters, or 27 with the serial number) ------------------
CONSUMABLE_CODE = re.compile(r"^C[0-9A-Z]{19}([0-9]{7})?$")
DEFAULT_CONSUMABLE_UNIT = "个"


def _consumable_extract(rec: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    code = rec["code"]
    if not CONSUMABLE_CODE.match(code):
        raise RowError("code", f"{code!r} is not a consumable code (C + 19 characters, or 26 with the serial)")
    nat: dict[str, Any] = {"name": rec["name"], "kind": "consumable"}
    if rec.get("unit"):
        nat["unit"] = rec["unit"]
    return [(code, nat)]


def _consumable_complete(code: str, nat: dict[str, Any], rel: Related, derived: Derived) -> dict[str, Any]:
    row = {"code": code, **nat, "name_en": nat["name"], "category": "material"}
    derived.name_en_from_name.append(code)
    if "unit" not in row:
        row["unit"] = DEFAULT_CONSUMABLE_UNIT
        derived.unit_default.append(code)
    return row


CONSUMABLES = Layout(
    name="consumables", title="医用耗材分类与代码", table="services",
    columns=(
        Column("code", ("耗材代码", "医疗目录编码", "医保耗材代码", "医保耗材分类编码")),
        Column("name", ("医保通用名", "耗材名称", "单件产品名称")),
        Column("unit", ("最小使用单位", "包装单位", "计价单位"), required=False),
        Column("valid", ("有效标志",), required=False),
    ),
    national=("name", "kind", "unit"),
    in_scope=lambda r: r.get("kind") == "consumable",
    extract=_consumable_extract, complete=_consumable_complete,
)


# -- diagnoses: ICD-10 医保版 (诊断代码; 类目 and 亚目 rows too, so 3- and 4-character lookups work) ---
DX_CODE = re.compile(r"^[A-Z][0-9]{2}(\.[0-9x]{1,3}(x[0-9]{3})?)?(\+[A-Z][0-9]{2}(\.[0-9x]{1,4})?\*)?$")


def _dx_extract(rec: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for code_key, name_key in (("category_code", "category_name"), ("subcategory_code", "subcategory_name"),
                               ("code", "name")):
        code = rec.get(code_key) or ""
        if not code:
            continue
        if not DX_CODE.match(code):
            raise RowError(code_key, f"{code!r} is not an ICD-10 code (e.g. E11, E11.9, E11.900, E11.900x001)")
        name = rec.get(name_key) or ""
        if not name:
            raise RowError(name_key, f"empty for {code}")
        out.append((code, {"name": name}))
    return out


def _dx_complete(code: str, nat: dict[str, Any], rel: Related, derived: Derived) -> dict[str, Any]:
    derived.name_en_from_name.append(code)
    return {"code": code, **nat, "name_en": nat["name"]}


ICD10 = Layout(
    name="icd10", title="ICD-10 医保版 (疾病诊断分类与代码)", table="diagnoses",
    columns=(
        Column("code", ("诊断代码", "疾病诊断代码", "西医疾病诊断代码", "疾病代码")),
        Column("name", ("诊断名称", "疾病诊断名称", "西医疾病诊断名称", "疾病名称")),
        Column("category_code", ("类目代码",), required=False),
        Column("category_name", ("类目名称",), required=False),
        Column("subcategory_code", ("亚目代码",), required=False),
        Column("subcategory_name", ("亚目名称",), required=False),
        Column("valid", ("有效标志",), required=False),
    ),
    national=("name",),
    in_scope=lambda r: not r.get("prefix"),
    extract=_dx_extract, complete=_dx_complete,
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (DRUGS, SERVICES, CONSUMABLES, ICD10)}
