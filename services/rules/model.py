"""The native event model, re-exported from its owner, :mod:`services.contracts.event`."""

from services.contracts.common import CST, Code, Id, Text
from services.contracts.event import (
    Diagnosis,
    Encounter,
    EncounterType,
    Event,
    Gender,
    Institution,
    Item,
    ItemKind,
    Patient,
)

__all__ = ["CST", "Code", "Diagnosis", "Encounter", "EncounterType", "Event", "Gender", "Id", "Institution",
           "Item", "ItemKind", "Patient", "Text"]
