"""The native event model: validation, normalisation, and its committed JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from services import schemagen as schemas
from services.contracts.event import Event
from tests.factories import drug, dx, event


def test_example_event_is_valid_against_schema() -> None:
    body = event(gender="F", diagnoses=[dx("N40")], items=[drug("X1", 2, 1)])
    schema = json.loads((schemas.API_DIR / "native-event.request.schema.json").read_text())
    jsonschema.validate(body, schema)
    assert Event.model_validate(body).patient.gender.value == "F"


def test_naive_times_are_china_standard_time_and_extras_ignored() -> None:
    body = event(occurred_at="2026-03-01T09:00:00")
    body["vendor_field"] = {"anything": 1}
    body["patient"]["nickname"] = "x"
    wire = Event.model_validate(body).to_wire()
    assert wire["occurred_at"] == "2026-03-01T09:00:00+08:00"
    assert "vendor_field" not in wire and "nickname" not in wire["patient"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["patient"].pop("gender"), "patient.gender"),
        (lambda b: b["patient"].update(birth_date="1990-13-40"), "patient.birth_date"),
        (lambda b: b.update(scene=11), "scene"),
        (lambda b: b.pop("event_id"), "event_id"),
        (lambda b: b["items"][0].update(quantity=0), "items.0.quantity"),
        (lambda b: b["items"][0].update(kind="food"), "items.0.kind"),
    ],
)
def test_bad_input_names_the_field(mutate, field: str) -> None:
    body = event(items=[drug("X1", 2, 1)])
    mutate(body)
    with pytest.raises(ValidationError) as info:
        Event.model_validate(body)
    locs = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert field in locs


def test_duplicate_line_ids_rejected() -> None:
    body = event(items=[drug("X1", 2, 1, line_id="1"), drug("X2", 2, 1, line_id="1")])
    with pytest.raises(ValidationError, match="duplicate line_id"):
        Event.model_validate(body)
