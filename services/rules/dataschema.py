"""JSON Schemas of the rule and KB data files, built from the loader's own field tables.

Pure: returns dicts (``python -m services.schemagen`` writes them to ``schemas/``). The
schemas are for rule authors and editors; the loader (``ruleset.validate_entry``,
``kb.validate_row``) stays the authority and checks more (cross-row and cross-rule rules).
"""

from __future__ import annotations

from typing import Any

from services.rules import kb
from services.rules.families import FAMILIES, load_all
from services.rules.ruleset import INDICATORS, MODES, RESULT_TYPES, RULE_FIELDS, SEVERITIES, STAGES, WINDOW_RE

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object",
          type(None): "null"}


def _type(types: type | tuple[type, ...]) -> dict[str, Any]:
    seq = types if isinstance(types, tuple) else (types,)
    names = []
    for t in seq:
        name = _TYPES[t]
        if name not in names:
            names.append(name)
    if "integer" in names and "number" in names:
        names.remove("integer")
    return {"type": names[0]} if len(names) == 1 else {"type": names}


def _param(name: str, types: type | tuple[type, ...]) -> dict[str, Any]:
    out = _type(types)
    if types is float:
        out = {"type": "number"}
    if name.endswith("_categories"):
        out["items"] = {"enum": list(kb.SERVICE_CATEGORIES)}
    return out


# Per check function of the KB specs, what JSON Schema can say of it.
_CHECKS: dict[Any, dict[str, Any]] = {
    kb._str_list: {"items": {"type": "string", "minLength": 1}},
    kb._sex: {"enum": list(kb.SEXES)},
    kb._positive: {"exclusiveMinimum": 0},
    kb._level: {"enum": [1, 2, 3]},
    kb._settings: {"items": {"enum": list(kb.SETTINGS)}},
    kb._max_days: {"propertyNames": {"enum": list(kb.SETTINGS)},
                   "additionalProperties": {"type": "integer", "exclusiveMinimum": 0}},
    kb._period: {"properties": {"days": {"type": "integer", "exclusiveMinimum": 0},
                                "max": {"type": "integer", "exclusiveMinimum": 0}},
                 "required": ["days", "max"], "additionalProperties": False},
    kb._category: {"enum": list(kb.SERVICE_CATEGORIES)},
}
_DATE = {"pattern": r"^\d{4}-\d{2}-\d{2}$"}


def kb_table_schema(table: str) -> dict[str, Any]:
    """A KB table file: ``{"table": ..., "version": ..., "rows": [row, ...]}``."""
    spec = kb.TABLES[table]
    props: dict[str, Any] = {}
    for name, (types, _, check) in spec.items():
        prop = _type(types)
        prop.update(_CHECKS.get(check, {}))
        allowed = getattr(check, "allowed", None)
        if allowed:
            prop["enum"] = list(allowed)
        if name in ("effective_from", "effective_to"):
            prop.update(_DATE)
        if name == "effective_to":
            prop = {"anyOf": [prop, {"type": "null"}]}
        props[name] = prop
    row = {"type": "object", "properties": props, "additionalProperties": False,
           "required": [n for n, (_, required, _) in spec.items() if required]}
    return {
        "$schema": DRAFT, "title": f"PreSettle knowledge base: {table}",
        "description": f"services/data/kb/{table}.json, read by services.rules.kb.KB.load (dated rows: retire by "
                       "effective_to, never delete).",
        "type": "object", "required": ["table", "rows"],
        "properties": {"table": {"const": table}, "version": {"type": "string"},
                       "rows": {"type": "array", "items": row}},
    }


def rule_file_schema() -> dict[str, Any]:
    """A rule file: ``{"rule": {...}, "cases": [...]}`` with parameters typed per family."""
    load_all()
    props: dict[str, Any] = {name: _type(types) for name, (types, _) in RULE_FIELDS.items()}
    props["id"] = {"type": "string", "pattern": r"^R\d{2,3}$"}
    props["version"] = {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"}
    props["family"] = {"enum": sorted(FAMILIES)}
    props["stage"] = {"type": "array", "minItems": 1, "items": {"enum": list(STAGES)}}
    props["scenes"] = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1, "maximum": 10}}
    props["window"] = {"type": "string", "pattern": WINDOW_RE.pattern}
    props["result_type"] = {"enum": list(RESULT_TYPES)}
    props["indicator"] = {"enum": list(INDICATORS)}
    props["severity"] = {"enum": sorted(set(SEVERITIES.values()))}
    props["effective_from"] = {"type": "string", **_DATE}
    props["effective_to"] = {"anyOf": [{"type": "string", **_DATE}, {"type": "null"}]}
    props["mode"] = {"enum": list(MODES), "default": "active",
                     "description": "active: alerts the HIS; shadow: evaluated, alerts only in the audit record "
                                    "(shadow_alerts) and a metric; off: not evaluated"}
    per_family = []
    for name, fam in sorted(FAMILIES.items()):
        params = {p: _param(p, t) for p, t in fam.params.items()}
        overridable = {p: s for p, s in params.items() if p not in fam.state_params}
        per_family.append({
            "if": {"properties": {"family": {"const": name}}, "required": ["family"]},
            "then": {"properties": {
                "parameters": {"type": "object", "properties": params, "required": sorted(fam.params),
                               "additionalProperties": False},
                "region_overrides": {"type": "object", "additionalProperties": {
                    "type": "object", "minProperties": 1, "properties": overridable,
                    "additionalProperties": False}},
            }},
        })
    rule = {"type": "object", "properties": props, "additionalProperties": False,
            "required": [n for n, (_, required) in RULE_FIELDS.items() if required], "allOf": per_family}
    case = {
        "type": "object", "required": ["name", "fires", "history", "event", "expect"],
        "properties": {
            "name": {"type": "string"}, "fires": {"type": "boolean"},
            "status": {"type": "array", "items": {"$ref": "#/$defs/status"}},
            "providers": {"type": "array", "items": {"$ref": "#/$defs/provider"}},
            "history": {"type": "array", "items": {"$ref": "#/$defs/event"}},
            "event": {"$ref": "#/$defs/event"},
            "expect": {"type": "object", "properties": {
                "present": {"type": "array", "items": {"type": "string"}},
                "absent": {"type": "array", "items": {"type": "string"}},
                "alerts": {"type": "array", "items": {"type": "object", "required": ["rule_id"]}},
            }},
        },
    }
    return {
        "$schema": DRAFT, "title": "PreSettle rule file (services/data/rules/R*.json)",
        "description": "One rule entry and its golden cases, read by services.rules.ruleset.compile_rules; "
                       "see docs/rules.md. Cases are native events (schemas/api/native-event.request.schema.json).",
        "type": "object", "required": ["rule"], "additionalProperties": False,
        "properties": {"rule": rule, "cases": {"type": "array", "items": case}},
        "$defs": {"event": {"type": "object", "description": "a native event: native-event.request.schema.json"},
                  "status": {"type": "object",
                             "description": "a status update: native-patient-status.request.schema.json"},
                  "provider": {"type": "object", "required": ["subject"],
                               "properties": {"subject": {"enum": ["institution", "doctor"]}},
                               "description": "an institution or doctor status update with its subject: "
                                              "native-institution-status.request.schema.json or "
                                              "native-doctor-status.request.schema.json"}},
    }
