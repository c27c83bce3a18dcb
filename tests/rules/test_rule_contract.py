"""The rule data contract, checked at load: tags, windows, parameters, state parameters; published schemas."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jsonschema
import orjson
import pytest

from services import schemagen
from services.rules import families
from services.rules.context import KNOWN_TAGS
from services.rules.engine import DEFAULT_DATA, Engine
from services.rules.exceptions import DataError
from tests.rules.conftest import edit_json as _edit

SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "schemas"  # the JSON Schemas for rule authors
DATA = DEFAULT_DATA  # the packaged rule base: kb/, rules/

def test_every_family_needs_only_known_tags_and_kb_rows_carry_only_known_tags(engine: Engine) -> None:
    families.load_all()
    for fam in families.FAMILIES.values():
        assert set(fam.needs) <= KNOWN_TAGS, fam.name
    carried = set().union(*(r["_f"] for t in (engine.kb.drugs, engine.kb.services, engine.kb.diagnoses)
                            for r in t.rows()))
    assert carried <= KNOWN_TAGS


def test_a_misspelt_needs_tag_is_an_error_naming_file_and_field(
    data_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    families.load_all()
    fam = families.FAMILIES["supply_overlap"]
    monkeypatch.setitem(families.FAMILIES, "supply_overlap", dataclasses.replace(fam, needs=("drug", "Ledger")))
    with pytest.raises(DataError, match=r"R19\.json: field 'family': family supply_overlap needs unknown tag\(s\) \['Ledger'\]"):
        Engine.load(data_dir)


def test_an_unknown_window_is_an_error(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R19.json", lambda d: d["rule"].update(window="pt:90days"))
    with pytest.raises(DataError, match=r"R19\.json: field 'window': 'pt:90days' is not one of"):
        Engine.load(data_dir)


def test_a_window_that_disagrees_with_its_parameter_is_an_error(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R19.json", lambda d: d["rule"].update(window="pt:30d"))
    with pytest.raises(DataError, match=r"R19\.json: field 'window': 'pt:30d' says 30 days .*\['window_days'\] default to \[90\]"):
        Engine.load(data_dir)
    _edit(data_dir / "rules" / "R19.json", lambda d: d["rule"].update(window="pt:90d"))
    _edit(data_dir / "rules" / "R12.json", lambda d: d["rule"].update(window="enc+60d"))
    with pytest.raises(DataError, match=r"R12\.json: field 'window': 'enc\+60d' says 60 days .*lookback_days"):
        Engine.load(data_dir)


def test_unknown_parameters_name_their_field(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R24.json", lambda d: d["rule"].update(region_overrides={"1": {"max_vists": 3}}))
    with pytest.raises(DataError, match=r"R24\.json: region_overrides\['1'\] names unknown parameter 'max_vists'"):
        Engine.load(data_dir)


def test_state_parameters_come_from_the_rules(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R30.json", lambda d: d["rule"]["parameters"].update(exam_categories=["lab"]))
    engine = Engine.load(data_dir)
    assert engine.windows.exam == {"lab"} and engine.windows.passive == {"bed", "nursing", "consult", "registration"}


def test_a_state_parameter_cannot_vary_by_region(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R27.json",
          lambda d: d["rule"].update(region_overrides={"110100": {"passive_categories": ["bed"]}}))
    with pytest.raises(DataError, match=r"R27\.json: region_overrides\['110100'\]\.passive_categories: a state parameter"):
        Engine.load(data_dir)


def test_a_state_parameter_has_one_value_across_the_family(data_dir: pathlib.Path) -> None:
    doc = orjson.loads((data_dir / "rules" / "R27.json").read_bytes())
    doc["rule"].update(id="R38", gz_code="GZ10000204999")
    doc["rule"]["parameters"]["passive_categories"] = ["bed", "nursing"]
    (data_dir / "rules" / "R38.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(DataError, match=r"R38\.json: parameters\.passive_categories=.*differs from R27\.json"):
        Engine.load(data_dir)


def test_category_parameters_name_known_categories(data_dir: pathlib.Path) -> None:
    _edit(data_dir / "rules" / "R30.json", lambda d: d["rule"]["parameters"].update(exam_categories=["labs"]))
    with pytest.raises(DataError, match=r"R30\.json: parameters\.exam_categories names unknown service categories \['labs'\]"):
        Engine.load(data_dir)


# -- published schemas -------------------------------------------------------------------
def test_rule_and_kb_schemas_are_generated_from_the_loader() -> None:
    stale = [path for path, schema in schemagen.data_schemas().items()
             if not path.exists() or path.read_text(encoding="utf-8") != schemagen.render_dict(schema)]
    assert not stale, f"run python -m services.schemagen: {stale}"


def test_every_shipped_rule_and_kb_file_is_valid_against_its_schema() -> None:
    rules = json.loads((SCHEMAS / "rules.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(rules)
    for path in sorted((DATA / "rules").glob("R*.json")):
        jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), rules)
    for table in ("drugs", "services", "diagnoses", "interactions"):
        schema = json.loads((SCHEMAS / "kb" / f"{table}.schema.json").read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(json.loads((DATA / "kb" / f"{table}.json").read_text(encoding="utf-8")), schema)


def test_the_rule_schema_rejects_what_the_loader_rejects() -> None:
    schema = json.loads((SCHEMAS / "rules.schema.json").read_text(encoding="utf-8"))
    doc = json.loads((DATA / "rules" / "R19.json").read_text(encoding="utf-8"))
    doc["rule"]["parameters"]["windw_days"] = 3
    with pytest.raises(jsonschema.ValidationError, match="windw_days"):
        jsonschema.validate(doc, schema)
    doc = json.loads((DATA / "rules" / "R27.json").read_text(encoding="utf-8"))
    doc["rule"]["region_overrides"] = {"110100": {"passive_categories": ["bed"]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    kb_schema = json.loads((SCHEMAS / "kb" / "drugs.schema.json").read_text(encoding="utf-8"))
    table = json.loads((DATA / "kb" / "drugs.json").read_text(encoding="utf-8"))
    table["rows"][0]["type"] = "tonic"
    with pytest.raises(jsonschema.ValidationError, match="tonic"):
        jsonschema.validate(table, kb_schema)
