"""The decision log over HTTP: who am I, look-up and export of decisions (docs/decisionlog.md).

``GET /v1/whoami`` · ``GET /v1/decisions/{decision_id}`` · ``GET /v1/decisions?…&cursor=&format=``.
Every read is limited to the caller's scope (services/ingress/auth.py, :class:`Principal`): an
institution key its own institution, a staff key its region (or ``*``), the admin key everything.
A decision outside the scope answers 404, as one that does not exist: a key learns nothing of
other institutions. The handlers are plain functions (FastAPI runs them in its thread pool): the
store's calls block.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from services.common.privacy import pseudonym
from services.contracts.common import CST
from services.decisionlog import export
from services.decisionlog.records import utc_iso
from services.decisionlog.store import Store
from services.ingress.auth import PrincipalDep

log = logging.getLogger("presettle.ingress.decisions")
router = APIRouter(tags=["decision log"])

PAGE_MAX = 500
REVIEW_PAGE = Path(__file__).with_name("static") / "review.html"


def get_store(request: Request) -> Store:
    """The decision log (opened on first use; 503 naming the database when it cannot be reached)."""
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        settings = request.app.state.settings
        try:
            store = Store.open(settings.database)
        except Exception as exc:  # noqa: BLE001 - an unreachable database must not take the ingress down
            log.error("decision log unavailable: %s", type(exc).__name__)
            raise HTTPException(503, {"error": "unavailable", "field": "PRESETTLE_DATABASE_URL",
                                      "message": f"the decision log's database cannot be reached "
                                                 f"({type(exc).__name__})"}) from None
        request.app.state.store = store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


def not_found(what: str, field: str, value: str) -> HTTPException:
    return HTTPException(404, {"error": "not_found", "field": field, "message": f"no {what} {value!r}"})


def invalid(field: str, message: str) -> HTTPException:
    return HTTPException(422, {"error": "invalid_request", "field": field, "message": f"{field}: {message}",
                               "errors": [{"field": field, "message": message, "type": "value_error"}]})


# How the period bounds are written (documented in the OpenAPI document; ``time_bound`` checks them and
# names the field at fault): a China date, or an ISO-8601 time with its offset.
TIME_PATTERN = r"^\s*(\d{4}-\d{2}-\d{2}|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)\s*$"
From = Annotated[str | None, Query(alias="from", description="YYYY-MM-DD (China date, from its start) or an "
                                   "ISO-8601 time", json_schema_extra={"pattern": TIME_PATTERN})]
To = Annotated[str | None, Query(description="YYYY-MM-DD (China date, inclusive) or an ISO-8601 time (exclusive)",
                                 json_schema_extra={"pattern": TIME_PATTERN})]


def time_bound(value: str | None, field: str, end: bool = False) -> str | None:
    """``YYYY-MM-DD`` (a China date; ``to`` includes that day) or an ISO-8601 time → the stored UTC form."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end:
                day += timedelta(days=1)
            return utc_iso(datetime(day.year, day.month, day.day, tzinfo=CST).isoformat())
        return utc_iso(text)
    except ValueError:
        raise invalid(field, "expected YYYY-MM-DD or an ISO-8601 time") from None


@router.get("/review", response_class=HTMLResponse)
def review_page() -> HTMLResponse:
    """The review workbench (审核工作台): case queue, case detail with evidence and the patient's recent
    events, the actions of the key's role. The page holds no data: it asks for a key (kept in the tab's
    sessionStorage) and reads the API with it."""
    return HTMLResponse(REVIEW_PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


@router.get("/v1/whoami")
def whoami(who: PrincipalDep) -> dict[str, Any]:
    """The caller's role, scope and the name recorded in case histories."""
    return who.public()


@router.get("/v1/decisions/{decision_id}")
def get_decision(decision_id: str, who: PrincipalDep, store: StoreDep) -> dict[str, Any]:
    """One decision as recorded: the event summary, every alert (rule version, evidence, amount), the
    rule-base revision, engine time, the feedback received on its alerts, and its review case."""
    found = store.decision(decision_id, who.scope)
    if found is None:
        raise not_found("decision", "decision_id", decision_id)
    return found


def filters(
    institution: str | None = None, patient: str | None = None,
    patient_ref: Annotated[str | None, Query(description="the patient's pseudonym as the log shows it")] = None,
    rule_id: str | None = None,
    scene: Annotated[int | None, Query(ge=0, le=10, description="the event's scene (1–10); 0: retrospective "
                                       "findings (事后, `retrospective: true`)")] = None,
    from_: From = None,
    to: To = None,
    has_alerts: bool | None = None,
) -> dict[str, Any]:
    return {"institution": institution, "patient_ref": pseudonym(patient) if patient else patient_ref,
            "rule_id": rule_id, "scene": scene, "start": time_bound(from_, "from"),
            "end": time_bound(to, "to", end=True), "has_alerts": has_alerts}


FiltersDep = Annotated[dict[str, Any], Depends(filters)]


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/v1/decisions", response_model=None, responses={200: {
    "description": "a page of decisions (format=json), or every matching decision as a download (csv, xlsx)",
    "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}}}}})
def list_decisions(
    who: PrincipalDep, store: StoreDep, found: FiltersDep, cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> dict[str, Any] | StreamingResponse:
    """Decisions, newest first, filtered; ``next_cursor`` fetches the next page. ``format=csv|xlsx``
    exports every matching decision (streamed, any size; ``cursor``/``limit`` do not apply)."""
    if format != "json":
        rows = store.iter_decisions(who.scope, **found)
        if format == "csv":
            body = export.csv_chunks(rows, export.DECISION_COLUMNS)
            media, ext = "text/csv; charset=utf-8", "csv"
        else:
            body = export.xlsx_chunks(rows, export.DECISION_COLUMNS)
            media, ext = XLSX, "xlsx"
        return StreamingResponse(body, media_type=media,
                                 headers={"Content-Disposition": f'attachment; filename="decisions.{ext}"'})
    try:
        page, nxt = store.decisions(who.scope, cursor=cursor, limit=limit, **found)
    except ValueError as exc:
        raise invalid("cursor", str(exc)) from None
    return {"decisions": page, "next_cursor": nxt}
