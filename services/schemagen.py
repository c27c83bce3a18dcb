"""Write the JSON Schemas of every API request and response and of the audit record (``schemas/api/``),
and of the rule files and KB tables (``schemas/rules.schema.json``, ``schemas/kb/<table>.schema.json``).

    python -m services.schemagen          # rewrite the files
    python -m services.schemagen --check  # exit 1 when a committed file is stale

Generated from the pydantic models of :mod:`services.contracts` and the dialects
(:mod:`services.dialects`), never edited by hand; tests run --check and validate every
example in ``schemas/examples/`` (``<schema name>.<variant>.json``) against its schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from services.contracts.decision import AuditRecord, Decision
from services.contracts.errors import ErrorBody
from services.contracts.event import Event
from services.contracts.feedback import FeedbackRecord
from services.contracts.provider_status import DoctorStatus, InstitutionStatus
from services.contracts.rulebase import Active, Manifest, PublishResult, Revisions
from services.contracts.status import PatientStatus
from services.dialects import cds, feedback, nhsa
from services.rules import dataschema, kb

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "schemas" / "api"
EXAMPLES_DIR = ROOT / "schemas" / "examples"


def models() -> dict[str, type[BaseModel]]:
    return {
        # native
        "native-event.request": Event,
        "native-decision.response": Decision,
        "native-error.response": ErrorBody,
        "native-patient-status.request": PatientStatus,
        "native-institution-status.request": InstitutionStatus,
        "native-doctor-status.request": DoctorStatus,
        "native-feedback.request": feedback.FeedbackIn,
        "native-feedback.response": feedback.FeedbackPublic,
        "feedback-record": FeedbackRecord,
        "audit-record": AuditRecord,
        # rule-base revisions (admin routes, and the rule-base topic's records)
        "rulebase-publish.response": PublishResult,
        "rulebase-revisions.response": Revisions,
        "rulebase-manifest.record": Manifest,
        "rulebase-active.record": Active,
        # NHSA 3101/3102/3103
        "nhsa-analysis.request": nhsa.NhsaAnalysisRequest,
        "nhsa-analysis.response": nhsa.NhsaAnalysisResponse,
        "nhsa-feedback.request": nhsa.NhsaFeedbackRequest,
        "nhsa-feedback.response": nhsa.NhsaFeedbackResponse,
        "nhsa-error.response": nhsa.NhsaErrorResponse,
        # CDS Hooks 2.0
        "cds-discovery.response": cds.CdsDiscovery,
        "cds-hook.request": cds.CdsHookRequest,
        "cds-hook.response": cds.CdsHookResponse,
        "cds-feedback.request": cds.CdsFeedbackRequest,
        "cds-feedback.response": cds.CdsFeedbackResponse,
        # the FHIR resources read from draftOrders / prefetch
        "fhir-medicationrequest": cds.MedicationRequest,
        "fhir-servicerequest": cds.ServiceRequest,
        "fhir-devicerequest": cds.DeviceRequest,
        "fhir-patient": cds.FhirPatient,
        "fhir-condition": cds.Condition,
    }


def data_schemas() -> dict[Path, dict[str, Any]]:
    """The rule-file and KB-table schemas, by the path they are written to."""
    out = {ROOT / "schemas" / "rules.schema.json": dataschema.rule_file_schema()}
    for table in kb.TABLES:
        out[ROOT / "schemas" / "kb" / f"{table}.schema.json"] = dataschema.kb_table_schema(table)
    return out


def render_dict(schema: dict[str, Any]) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render(model: type[BaseModel]) -> str:
    return json.dumps(schema_of(model), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def schema_for_example(path: Path) -> Path:
    """``<schema name>.<variant>.json``: ``nhsa-analysis.request.3101-outpatient.json`` →
    ``schemas/api/nhsa-analysis.request.schema.json``."""
    return API_DIR / f"{path.name[: -len('.json')].rsplit('.', 1)[0]}.schema.json"


def main(argv: list[str]) -> int:
    stale = []
    wanted = {f"{name}.schema.json": model for name, model in models().items()}
    if "--check" not in argv:
        API_DIR.mkdir(parents=True, exist_ok=True)
    texts = {API_DIR / name: render(model) for name, model in wanted.items()}
    texts |= {path: render_dict(schema) for path, schema in data_schemas().items()}
    for path, text in texts.items():
        name = str(path.relative_to(ROOT))
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    extra = sorted(p.name for p in API_DIR.glob("*.schema.json") if p.name not in wanted)
    if extra:
        print(f"schemas/api holds files no model generates: {', '.join(extra)}")
        if "--check" in argv:
            stale.extend(extra)
    if stale:
        print(f"stale schemas (run python -m services.schemagen): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
