"""Time ``presettle kb import`` at the size of the national tables (synthetic rows, real layouts).

    python -m loadtest.bench_kb_import [--drugs 3000] [--services 10000] [--icd 30000] [--dir /tmp/kbbench]

Writes a 医保药品分类与代码 CSV (the packaged drugs plus synthetic X codes), a 医疗服务项目 XLSX
(the packaged services plus synthetic codes) and an ICD-10 医保版 CSV (类目/亚目/诊断 rows), then
imports each as a full edition into the packaged rule base and prints the seconds and rows/s
per table. The last stdout line is one JSON object. A benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import shutil
import sys
import time
import zipfile
from typing import Any
from xml.sax.saxutils import escape

from services.kbimport.cli import import_edition
from services.kbimport.layouts import LAYOUTS
from services.rules.engine import DEFAULT_DATA

EFFECTIVE = "2026-07-01"


def _rows(table: str) -> list[dict[str, Any]]:
    return json.loads((DEFAULT_DATA / "kb" / f"{table}.json").read_text(encoding="utf-8"))["rows"]


def write_csv(path: pathlib.Path, headings: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(headings)
        w.writerows(rows)


def write_xlsx(path: pathlib.Path, rows: list[list[Any]]) -> None:
    """One sheet, inline strings (what some exporters write)."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", f'<workbook {ns} xmlns:r="http://schemas.openxmlformats.org/officeDocument/'
                    '2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
        zf.writestr("xl/_rels/workbook.xml.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/'
                    '2006/relationships"><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>')
        with zf.open("xl/worksheets/sheet1.xml", "w") as fh:
            fh.write(f"<worksheet {ns}><sheetData>".encode())
            for r, cells in enumerate(rows, 1):
                xml = "".join(f'<c r="{chr(65 + c)}{r}" t="inlineStr"><is><t>{escape(str(v))}</t></is></c>'
                              for c, v in enumerate(cells))
                fh.write(f'<row r="{r}">{xml}</row>'.encode())
            fh.write(b"</sheetData></worksheet>")


def make_files(where: pathlib.Path, n_drugs: int, n_services: int, n_icd: int) -> dict[str, pathlib.Path]:
    where.mkdir(parents=True, exist_ok=True)
    drugs = [r for r in _rows("drugs") if r["type"] in ("western", "patent") and not r.get("effective_to")]
    drug_rows = [[r["code"], r["name"], r["form"], r["form"], r["unit"], r["manufacturer"], r["manufacturer"]]
                 for r in drugs]
    for i in range(n_drugs - len(drug_rows)):
        drug_rows.append([f"XZ99ZZ{i // 1000:04d}A001{i % 1000:04d}00001", f"合成药{i}片", "片剂", "片剂", "片",
                          "合成药业", "合成药业"])
    files = {"drugs": where / "drugs.csv"}
    write_csv(files["drugs"], ["药品代码", "注册名称", "注册剂型", "剂型", "最小制剂单位", "药品企业", "生产企业"],
              drug_rows)
    services = [r for r in _rows("services") if r["kind"] == "service" and not r.get("effective_to")]
    svc_rows: list[list[Any]] = [["医疗目录编码", "计价单位名称", "医疗服务项目名称", "有效标志"]]
    svc_rows += [[r["code"], r["unit"], r["name"], "1"] for r in services]
    for i in range(n_services - len(services)):
        svc_rows.append([f"0025{i:011d}", "次", f"合成检验项目{i}", "1"])
    files["services"] = where / "services.xlsx"
    write_xlsx(files["services"], svc_rows)
    icd_rows = []
    for i in range(n_icd):
        cat = f"{chr(65 + i // 2600 % 26)}{i // 26 % 100:02d}"
        sub = f"{cat}.{i % 10}"
        icd_rows.append([cat, f"类目{cat}", sub, f"亚目{sub}", f"{sub}{i % 100:02d}x{i % 1000:03d}", f"诊断{i}"])
    files["icd10"] = where / "icd10.csv"
    write_csv(files["icd10"], ["类目代码", "类目名称", "亚目代码", "亚目名称", "诊断代码", "诊断名称"], icd_rows)
    return files


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drugs", type=int, default=3000)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--icd", type=int, default=30000)
    ap.add_argument("--dir", type=pathlib.Path, default=pathlib.Path("/tmp/kbbench"))
    args = ap.parse_args(argv)
    shutil.rmtree(args.dir, ignore_errors=True)
    files = make_files(args.dir, args.drugs, args.services, args.icd)
    result: dict[str, Any] = {"load_avg_1m": round(os.getloadavg()[0], 2)}
    for name, path in files.items():
        out = args.dir / f"bundle-{name}"
        t0, c0 = time.monotonic(), time.process_time()
        report = import_edition(LAYOUTS[name], DEFAULT_DATA, out, path, EFFECTIVE, "2026.07", full=True)
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        result[name] = {"rows": report["rows_read"], "codes": report["codes"], **report["counts"],
                        "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                        "rows_per_cpu_s": round(report["rows_read"] / cpu)}
        print(f"bench_kb_import: {name}: {report['rows_read']:,} rows in {wall:.2f} s ({cpu:.2f} CPU s) "
              f"{report['counts']}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
