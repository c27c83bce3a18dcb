"""``presettle kb import``: sample national tables in each layout (CSV and XLSX) → a new edition and its diff.

The samples are made here from the packaged catalogue with known edits (a code dropped, an
attribute changed, codes added), laid out under the headings of the NHSA downloads; each test
checks the diff, the dated rows of the new edition (old row ends the day before, the new one
carries our restriction attributes), and that the service's loader reads the new bundle.
"""

from __future__ import annotations

import csv
import json
import pathlib
import zipfile
from typing import Any
from xml.sax.saxutils import escape

import pytest

from services import cli
from services.kbimport.sheets import read_rows
from services.rules.engine import DEFAULT_DATA, Engine
from services.rules.timeutil import day_of_date

EFFECTIVE = "2026-07-01"
# 医保药品分类与代码 总表 (public Excel), in order.
DRUG_HEADINGS = ["药品代码", "数据来源", "注册名称", "商品名称", "注册剂型", "剂型", "注册规格", "规格", "包装材质",
                 "最小包装数量", "最小制剂单位", "最小包装单位", "药品企业", "分包装企业名称", "生产企业", "批准文号",
                 "原批准文号", "药品本位码", "上市药品持有人", "市场状态", "医保药品名称", "2025版甲乙类", "医保剂型",
                 "编号", "备注", "曾用码"]
# 1305 file fields (a bureau's export with a heading row).
SERVICE_HEADINGS = ["医疗目录编码", "计价单位", "计价单位名称", "诊疗项目说明", "诊疗除外内容", "诊疗项目内涵",
                    "有效标志", "备注", "服务项目类别", "医疗服务项目名称", "项目说明", "开始日期", "结束日期",
                    "唯一记录号", "版本号", "版本名称"]
# 医用耗材分类与代码 (public Excel).
CONSUMABLE_HEADINGS = ["耗材代码", "一级分类", "二级分类", "三级分类", "医保通用名", "材质", "特征", "注册备案号",
                       "单件产品名称", "耗材企业", "规格型号数", "注册备案人"]
# ICD-10 医保版 2.0.
ICD_HEADINGS = ["章", "章代码范围", "章的名称", "节代码范围", "节名称", "类目代码", "类目名称", "亚目代码", "亚目名称",
                "诊断代码", "诊断名称"]


def current(table: str) -> list[dict[str, Any]]:
    return json.loads((DEFAULT_DATA / "kb" / f"{table}.json").read_text(encoding="utf-8"))["rows"]


def in_force(rows: list[dict[str, Any]], code: str, day: str) -> list[dict[str, Any]]:
    d = day_of_date(day)
    return [r for r in rows if r["code"] == code and day_of_date(r["effective_from"]) <= d
            and (not r.get("effective_to") or d <= day_of_date(r["effective_to"]))]


def drug_record(row: dict[str, Any]) -> dict[str, str]:
    return {"药品代码": row["code"], "数据来源": "国家", "注册名称": row["name"], "商品名称": "", "注册剂型": row["form"],
            "剂型": row["form"], "规格": "10mg", "最小制剂单位": row["unit"], "最小包装单位": "盒",
            "药品企业": row["manufacturer"], "生产企业": row["manufacturer"], "市场状态": "上市",
            "医保药品名称": row["name"], "2025版甲乙类": "甲"}


def write_csv(path: pathlib.Path, headings: list[str], records: list[dict[str, str]], encoding: str = "utf-8-sig") -> None:
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(headings)
        for rec in records:
            w.writerow([rec.get(h, "") for h in headings])


