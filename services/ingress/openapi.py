"""The OpenAPI document and its pages, served by the ingress itself (no CDN, no web fonts).

``/docs`` (Swagger UI) and ``/redoc`` load their scripts from ``/docs/static``: the files
the ``fastapi-offline`` wheel ships (Swagger UI and ReDoc bundles, MIT and their own
licences), so the pages work on a hospital intranet with no route to the internet.

The document tells what the code does: the ``X-API-Key`` security scheme (declared in
``auth.py``, so Swagger UI shows an Authorize button), our error bodies instead of
FastAPI's default 422 shape, and the examples kept in ``schemas/examples`` attached to the
operations they belong to.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from services.contracts.errors import ErrorBody

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs/static"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "schemas" / "examples"
# The doc pages may load nothing from another host: the ReDoc bundle's footer would fetch the
# Redocly logo from a CDN; the browser refuses it (the image hides itself when it cannot load).
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")


def _error(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"},
                                             "example": example}}}


# Every error status the native API can answer, its meaning and a real body (services.contracts.errors).
ERRORS: dict[int, dict[str, Any]] = {
    401: _error("missing or unknown `X-API-Key` (`WWW-Authenticate: ApiKey`)",
                {"error": "unauthorized", "field": "X-API-Key", "message": "unknown API key"}),
    403: _error("the key's institution is not the event's `institution.id`",
                {"error": "forbidden", "field": "institution.id",
                 "message": "this API key may only submit events of institution H1"}),
    404: _error("no such resource",
                {"error": "not_found", "field": "service_id",
                 "message": "no CDS service 'x'; see GET /cds-services"}),
    409: _error("the request conflicts with the resource's current state",
                {"error": "conflict", "field": "action", "message": "action not allowed in this state"}),
    413: _error("the request body is larger than the ingress accepts",
                {"error": "payload_too_large", "field": "body", "message": "the request body is too large"}),
    422: _error("invalid request: `field` names the first field at fault, `errors` lists them all",
                {"error": "invalid_request", "field": "patient.gender",
                 "message": "patient.gender: Input should be 'M', 'F' or 'U'",
                 "errors": [{"field": "patient.gender", "message": "Input should be 'M', 'F' or 'U'",
                             "type": "literal_error"}]}),
    429: _error("too many requests: slow down and retry after `Retry-After` seconds",
                {"error": "rate_limited", "field": None, "message": "too many requests"}),
    503: _error("the broker did not take the record: nothing was recorded, send it again",
                {"error": "unavailable", "message": "broker unreachable"}),
}

# Statuses a route answers beyond what its signature shows (security → 401, parameters → 422).
EXTRA_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/v1/events"): (403,),  # auth.check_institution
    ("post", "/v1/alerts/{alert_id}/feedback"): (404, 503),  # 404: not an alert issued to the caller
    ("post", "/v1/patient-status"): (503,),
    ("post", "/v1/institution-status"): (503,),
    ("post", "/v1/doctor-status"): (503,),
    ("get", "/v1/institution-status/{institution_id}"): (403,),
    ("get", "/v1/doctor-status/{doctor_id}"): (403,),
    ("post", "/cds-services/{service_id}"): (404,),
    ("post", "/cds-services/{service_id}/feedback"): (404, 503),
    ("get", "/v1/decisions/{decision_id}"): (404, 503),
    ("get", "/v1/decisions"): (503,),
    ("get", "/v1/cases"): (503,),
    ("get", "/v1/cases/{case_id}"): (404, 503),
    ("post", "/v1/cases"): (403, 404, 503),
    ("post", "/v1/cases/{case_id}/{action}"): (403, 404, 409, 503),
}

# Examples from schemas/examples, by operation: (request body files, response files by status).
EXAMPLES: dict[tuple[str, str], tuple[str, dict[str, str]]] = {
    ("post", "/v1/events"): ("native-event.request.*", {"200": "native-decision.response.*",
                                                        "422": "native-error.response.missing-field"}),
    ("post", "/v1/admin/rulebase"): ("", {"200": "rulebase-publish.response.*",
                                          "422": "native-error.response.bundle-rejected"}),
    ("post", "/v1/alerts/{alert_id}/feedback"): ("native-feedback.request.*",
                                                 {"200": "native-feedback.response.*"}),
    ("post", "/v1/patient-status"): ("native-patient-status.request.*", {}),
    ("post", "/v1/institution-status"): ("native-institution-status.request.*", {}),
    ("post", "/v1/doctor-status"): ("native-doctor-status.request.*", {}),
    ("post", "/nhsa/3101"): ("nhsa-analysis.request.3101-*", {"200": "nhsa-*.response.*"}),
    ("post", "/nhsa/3102"): ("nhsa-analysis.request.3102-*", {"200": "nhsa-*.response.*"}),
    ("post", "/nhsa/3103"): ("nhsa-feedback.request.*", {"200": "nhsa-feedback.response.*"}),
    ("post", "/nhsa"): ("nhsa-*.request.*", {"200": "nhsa-*.response.*"}),
    ("get", "/cds-services"): ("", {"200": "cds-discovery.response.*"}),
    ("post", "/cds-services/{service_id}"): ("cds-hook.request.*", {"200": "cds-hook.response.*"}),
    ("post", "/cds-services/{service_id}/feedback"): ("cds-feedback.request.*",
                                                      {"200": "cds-feedback.response.*"}),
}
# Who may call each operation (`x-roles` in /openapi.json; a test checks every route has an entry).
# institution: an institution key (PRESETTLE_API_KEYS), own data only; reviewer / senior_reviewer: agency
# staff keys (PRESETTLE_STAFF_KEYS), their region only; admin: a bureau admin key; nhsa_gateway / cds_client:
# the dialects' own signatures; public: no key.
STAFF = ("reviewer", "senior_reviewer")
READERS = ("institution", *STAFF, "admin")
ROLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", "/v1/events"): ("institution",),
    ("get", "/v1/kb/items"): READERS,
    ("get", "/v1/kb/diagnoses"): READERS,
    ("get", "/v1/rules"): READERS,
    ("post", "/v1/patient-status"): ("admin",),
    ("post", "/v1/institution-status"): ("admin",),
    ("post", "/v1/doctor-status"): ("admin",),
    ("get", "/v1/institution-status/{institution_id}"): ("admin", *STAFF),
    ("get", "/v1/doctor-status/{doctor_id}"): ("admin", *STAFF),
    ("get", "/dashboard"): ("public",),
    ("post", "/dashboard/session"): ("institution", "admin"),
    ("delete", "/dashboard/session"): ("public",),
    ("get", "/dashboard/data"): ("institution", "admin"),
    ("get", "/dashboard/stream"): ("institution", "admin"),
    ("get", "/dashboard/ledger"): ("institution", "admin"),
    ("post", "/nhsa/3101"): ("institution", "nhsa_gateway"),
    ("post", "/nhsa/3102"): ("institution", "nhsa_gateway"),
    ("post", "/nhsa/3103"): ("institution", "nhsa_gateway"),
    ("post", "/nhsa"): ("institution", "nhsa_gateway"),
    ("get", "/cds-services"): ("public",),
    ("post", "/cds-services/{service_id}"): ("institution", "cds_client"),
    ("post", "/cds-services/{service_id}/feedback"): ("institution", "cds_client"),
    ("post", "/v1/alerts/{alert_id}/feedback"): ("institution",),
    ("post", "/v1/admin/rulebase"): ("admin",),
    ("get", "/v1/admin/rulebase/revisions"): ("admin",),
    ("post", "/v1/admin/rulebase/activate"): ("admin",),
    ("get", "/healthz"): ("public",),
    ("get", "/metrics"): ("public",),
    # the decision log and the review loop (docs/decisionlog.md)
    ("get", "/v1/whoami"): READERS,
    ("get", "/review"): ("public",),
    ("get", "/v1/decisions/{decision_id}"): READERS,
    ("get", "/v1/decisions"): READERS,
    ("get", "/v1/cases"): READERS,
    ("get", "/v1/cases/{case_id}"): READERS,
    ("post", "/v1/cases"): STAFF,
    ("post", "/v1/cases/{case_id}/{action}"): ("institution", *STAFF),
    ("get", "/v1/risk/{kind}"): READERS,
    ("get", "/v1/reports/summary"): READERS,
    ("get", "/v1/reports/monthly"): READERS,
}

# Example files that are not HTTP bodies (a record on a Kafka topic).
NOT_HTTP = {"feedback-record.nhsa.json"}


def load_examples(pattern: str, directory: Path = EXAMPLES_DIR) -> dict[str, dict[str, Any]]:
    """``{name: {"summary", "value"}}`` for every ``<pattern>.json`` in the examples directory."""
    if not pattern or not directory.is_dir():
        return {}
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        if fnmatch.fnmatch(path.name, pattern + ".json"):
            name = path.name.removesuffix(".json")
            out[name] = {"summary": name.split(".")[-1], "value": json.loads(path.read_text(encoding="utf-8"))}
    return out


def _set_examples(content: dict[str, Any], examples: dict[str, dict[str, Any]]) -> None:
    media = content.setdefault("application/json", {})
    media.pop("example", None)
    media["examples"] = {**media.get("examples", {}), **examples}


def refine(schema: dict[str, Any]) -> dict[str, Any]:
    """Our error bodies and examples in the generated document (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    defs = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(defs.pop("$defs", {}))
    components["ErrorBody"] = defs
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            key = (method, path)
            if key in ROLES:
                op["x-roles"] = list(ROLES[key])
            dialect = "nhsa" in op.get("tags", ())  # errors in the national envelope (nhsa.NhsaRoute)
            codes: set[int] = set(EXTRA_ERRORS.get(key, ()))
            if op.get("security"):
                codes.add(401)
            if "requestBody" in op:
                codes.add(413)  # the body-size limit answers before any route
            if "422" in responses:
                if dialect:
                    del responses["422"]  # the national envelope: infcode -1 with HTTP 200
                else:
                    codes.add(422)
            for code in sorted(codes):
                if dialect and str(code) in responses:
                    continue  # documented by the route in the dialect's envelope
                responses[str(code)] = json.loads(json.dumps(ERRORS[code]))
            body_pattern, response_patterns = EXAMPLES.get(key, ("", {}))
            if body_pattern and "requestBody" in op:
                _set_examples(op["requestBody"].setdefault("content", {}), load_examples(body_pattern))
            for status, pattern in response_patterns.items():
                found = load_examples(pattern)
                if found and status in responses:
                    _set_examples(responses[status].setdefault("content", {}), found)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in components and f'"#/components/schemas/{unused}"' not in json.dumps(schema["paths"]):
            del components[unused]
    return schema


def _own_assets_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets from this process; refine the OpenAPI document."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = refine(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _own_assets_only(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} — API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=oauth2_redirect,
            # validatorUrl null: no badge fetched from the public validator.
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None, "tryItOutEnabled": False},
        ))

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _own_assets_only(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} — API reference",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False,
        ))
