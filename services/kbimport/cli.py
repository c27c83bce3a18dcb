"""``presettle kb import``: a national code table (CSV or XLSX) → a new catalogue edition in a new bundle.

    presettle kb import --table drugs|services|consumables|icd10 FILE --effective YYYY-MM-DD --out DIR
                        [--bundle DIR] [--edition NAME] [--increment] [--sheet NAME] [--report FILE]

Reads FILE with the column headings of the NHSA download (layouts.py), checks every row, merges
it into the current edition of the table (``--bundle``, default the packaged rule base) as of
``--effective`` and writes a new bundle to ``--out`` (the source bundle with that table
replaced), loaded once with the service's own loader before it is kept. The diff (added,
re-listed, changed attributes, retired) is printed and written as JSON (``--report``; default
``<out>/kb-import-<table>-<edition>.json``, outside the bundle's content). Exit 0 on success;
2 on a bad file, bad rows (each named by row number and column), a conflict with the current
edition, or an edition the loader refuses — and then nothing is written. See docs/rules.md, "Importing a catalogue edition".
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import sys
import tempfile
import time
from typing import Any

import orjson

from services.kbimport import edition as ed
from services.kbimport.layouts import LAYOUTS, Layout, RowError
from services.kbimport.sheets import SheetError, find_header, read_rows
from services.rules import bundle
from services.rules.engine import DEFAULT_DATA, Engine
from services.rules.exceptions import DataError
from services.rules.timeutil import day_of_date

MAX_ERRORS = 20
INVALID_FLAGS = {"0", "无效", "N", "FALSE"}


class ImportFailed(Exception):
    """The import stops; the message is for the operator."""


class RowProgress:
    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.last = self.t0

    def __call__(self, rows: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 2.0:
            return
        self.last = now
        rate = rows / max(now - self.t0, 1e-9)
        self.stream.write(f"kb import: {rows:,} rows read ({rate:,.0f} rows/s){' done' if final else ''}\n")
        self.stream.flush()


def read_table(layout: Layout, path: pathlib.Path, sheet: str | None = None,
               progress: RowProgress | None = None) -> tuple[dict[str, tuple[int, dict[str, Any]]], int, int]:
    """code → (row number, national attributes); rows read; rows skipped as invalid (有效标志 0)."""
    rows = read_rows(path, sheet)
    header_row, headings = find_header(rows, layout.key_headings, path.name)
    try:
        index = layout.resolve(headings, f"{path.name} row {header_row}")
    except RowError as exc:
        raise ImportFailed(str(exc).split(": ", 1)[1]) from None
    imported: dict[str, tuple[int, dict[str, Any]]] = {}
    errors: list[str] = []
    count = skipped = 0
    required = [c for c in layout.columns if c.required]
    for number, cells in rows:
        if not any(cells):
            continue
        count += 1
        if progress is not None and count % 1000 == 0:
            progress(count)
        rec = {name: (cells[i] if i < len(cells) else "") for name, i in index.items()}
        if rec.get("valid", "").upper() in INVALID_FLAGS:
            skipped += 1
            continue
        try:
            for col in required:
                if not rec[col.name]:
                    raise RowError(col.name, "empty")
            for code, nat in layout.extract(rec):
                prev = imported.get(code)
                if prev is not None:
                    if prev[1] != nat:
                        column = next((name for name, value in rec.items() if value == code), "code")
                        raise RowError(column, f"{code} also on row {prev[0]} with other attributes "
                                                                f"({_differs(prev[1], nat)})")
                    continue
                imported[code] = (number, nat)
        except RowError as exc:
            heading = headings[index[exc.field]] if exc.field in index else exc.field
            errors.append(f"row {number}, {heading}: {str(exc).split(': ', 1)[1]}")
            if len(errors) >= MAX_ERRORS:
                break
    if progress is not None:
        progress(count, final=True)
    if errors:
        more = " (stopped at the first 20)" if len(errors) >= MAX_ERRORS else ""
        raise ImportFailed(f"{path.name}: {len(errors)} bad row(s){more}:\n  " + "\n  ".join(errors))
    if not imported:
        raise ImportFailed(f"{path.name}: no rows under the heading row {header_row}")
    return imported, count, skipped


def _differs(a: dict[str, Any], b: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))


def write_table(path: pathlib.Path, table: str, version: str, rows: list[dict[str, Any]]) -> None:
    """The catalogue file format of services/data/kb: one row per line, non-ASCII as is."""
    body = b",\n".join(orjson.dumps(r) for r in rows)
    header = orjson.dumps({"table": table, "version": version})[:-1]
    path.write_bytes(header + b', "rows": [\n' + body + b"\n]}\n")


def import_edition(layout: Layout, source: pathlib.Path, out: pathlib.Path, file: pathlib.Path, effective: str,
                   edition: str, full: bool, sheet: str | None = None,
                   progress: RowProgress | None = None) -> dict[str, Any]:
    """Read, merge, write and load the new bundle; the report (raises ImportFailed, nothing written)."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", effective):
            raise ValueError(effective)
        day_of_date(effective)
    except ValueError:
        raise ImportFailed(f"--effective {effective!r}: expected a date YYYY-MM-DD") from None
    if out.exists():
        raise ImportFailed(f"--out {out}: already exists (an edition is written to a new directory)")
    table_path = source / "kb" / f"{layout.table}.json"
    try:
        doc = orjson.loads(table_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ImportFailed(f"{table_path}: cannot read the current edition ({exc})") from None
    try:
        imported, count, skipped = read_table(layout, file, sheet, progress)
    except (SheetError, OSError) as exc:
        raise ImportFailed(str(exc)) from None
    try:
        rows, diff = ed.merge(layout, doc["rows"], imported, effective, full)
    except ed.EditionError as exc:
        raise ImportFailed(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for section in bundle.SECTIONS:
            if (source / section).is_dir():
                shutil.copytree(source / section, tmp / section, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
        write_table(tmp / "kb" / f"{layout.table}.json", layout.table, edition, rows)
        try:
            Engine.load(tmp)  # the service's own loader: schema, overlaps, cross-table references
        except DataError as exc:
            raise ImportFailed(f"the new edition does not load: {exc}") from None
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "table": layout.table, "layout": layout.name, "title": layout.title, "file": str(file),
        "effective": effective, "edition": edition, "previous_edition": doc.get("version"),
        "mode": "full" if full else "increment", "rows_read": count, "rows_invalid_flag": skipped,
        "codes": len(imported), "source_bundle": str(source), "source_revision": bundle.revision_of(source),
        "bundle": str(out), "revision": bundle.revision_of(out), **diff.public(),
    }


def summary(report: dict[str, Any], limit: int = 30) -> str:
    c = report["counts"]
    lines = [f"{report['title']} → {report['table']}.json edition {report['edition']} (was "
             f"{report['previous_edition']}), effective {report['effective']}, {report['mode']} import of "
             f"{report['codes']:,} codes",
             f"  {c['added']:,} added, {c['relisted']:,} re-listed, {c['changed']:,} changed, {c['retired']:,} retired, "
             f"{c['unchanged']:,} unchanged"]
    for sign, key in (("+", "added"), ("+", "relisted"), ("-", "retired")):
        for item in report[key][:limit]:
            lines.append(f"  {sign} {item['code']}  {item['name']}")
        if len(report[key]) > limit:
            lines.append(f"  … {len(report[key]) - limit:,} more {key} (see the report)")
    for item in report["changed"][:limit]:
        what = "; ".join(f"{f}: {old!r} → {new!r}" for f, (old, new) in item["changes"].items())
        lines.append(f"  ~ {item['code']}  {what}")
    if len(report["changed"]) > limit:
        lines.append(f"  … {len(report['changed']) - limit:,} more changed (see the report)")
    for key, codes in report["made_up_for_new_codes"].items():
        lines.append(f"  note: {len(codes):,} new code(s) with {key.replace('_', ' ')} (fill in, then re-validate)")
    lines.append(f"bundle {report['bundle']}: revision {report['revision']} (was {report['source_revision']})")
    return "\n".join(lines)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    kb = sub.add_parser("kb", help="knowledge-base (catalogue) tools: import a national code table",
                        description="Knowledge-base (catalogue) tools.")
    kb_sub = kb.add_subparsers(dest="kb_command", metavar="COMMAND", required=True)
    p = kb_sub.add_parser("import", help="a national code table (CSV/XLSX) → a new catalogue edition",
                          description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=pathlib.Path, metavar="FILE", help="the table as received (.csv or .xlsx)")
    p.add_argument("--table", required=True, choices=sorted(LAYOUTS),
                   help="drugs 医保药品分类与代码, services 医疗服务项目分类与代码, consumables 医用耗材分类与代码, "
                        "icd10 ICD-10 医保版")
    p.add_argument("--effective", required=True, metavar="YYYY-MM-DD", help="the day the new edition takes effect")
    p.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR", help="the new bundle (must not exist)")
    p.add_argument("--bundle", type=pathlib.Path, metavar="DIR",
                   help="the bundle holding the current edition (default: the packaged rule base)")
    p.add_argument("--edition", help="the new edition's name (default: YYYY.MM of --effective)")
    p.add_argument("--increment", action="store_true",
                   help="the file lists new and changed codes only (a 新增/变更 sheet): retire nothing")
    p.add_argument("--sheet", help="XLSX: the sheet to read (default: the first)")
    p.add_argument("--report", type=pathlib.Path, metavar="FILE", help="where to write the JSON diff")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    layout = LAYOUTS[args.table]
    source = args.bundle or DEFAULT_DATA
    edition = args.edition or args.effective[:7].replace("-", ".")
    try:
        report = import_edition(layout, source, args.out, args.file, args.effective, edition,
                                full=not args.increment, sheet=args.sheet, progress=RowProgress())
    except ImportFailed as exc:
        print(f"kb import: {exc}", file=sys.stderr)
        return 2
    path = args.report or args.out / f"kb-import-{layout.name}-{edition}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(summary(report))
    print(f"report: {path}")
    return 0