def write_xlsx(path: pathlib.Path, rows: list[list[Any]]) -> None:
    """A minimal XLSX as Excel writes it: shared strings for text (inline strings every other row), numbers as <v>."""
    shared: list[str] = []
    sheet_rows = []
    for r, cells in enumerate(rows, 1):
        xml_cells = []
        for c, value in enumerate(cells):
            ref = f"{chr(65 + c) if c < 26 else 'A' + chr(65 + c - 26)}{r}"
            if value is None or value == "":
                continue
            if isinstance(value, (int, float)):
                xml_cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            elif r % 2:
                shared.append(str(value))
                xml_cells.append(f'<c r="{ref}" t="s"><v>{len(shared) - 1}</v></c>')
            else:
                xml_cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>')
        sheet_rows.append(f'<row r="{r}">{"".join(xml_cells)}</row>')
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel_ns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                    'package/2006/content-types"/>')
        zf.writestr("xl/workbook.xml", f'<?xml version="1.0"?><workbook {ns} {rel_ns}><sheets>'
                    '<sheet name="总表" sheetId="1" r:id="rId1"/><sheet name="新增" sheetId="2" r:id="rId2"/>'
                    '</sheets></workbook>')
        zf.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                    'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="worksheet" '
                    'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="worksheet" '
                    'Target="worksheets/sheet2.xml"/></Relationships>')
        zf.writestr("xl/worksheets/sheet1.xml", f'<?xml version="1.0"?><worksheet {ns}><sheetData>'
                    f'{"".join(sheet_rows)}</sheetData></worksheet>')
        zf.writestr("xl/worksheets/sheet2.xml", f'<?xml version="1.0"?><worksheet {ns}><sheetData/></worksheet>')
        zf.writestr("xl/sharedStrings.xml", f'<?xml version="1.0"?><sst {ns}>'
                    + "".join(f"<si><t>{escape(s)}</t></si>" for s in shared) + "</sst>")


def run_import(*args: str) -> int:
    return cli.main(["kb", "import", *args])


def load_report(out: pathlib.Path) -> dict[str, Any]:
    (path,) = out.glob("kb-import-*.json")
    return json.loads(path.read_text(encoding="utf-8"))


# -- drugs, CSV ------------------------------------------------------------------------------
def test_a_drug_edition_from_csv_keeps_our_restrictions(tmp_path: pathlib.Path, capsys) -> None:
    rows = [r for r in current("drugs") if r["type"] in ("western", "patent") and not r.get("effective_to")]
    dropped = "XC08CAH001A001010100100"  # an amlodipine product, no longer listed
    moved = "XC08CAH001A001010100137"  # amlodipine by another maker: the maker's name changes
    before = next(r for r in rows if r["code"] == moved)
    assert before.get("max_days") and before.get("vbp_selected") and before.get("price_cap")
    records = [drug_record(r) for r in rows if r["code"] != dropped]
    for rec in records:
        if rec["药品代码"] == moved:
            rec["生产企业"] = "浙江京新药业股份有限公司(新)"
    sibling = "XC08CAH001A001010199999"  # a new maker of amlodipine tablets: same name code
    brand_new = "XN05AXQ901A001010100001"  # a medicine the catalogue has not seen
    records.append(drug_record(dict(before, code=sibling, manufacturer="新药厂")))
    records.append({"药品代码": brand_new, "注册名称": "新药片", "剂型": "片剂", "最小制剂单位": "片",
                    "生产企业": "某药业有限公司"})
    sample = tmp_path / "医保药品分类与代码.csv"
    write_csv(sample, DRUG_HEADINGS, records)
    out = tmp_path / "bundle"
    assert run_import(str(sample), "--table", "drugs", "--effective", EFFECTIVE, "--out", str(out)) == 0
    report = load_report(out)
    assert report["counts"] == {"added": 2, "relisted": 0, "changed": 1, "retired": 1,
                                "unchanged": len(rows) - 2}
    assert [a["code"] for a in report["added"]] == sorted([sibling, brand_new])
    assert [r["code"] for r in report["retired"]] == [dropped]
    (change,) = report["changed"]
    assert change["code"] == moved and change["changes"] == {
        "manufacturer": [before["manufacturer"], "浙江京新药业股份有限公司(新)"]}
    assert report["made_up_for_new_codes"]["ingredient_new"] == [brand_new]
    assert report["edition"] == "2026.07" and report["revision"] != report["source_revision"]
    printed = capsys.readouterr().out
    assert f"- {dropped}" in printed and f"~ {moved}" in printed and "1 retired" in printed

    new = json.loads((out / "kb" / "drugs.json").read_text(encoding="utf-8"))
    assert new["version"] == "2026.07"
    (old_row,) = in_force(new["rows"], moved, "2026-06-30")
    (new_row,) = in_force(new["rows"], moved, EFFECTIVE)
    assert old_row["effective_to"] == "2026-06-30" and old_row["manufacturer"] == before["manufacturer"]
    assert new_row["manufacturer"] == "浙江京新药业股份有限公司(新)" and new_row["effective_from"] == EFFECTIVE
    for ours in ("max_days", "vbp_selected", "price_cap", "daily_qty", "max_daily_qty", "name_en", "ingredient"):
        assert new_row[ours] == before[ours], ours  # our attributes survive the new edition
    assert in_force(new["rows"], dropped, "2026-06-30") and not in_force(new["rows"], dropped, EFFECTIVE)
    (sib,) = in_force(new["rows"], sibling, EFFECTIVE)
    assert sib["ingredient"] == "amlodipine" and sib["name_en"] == before["name_en"] and "max_days" not in sib
    herbs_before = [r for r in current("drugs") if r["type"] == "herb"]
    assert [r for r in new["rows"] if r["type"] == "herb"] == herbs_before  # outside the table's scope
    engine = Engine.load(out)  # the service's loader reads the new edition
    day = day_of_date(EFFECTIVE)
    assert engine.kb.item(moved, "drug", day)["manufacturer"].endswith("(新)")
    assert engine.kb.item(dropped, "drug", day) is None and engine.kb.item(dropped, "drug", day - 1) is not None


