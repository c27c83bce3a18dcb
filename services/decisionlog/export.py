"""Pure: rows → CSV or XLSX bytes, as a stream of chunks (an export of any size in bounded memory).

XLSX is written with the standard library: a zip (streamed; no seeking) holding one worksheet
of inline strings and numbers — what Excel, WPS and LibreOffice open. No I/O of its own: the
caller hands in an iterator of rows and sends the chunks on.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from xml.sax.saxutils import escape

DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id", "event_id", "institution_id", "region", "patient_ref", "scene", "occurred_at", "decided_at",
    "alert_count", "rule_ids", "amount", "rulebase_revision", "engine_ms",
)


def cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return "" if value is None else value


def csv_chunks(rows: Iterable[dict[str, Any]], columns: Sequence[str], batch: int = 500) -> Iterator[bytes]:
    """UTF-8 with a byte-order mark (Excel opens it as UTF-8), header first."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    first = True
    n = 0
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
        n += 1
        if n % batch == 0:
            yield (("\ufeff" if first else "") + buf.getvalue()).encode()
            first = False
            buf.seek(0)
            buf.truncate()
    yield (("\ufeff" if first else "") + buf.getvalue()).encode()


class _Sink:
    """A write-only file for zipfile: it collects what is written until taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _col(n: int) -> str:
    name = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        name = chr(65 + r) + name
    return name


def _xml_cell(ref: str, value: Any) -> str:
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(str(value))}</t></is></c>'


_STATIC = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'officeDocument" Target="xl/workbook.xml"/></Relationships>'),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>'),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'worksheet" Target="worksheets/sheet1.xml"/></Relationships>'),
}


def xlsx_chunks(rows: Iterable[dict[str, Any]], columns: Sequence[str], sheet: str = "decisions",
                batch: int = 500) -> Iterator[bytes]:
    out = _Sink()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in _STATIC.items():
            zf.writestr(name, text.replace("{sheet}", escape(sheet)))
        yield out.take()
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as ws:
            ws.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                     b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            header = "".join(_xml_cell(f"{_col(i)}1", c) for i, c in enumerate(columns))
            ws.write(f'<row r="1">{header}</row>'.encode())
            r = 1
            for row in rows:
                r += 1
                cells = "".join(_xml_cell(f"{_col(i)}{r}", cell(row.get(c))) for i, c in enumerate(columns))
                ws.write(f'<row r="{r}">{cells}</row>'.encode())
                if r % batch == 0:
                    yield out.take()
            ws.write(b"</sheetData></worksheet>")
    yield out.take()
