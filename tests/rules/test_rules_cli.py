"""``presettle rules validate``: what a publish checks, run locally (exit 0, 1 rejected, 2 usage)."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from services import cli
from services.rules.bundle import revision_of
from services.rules.engine import DEFAULT_DATA


def copy(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "rb"
    for section in ("rules", "kb"):
        shutil.copytree(DEFAULT_DATA / section, root / section)
    return root


def test_validate_prints_the_revision(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy(tmp_path)
    assert cli.main(["rules", "validate", str(root)]) == 0
    out = json.loads(capsys.readouterr().out)
    rules = len(list((DEFAULT_DATA / "rules").glob("R*.json")))
    assert rules >= 43  # R01–R43 at least (R42/R43: provider status)
    assert out["revision"] == revision_of(root) == revision_of(DEFAULT_DATA) and out["rules"] == rules
    assert out["cases"] >= 4 * rules and out["modes"]["active"][0] == "R01"


def test_validate_lists_failing_cases_and_usage_errors(tmp_path: pathlib.Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = copy(tmp_path)
    r03 = root / "rules" / "R03.json"
    doc = json.loads(r03.read_text(encoding="utf-8"))
    doc["cases"][0]["event"]["patient"]["gender"] = "M"  # the firing case no longer fires
    r03.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    assert cli.main(["rules", "validate", str(root)]) == 1
    err = capsys.readouterr().err
    assert "REJECTED" in err and "R03 case 0" in err and "expected R03 to fire" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["rules", "validate", str(tmp_path / "nowhere")])
    assert exc.value.code == 2
    (root / "rules" / "notes.txt.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        cli.main(["rules", "validate", str(root)])
    assert exc.value.code == 2 and "not a bundle file" in capsys.readouterr().err