# -- services, CSV in GB18030, increment ----------------------------------------------------------
def test_a_services_increment_from_a_gb18030_csv(tmp_path: pathlib.Path) -> None:
    rows = [r for r in current("services") if r["kind"] == "service" and not r.get("effective_to")]
    renamed = "002501010150000"  # 血细胞分析(血常规)
    records = [{"医疗目录编码": renamed, "计价单位名称": "次", "有效标志": "1",
                "医疗服务项目名称": "血细胞分析(五分类)"},
               {"医疗目录编码": "002503020990000", "计价单位名称": "次", "有效标志": "1",
                "医疗服务项目名称": "连续血糖监测数据分析"},
               {"医疗目录编码": "009999999990000", "计价单位名称": "次", "有效标志": "0",
                "医疗服务项目名称": "已停用项目"}]
    sample = tmp_path / "1305.csv"
    write_csv(sample, SERVICE_HEADINGS, records, encoding="gb18030")
    out = tmp_path / "b"
    assert run_import(str(sample), "--table", "services", "--effective", EFFECTIVE, "--out", str(out),
                      "--increment", "--edition", "2026-Q3") == 0
    report = load_report(out)
    assert report["counts"] == {"added": 1, "relisted": 0, "changed": 1, "retired": 0, "unchanged": 0}
    assert report["rows_invalid_flag"] == 1 and report["mode"] == "increment"
    new_rows = json.loads((out / "kb" / "services.json").read_text(encoding="utf-8"))["rows"]
    (added,) = in_force(new_rows, "002503020990000", EFFECTIVE)
    assert added["category"] == "lab" and added["kind"] == "service"  # from the codes sharing its prefix
    assert len({r["code"] for r in new_rows if r["kind"] == "service" and in_force(new_rows, r["code"], EFFECTIVE)}) \
        == len({r["code"] for r in rows}) + 1  # nothing retired
    (renamed_row,) = in_force(new_rows, renamed, EFFECTIVE)
    assert renamed_row["name"] == "血细胞分析(五分类)"
    assert renamed_row["name_en"] == next(r for r in rows if r["code"] == renamed)["name_en"]
    Engine.load(out)


