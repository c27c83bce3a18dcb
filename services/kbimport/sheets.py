"""Read a code table as bureaus receive it: CSV or XLSX, a heading row, one record per row.

XLSX is read with the standard library (zipfile + ElementTree, streamed row by row): the first
worksheet (or the one named), shared strings, inline strings, numbers. A number in a text column
(a code Excel turned into a number) comes back without a trailing ``.0``. CSV: UTF-8 (with or
without BOM) or GB18030 (what Excel saves on a Chinese Windows), comma- or tab-separated.

The heading row is the first row, within the first ten, that holds one of the expected key
headings (downloads often carry a title line above it). Rows are numbered as a spreadsheet
shows them (the heading row of a plain CSV is row 1), so an error message points at the row an
operator sees.
"""

from __future__ import annotations

import csv
import io
import pathlib
import re
import zipfile
from collections.abc import Iterator
from xml.etree import ElementTree as ET

NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
HEADER_SCAN_ROWS = 10

Row = tuple[int, list[str]]  # (row number as shown, cell texts)


class SheetError(ValueError):
    """The file cannot be read as a table (the message says which file and why)."""


def normalise_heading(text: str) -> str:
    """Headings compare without spaces, BOM, or the full-width/half-width difference of brackets."""
    text = text.replace("\ufeff", "").replace("（", "(").replace("）", ")")
    return re.sub(r"\s+", "", text)


# -- CSV ---------------------------------------------------------------------------------------
def _csv_rows(path: pathlib.Path) -> Iterator[Row]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover — gb18030 decodes any byte string
        raise SheetError(f"{path.name}: neither UTF-8 nor GB18030 text")
    first = text.split("\n", 1)[0]
    dialect = "excel-tab" if first.count("\t") > first.count(",") else "excel"
    for n, cells in enumerate(csv.reader(io.StringIO(text, newline=""), dialect=dialect), 1):
        yield n, [c.strip() for c in cells]


# -- XLSX --------------------------------------------------------------------------------------
def _col_index(ref: str) -> int:
    n = 0
    for ch in ref:
        if ch.isalpha():
            n = n * 26 + (ord(ch.upper()) - 64)
        else:
            break
    return n - 1


def _text(el: ET.Element | None) -> str:
    """The text of an <si> or <is> element: plain <t>, or the runs (<r><t>) of rich text."""
    if el is None:
        return ""
    return "".join(t.text or "" for t in el.iter(f"{NS}t"))


def _number(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else text


def _sheet_path(zf: zipfile.ZipFile, sheet: str | None) -> str:
    try:
        book = ET.fromstring(zf.read("xl/workbook.xml"))
        rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    except KeyError:
        if sheet is None and "xl/worksheets/sheet1.xml" in zf.namelist():
            return "xl/worksheets/sheet1.xml"
        raise SheetError("not an XLSX workbook (no xl/workbook.xml)") from None
    targets = {r.get("Id"): r.get("Target", "") for r in rels.iter(f"{PKG_REL_NS}Relationship")}
    sheets = [(s.get("name", ""), s.get(f"{REL_NS}id")) for s in book.iter(f"{NS}sheet")]
    if not sheets:
        raise SheetError("the workbook has no sheets")
    if sheet is None:
        chosen = sheets[0]
    else:
        found = [s for s in sheets if s[0] == sheet]
        if not found:
            raise SheetError(f"no sheet named {sheet!r} (sheets: {', '.join(s[0] for s in sheets)})")
        chosen = found[0]
    target = targets.get(chosen[1], "")
    target = target.lstrip("/")
    return target if target.startswith("xl/") else f"xl/{target}"


def _xlsx_rows(path: pathlib.Path, sheet: str | None) -> Iterator[Row]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise SheetError(f"{path.name}: not an XLSX file (not a zip archive)") from None
    with zf:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in zf.namelist():
            root = ET.fromstring(zf.read("xl/sharedStrings.xml"))
            shared = [_text(si) for si in root.iter(f"{NS}si")]
        try:
            member = _sheet_path(zf, sheet)
            fh = zf.open(member)
        except KeyError:
            raise SheetError(f"{path.name}: the worksheet is missing from the archive") from None
        except SheetError as exc:
            raise SheetError(f"{path.name}: {exc}") from None
        with fh:
            next_number = 1
            for _, el in ET.iterparse(fh, events=("end",)):
                if el.tag != f"{NS}row":
                    continue
                number = int(el.get("r") or next_number)
                next_number = number + 1
                cells: list[str] = []
                for c in el.iter(f"{NS}c"):
                    ref = c.get("r")
                    idx = _col_index(ref) if ref else len(cells)
                    kind = c.get("t")
                    v = c.find(f"{NS}v")
                    if kind == "s":
                        try:
                            value = shared[int(v.text or "")] if v is not None else ""
                        except (ValueError, IndexError):
                            raise SheetError(f"{path.name} row {number}: a cell names a shared string that "
                                             "does not exist") from None
                    elif kind == "inlineStr":
                        value = _text(c.find(f"{NS}is"))
                    elif kind in ("str", "e"):
                        value = v.text or "" if v is not None else ""
                    elif kind == "b":
                        value = "TRUE" if v is not None and v.text == "1" else "FALSE"
                    else:
                        value = _number(v.text or "") if v is not None else ""
                    while len(cells) < idx:
                        cells.append("")
                    cells.append(value.strip())
                el.clear()
                yield number, cells


# -- either ------------------------------------------------------------------------------------
def read_rows(path: pathlib.Path | str, sheet: str | None = None) -> Iterator[Row]:
    """Every row of the file (heading rows included), numbered as a spreadsheet shows them."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_rows(path, sheet)
    if suffix in (".csv", ".txt", ".tsv"):
        if sheet is not None:
            raise SheetError(f"{path.name}: --sheet applies to XLSX files only")
        return _csv_rows(path)
    if suffix == ".xls":
        raise SheetError(f"{path.name}: the old binary .xls format is not read; save it as .xlsx or .csv")
    raise SheetError(f"{path.name}: unknown file type {suffix!r} (expected .csv or .xlsx)")


def find_header(rows: Iterator[Row], keys: set[str], path: str) -> tuple[int, list[str]]:
    """The heading row: the first of the first ten rows holding one of ``keys`` (normalised)."""
    seen: list[str] = []
    for _ in range(HEADER_SCAN_ROWS):
        try:
            number, cells = next(rows)
        except StopIteration:
            break
        normalised = [normalise_heading(c) for c in cells]
        if keys & set(normalised):
            return number, normalised
        if any(normalised):
            seen.append(" | ".join(c for c in normalised if c)[:120])
    shown = f" (first rows: {seen[0]!r})" if seen else " (the file is empty)"
    raise SheetError(f"{path}: no heading row with {' or '.join(sorted(keys))} in the first "
                     f"{HEADER_SCAN_ROWS} rows{shown}")
