"""Feedback records, and the committed JSON Schemas: generated from the models, examples valid."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from services import schemagen as api_schemas
from services.contracts.event import Event
from services.dialects import cds, feedback, nhsa
from services.dialects.common import CST
from services.dialects.exceptions import MappingError

EXAMPLES = sorted(api_schemas.EXAMPLES_DIR.glob("*.json"))
T = datetime(2026, 3, 11, 9, 35, tzinfo=CST)


# -- feedback ---------------------------------------------------------------------------
def test_record_joins_decision_and_rule_from_the_alert_id() -> None:
    rec = feedback.record("d-0a1b2c3d4e5f60718293.R19.2", "overridden", reason="x" * 600, institution_id="H1",
                          dialect="native", received_at=T)
    feedback.FeedbackRecord.model_validate(rec)
    assert (rec["decision_id"], rec["rule_id"], rec["outcome"]) == ("d-0a1b2c3d4e5f60718293", "R19", "overridden")
    assert len(rec["reason"]) == 500 and rec["received_at"] == "2026-03-11T09:35:00+08:00"


@pytest.mark.parametrize("bad", ["", "R19", "d-0a1b.R19.1", "d-0a1b2c3d4e5f60718293.R19", "d-0a1b2c3d4e5f60718293.R19.x",
                                 "d-0a1b2c3d4e5f60718293.r19<script>.1", "x-0a1b2c3d4e5f60718293.R19.1"])
def test_malformed_alert_ids_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(MappingError) as info:
        feedback.record(bad, "accepted", reason=None, institution_id="H1", dialect="native", received_at=T,
                        field="alert_id")
    assert info.value.field == "alert_id"


def test_native_feedback_needs_a_reason_to_override() -> None:
    with pytest.raises(ValidationError) as info:
        feedback.FeedbackIn.model_validate({"outcome": "overridden"})
    assert info.value.errors()[0]["loc"] == ("reason",)
    with pytest.raises(ValidationError):
        feedback.FeedbackIn.model_validate({"outcome": "ignored"})
    assert feedback.FeedbackIn.model_validate({"outcome": "accepted", "reason": ""}).reason is None


# -- schemas ------------------------------------------------------------------------------
def test_committed_api_schemas_match_the_models() -> None:
    assert api_schemas.main(["--check"]) == 0


def test_every_schema_has_an_example_or_is_covered_by_one() -> None:
    covered = {api_schemas.schema_for_example(p).name for p in EXAMPLES}
    # requests and the answers the tests cannot build without the engine are covered by examples
    must = {"native-event.request.schema.json", "native-feedback.request.schema.json",
            "nhsa-analysis.request.schema.json", "nhsa-analysis.response.schema.json",
            "nhsa-feedback.request.schema.json", "nhsa-feedback.response.schema.json",
            "nhsa-error.response.schema.json", "cds-hook.request.schema.json", "cds-hook.response.schema.json",
            "cds-feedback.request.schema.json", "cds-discovery.response.schema.json",
            "native-decision.response.schema.json"}
    assert must <= covered, must - covered


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid_against_its_schema(path: Path) -> None:
    schema_path = api_schemas.schema_for_example(path)
    assert schema_path.exists(), f"{path.name}: no schema {schema_path.name}"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), schema)


MODEL_OF = {"native-event.request": Event, "nhsa-analysis.request": nhsa.NhsaAnalysisRequest,
            "nhsa-feedback.request": nhsa.NhsaFeedbackRequest, "cds-hook.request": cds.CdsHookRequest,
            "cds-feedback.request": cds.CdsFeedbackRequest, "native-feedback.request": feedback.FeedbackIn}


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.name.rsplit(".", 2)[0] in MODEL_OF],
                         ids=lambda p: p.name)
def test_example_request_is_accepted_by_its_model(path: Path) -> None:
    MODEL_OF[path.name.rsplit(".", 2)[0]].model_validate(json.loads(path.read_text(encoding="utf-8")))


def test_schema_rejects_what_the_model_rejects() -> None:
    schema = json.loads((api_schemas.API_DIR / "nhsa-analysis.request.schema.json").read_text(encoding="utf-8"))
    body = json.loads((api_schemas.EXAMPLES_DIR / "nhsa-analysis.request.3101-outpatient.json").read_text())
    del body["input"]["data"]["patient_dtos"][0]["gend"]
    with pytest.raises(jsonschema.ValidationError, match="gend"):
        jsonschema.validate(body, schema)