# -- consumables, XLSX ----------------------------------------------------------------------------
def test_a_consumable_edition_from_xlsx(tmp_path: pathlib.Path) -> None:
    rows = [r for r in current("services") if r["kind"] == "consumable" and not r.get("effective_to")]
    dropped = rows[-1]["code"]
    table = [["国家医保医用耗材分类与代码数据库 (2026年7月)"], CONSUMABLE_HEADINGS]
    for r in rows[:-1]:
        table.append([r["code"], "一级", "二级", "三级", r["name"], "", "", "国械注准20193000000", r["name"],
                      "某企业", 3, "某注册人"])
    table.append(["C0101000011000000000" + "0000002", "一级", "二级", "三级", "一次性使用精密输液器", "", "", "", "",
                  "某企业", 2, ""])
    sample = tmp_path / "耗材.xlsx"
    write_xlsx(sample, table)
    out = tmp_path / "b"
    assert run_import(str(sample), "--table", "consumables", "--effective", EFFECTIVE, "--out", str(out)) == 0
    report = load_report(out)
    assert report["counts"] == {"added": 1, "relisted": 0, "changed": 0, "retired": 1,
                                "unchanged": len(rows) - 1}
    assert report["retired"] == [{"code": dropped, "name": rows[-1]["name"]}]
    assert report["made_up_for_new_codes"]["unit_default"] == ["C01010000110000000000000002"]
    new_rows = json.loads((out / "kb" / "services.json").read_text(encoding="utf-8"))["rows"]
    services_before = [r for r in current("services") if r["kind"] == "service"]
    assert [r for r in new_rows if r["kind"] == "service"] == services_before  # the other scope of the file
    Engine.load(out)


# -- ICD-10 医保版, XLSX, category rows too ------------------------------------------------------
def test_an_icd10_increment_from_xlsx_adds_category_and_diagnosis_rows(tmp_path: pathlib.Path) -> None:
    table = [ICD_HEADINGS,
             ["4", "E00-E90", "内分泌、营养和代谢疾病", "E10-E14", "糖尿病", "E11", "2型糖尿病", "E11.9",
              "2型糖尿病不伴有并发症", "E11.900x001", "2型糖尿病(初诊)"],
             ["22", "U00-U85", "用于特殊目的的编码", "U07-U07", "新疾病的暂时指定", "U07", "新型冠状病毒感染",
              "U07.1", "新型冠状病毒感染(病毒已确定)", "U07.100", "新型冠状病毒感染"]]
    sample = tmp_path / "icd10.xlsx"
    write_xlsx(sample, table)
    out = tmp_path / "b"
    assert run_import(str(sample), "--table", "icd10", "--effective", EFFECTIVE, "--out", str(out), "--increment") == 0
    report = load_report(out)
    known = {r["code"] for r in current("diagnoses")}
    expected_new = {c for c in ("E11", "E11.9", "E11.900x001", "U07", "U07.1", "U07.100") if c not in known}
    assert {a["code"] for a in report["added"]} == expected_new and "U07.100" in expected_new
    assert report["counts"]["retired"] == 0
    engine = Engine.load(out)
    assert engine.kb.diagnosis("U07.100", day_of_date(EFFECTIVE))["name"] == "新型冠状病毒感染"
    assert engine.kb.diagnosis("U07.100", day_of_date(EFFECTIVE) - 1) is None


