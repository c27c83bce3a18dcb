"""Revision ids of rule-base bundles: content hashes, blind to formatting, sensitive to content."""

import json
import pathlib
import shutil

from services.rules.bundle import revision_of, revision_of_files
from services.rules.engine import DEFAULT_DATA


def _copy(tmp_path: pathlib.Path) -> pathlib.Path:
    dst = tmp_path / "bundle"
    for section in ("rules", "kb"):
        shutil.copytree(DEFAULT_DATA / section, dst / section)
    return dst


def test_same_content_same_revision_and_prefix(tmp_path: pathlib.Path) -> None:
    rev = revision_of(DEFAULT_DATA)
    assert rev.startswith("rb-") and len(rev) == 3 + 16
    assert revision_of(_copy(tmp_path)) == rev


def test_reformatting_keeps_revision_but_one_parameter_changes_it(tmp_path: pathlib.Path) -> None:
    bundle = _copy(tmp_path)
    base = revision_of(bundle)
    path = bundle / "rules" / "R03.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(doc, indent=4, ensure_ascii=False), encoding="utf-8")
    assert revision_of(bundle) == base
    doc["version"] = str(doc.get("version", "")) + ".x"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert revision_of(bundle) != base


def test_file_name_is_part_of_the_revision() -> None:
    a = revision_of_files({"rules/R01.json": b"{}"})
    b = revision_of_files({"rules/R02.json": b"{}"})
    assert a != b
    assert revision_of_files({"rules/R01.json": b'{"a": 1, "b": 2}'}) == revision_of_files(
        {"rules/R01.json": b'{"b":2,"a":1}'}
    )
