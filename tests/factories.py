"""Builders for native events used across the tests (valid `POST /v1/events` payloads)."""

from __future__ import annotations

import uuid
from typing import Any


def uid(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def event(
    *,
    patient: str | None = None,
    gender: str = "M",
    birth_date: str = "1960-05-01",
    institution: str = "H1",
    scene: int = 2,
    occurred_at: str = "2026-03-01T09:00:00+08:00",
    encounter_type: str = "outpatient",
    encounter_id: str | None = None,
    diagnoses: list[dict[str, Any]] | None = None,
    items: list[dict[str, Any]] | None = None,
    event_id: str | None = None,
    **encounter: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id or uid("ev-"),
        "scene": scene,
        "occurred_at": occurred_at,
        "institution": {"id": institution, "level": 3, "region": "330100"},
        "patient": {"id": patient or uid("P"), "gender": gender, "birth_date": birth_date,
                    "insurance_type": "310", "region": "330100"},
        "encounter": {"id": encounter_id or uid("E"), "type": encounter_type, **encounter},
        "diagnoses": diagnoses or [],
        "items": items or [],
    }


def dx(code: str, main: bool = True, name: str | None = None) -> dict[str, Any]:
    return {"code": code, "name": name, "main": main}


def drug(code: str, quantity: float, days_supply: int, line_id: str = "1", name: str | None = None,
         unit_price: float = 1.0) -> dict[str, Any]:
    return {"line_id": line_id, "code": code, "name": name, "kind": "drug", "quantity": quantity,
            "unit": "片", "unit_price": unit_price, "amount": round(quantity * unit_price, 2),
            "days_supply": days_supply}