# -- errors ---------------------------------------------------------------------------------------
def test_a_missing_column_is_named_and_nothing_is_written(tmp_path: pathlib.Path, capsys) -> None:
    sample = tmp_path / "d.csv"
    headings = [h for h in DRUG_HEADINGS if h not in ("生产企业", "药品企业")]
    write_csv(sample, headings, [drug_record(current("drugs")[0])])
    out = tmp_path / "b"
    assert run_import(str(sample), "--table", "drugs", "--effective", EFFECTIVE, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "missing column '生产企业'" in err
    assert not out.exists() and not list(tmp_path.glob(".b-*"))


def test_a_bad_row_is_named_by_number_and_column(tmp_path: pathlib.Path, capsys) -> None:
    rows = [r for r in current("drugs") if r["type"] == "western"][:4]
    records = [drug_record(r) for r in rows]
    records[1]["药品代码"] = "Y123"  # spreadsheet row 3 (the heading is row 1)
    records[3]["生产企业"] = ""  # row 5
    sample = tmp_path / "d.csv"
    write_csv(sample, DRUG_HEADINGS, records)
    assert run_import(str(sample), "--table", "drugs", "--effective", EFFECTIVE, "--out", str(tmp_path / "b")) == 2
    err = capsys.readouterr().err
    assert "row 3, 药品代码: 'Y123' is not a drug code" in err
    assert "row 5, 生产企业: empty" in err


@pytest.mark.parametrize("name, content, message", [
    ("d.xlsx", b"not a zip", "not an XLSX file"),
    ("d.xls", b"\xd0\xcf\x11\xe0", "old binary .xls"),
    ("d.csv", "标题\n其他\n".encode(), "no heading row with"),
])
def test_unreadable_files_get_a_clear_error(tmp_path: pathlib.Path, capsys, name: str, content: bytes,
                                            message: str) -> None:
    sample = tmp_path / name
    sample.write_bytes(content)
    assert run_import(str(sample), "--table", "drugs", "--effective", EFFECTIVE, "--out", str(tmp_path / "b")) == 2
    assert message in capsys.readouterr().err


def test_an_edition_older_than_the_current_rows_is_a_conflict(tmp_path: pathlib.Path, capsys) -> None:
    row = next(r for r in current("drugs") if r["type"] == "western")
    sample = tmp_path / "d.csv"
    write_csv(sample, DRUG_HEADINGS, [drug_record(dict(row, manufacturer="X"))])
    assert run_import(str(sample), "--table", "drugs", "--effective", "2020-01-01", "--out", str(tmp_path / "b"),
                      "--increment") == 2
    assert "after this edition's date 2020-01-01" in capsys.readouterr().err


def test_the_xlsx_reader_reads_shared_inline_and_numeric_cells(tmp_path: pathlib.Path) -> None:
    sample = tmp_path / "t.xlsx"
    write_xlsx(sample, [["a", "b", "c"], ["x", 12, 3.5], ["y", "", "z"]])
    assert list(read_rows(sample)) == [(1, ["a", "b", "c"]), (2, ["x", "12", "3.5"]), (3, ["y", "", "z"])]
    assert list(read_rows(sample, "新增")) == []


def test_icd_rows_name_the_files_own_column_and_the_first_row_of_a_duplicate(tmp_path: pathlib.Path,
                                                                              capsys) -> None:
    sample = tmp_path / "icd.csv"
    write_csv(sample, ["类目代码", "类目名称", "疾病诊断代码", "疾病诊断名称"], [
        {"类目代码": "E11", "类目名称": "2型糖尿病", "疾病诊断代码": "E11.900", "疾病诊断名称": "2型糖尿病"},
        {"类目代码": "E11", "类目名称": "非胰岛素依赖型糖尿病", "疾病诊断代码": "E11.901", "疾病诊断名称": "x"},
        {"类目代码": "E11", "类目名称": "2型糖尿病", "疾病诊断代码": "E11.9xyz", "疾病诊断名称": "x"},
    ])
    assert run_import(str(sample), "--table", "icd10", "--effective", EFFECTIVE, "--out", str(tmp_path / "b")) == 2
    err = capsys.readouterr().err
    assert "row 3, 类目代码: E11 also on row 2 with other attributes" in err
    assert "row 4, 疾病诊断代码: 'E11.9xyz' is not an ICD-10 code" in err
