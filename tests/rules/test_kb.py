"""The knowledge base and rule data are validated at load; bad rows are rejected by name."""

from __future__ import annotations

import pathlib

import pytest

from services.rules.engine import Engine
from services.rules.exceptions import DataError
from tests.rules.conftest import edit_json as _edit


def test_shipped_data_loads(data_dir: pathlib.Path) -> None:
    engine = Engine.load(data_dir)
    assert engine.kb.drugs.get("XC10AAA067A001010104321", 20_000)["ingredient"] == "atorvastatin"


def test_bad_sex_value_names_file_and_row(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "kb" / "diagnoses.json", lambda d: d["rows"][0].update(sex="X"))
    with pytest.raises(ValueError, match=r"diagnoses\.json row 0 \(N40\).*'sex'"):
        Engine.load(data_dir)


def test_missing_field_rejected(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "kb" / "drugs.json", lambda d: d["rows"][1].pop("ingredient"))
    with pytest.raises(DataError, match=r"drugs\.json row 1 .*missing required field 'ingredient'"):
        Engine.load(data_dir)


def test_unknown_field_rejected(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "kb" / "drugs.json", lambda d: d["rows"][0].update(max_dayz=3))
    with pytest.raises(DataError, match=r"drugs\.json row 0 .*unknown field.*max_dayz"):
        Engine.load(data_dir)


def test_bad_date_rejected(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "kb" / "services.json", lambda d: d["rows"][0].update(effective_to="2020-01-01"))
    with pytest.raises(DataError, match=r"services\.json row 0 .*effective_to 2020-01-01 is before"):
        Engine.load(data_dir)


def test_overlapping_versions_rejected(data_dir: pathlib.Path) -> None:
    def dup(d):
        d["rows"].append(dict(d["rows"][0], effective_from="2025-01-01"))
    _edit(data_dir / "kb" / "drugs.json", dup)
    with pytest.raises(DataError, match="overlaps another version"):
        Engine.load(data_dir)


def test_interaction_with_unknown_ingredient_rejected(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "kb" / "interactions.json", lambda d: d["rows"][0].update(b="unobtainium"))
    with pytest.raises(DataError, match=r"interactions\.json row 0 .*unobtainium"):
        Engine.load(data_dir)


def test_rule_with_unknown_parameter_rejected(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R19.json", lambda d: d["rule"]["parameters"].update(windw_days=3))
    with pytest.raises(DataError, match=r"R19\.json: field 'parameters': family supply_overlap has no parameter\(s\) \['windw_days'\]"):
        Engine.load(data_dir)


def test_rule_region_override_type_checked(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R22.json", lambda d: d["rule"]["region_overrides"].update({"110100": {"gap_days": "ten"}}))
    with pytest.raises(DataError, match=r"R22\.json: region_overrides\['110100'\]\.gap_days='ten'"):
        Engine.load(data_dir)


def test_message_template_field_checked(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R03.json", lambda d: d["rule"].update(message_en="{nope}"))
    with pytest.raises(DataError, match=r"R03\.json: message_en uses field\(s\) \['nope'\]"):
        Engine.load(data_dir)


def test_retired_row_not_found_after_its_end(data_dir: pathlib.Path) -> None:
    def retire(d):
        d["rows"][0]["effective_to"] = "2025-12-31"
    _edit(data_dir / "kb" / "diagnoses.json", retire)
    engine = Engine.load(data_dir)
    from services.rules.timeutil import day_of_date
    assert engine.kb.diagnosis("N40.x00", day_of_date("2025-12-31"))["code"] == "N40"
    assert engine.kb.diagnosis("N40.x00", day_of_date("2026-01-01")) is None
