"""The OpenAPI document tells the truth: the API-key scheme, our error bodies (checked against what the
app really answers), the examples from schemas/examples, and doc pages that load nothing from elsewhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from services.common.settings import load_settings
from services.ingress import openapi
from services.ingress.app import create_app
from tests.factories import event

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"


@pytest.fixture(scope="module")
def http() -> TestClient:
    # No lifespan (no `with`): no broker. Auth and validation answer before the engine is needed.
    return TestClient(create_app(load_settings({})))


@pytest.fixture(scope="module")
def doc(http: TestClient) -> dict[str, Any]:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def documented(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON Schema of one documented response, with the document's components to resolve $refs."""
    content = doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    return {**content["schema"], "components": doc["components"]}


def test_api_key_scheme_guards_the_keyed_operations(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": doc["components"]["securitySchemes"]["ApiKey"]["description"]}
    paths = doc["paths"]
    for path, method in (("/v1/events", "post"), ("/v1/patient-status", "post"), ("/v1/rules", "get"),
                         ("/nhsa/3101", "post"), ("/cds-services/{service_id}", "post"),
                         ("/v1/alerts/{alert_id}/feedback", "post")):
        op = paths[path][method]
        # Alternatives: CDS Hooks clients may sign a JWT instead (scheme CdsJwt).
        expected = [{"CdsJwt": []}, {"ApiKey": []}] if path.startswith("/cds-services") else [{"ApiKey": []}]
        assert op["security"] == expected, path
        # The key is the scheme, not a plain header parameter any more.
        assert not [p for p in op.get("parameters", []) if p["name"].lower() == "x-api-key"], path
    for path in ("/healthz", "/metrics", "/cds-services"):
        assert "security" not in paths[path]["get"], path


def test_error_responses_are_ours_where_each_applies(doc: dict[str, Any]) -> None:
    ours = {"$ref": "#/components/schemas/ErrorBody"}
    events = doc["paths"]["/v1/events"]["post"]["responses"]
    for status in ("401", "403", "413", "422"):
        assert events[status]["content"]["application/json"]["schema"] == ours, status
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["error", "message"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # FastAPI's default shape is gone
    rules = doc["paths"]["/v1/rules"]["get"]["responses"]
    assert "401" in rules and "403" not in rules and "413" not in rules  # a GET: no body to limit
    assert set(doc["paths"]["/healthz"]["get"]["responses"]) == {"200"}
    # The NHSA dialect answers in its envelope: infcode -1 with HTTP 200, never a 422.
    nhsa = doc["paths"]["/nhsa/3101"]["post"]["responses"]
    assert "422" not in nhsa
    assert nhsa["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NhsaErrorResponse"}
    # Every documented example is a valid body of its own status.
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                media = response.get("content", {}).get("application/json", {})
                if media.get("schema") == ours:
                    samples = ([media["example"]] if "example" in media
                               else [e["value"] for e in media["examples"].values()])
                    for sample in samples:
                        jsonschema.validate(sample, documented(doc, path, method, int(status)))


def test_real_error_bodies_match_the_documented_schema(http: TestClient, doc: dict[str, Any]) -> None:
    body = event(institution="H1")
    answers = {
        401: http.post("/v1/events", json=body),
        403: http.post("/v1/events", json=event(institution="H2"), headers={"X-API-Key": "dev-key-h1"}),
        422: http.post("/v1/events", json={**body, "patient": {**body["patient"], "gender": "X"}},
                       headers={"X-API-Key": "dev-key-h1"}),
    }
    for status, r in answers.items():
        assert r.status_code == status, r.text
        jsonschema.validate(r.json(), documented(doc, "/v1/events", "post", status))
    assert answers[401].headers["www-authenticate"] == "ApiKey"
    assert answers[422].json()["field"] == "patient.gender"
    r = http.get("/v1/rules", headers={"X-API-Key": "wrong-key-123"})
    assert r.status_code == 401
    jsonschema.validate(r.json(), documented(doc, "/v1/rules", "get", 401))


def test_every_http_example_is_attached_to_its_operation(doc: dict[str, Any]) -> None:
    attached: set[str] = set()
    for ops in doc["paths"].values():
        for op in ops.values():
            contents = [op.get("requestBody", {}).get("content", {})]
            contents += [r.get("content", {}) for r in op["responses"].values()]
            for content in contents:
                attached |= set(content.get("application/json", {}).get("examples", {}))
    files = {p.name.removesuffix(".json") for p in EXAMPLES.glob("*.json") if p.name not in openapi.NOT_HTTP}
    assert files and files <= attached, sorted(files - attached)
    events = doc["paths"]["/v1/events"]["post"]
    example = events["requestBody"]["content"]["application/json"]["examples"]["native-event.request.outpatient"]
    assert example["value"]["event_id"] and example["value"]["institution"]["id"]
    decision_examples = events["responses"]["200"]["content"]["application/json"]["examples"]
    assert "native-decision.response.outpatient" in decision_examples


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_load_only_assets_served_here(http: TestClient, page: str) -> None:
    r = http.get(page)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|(?:url|_url)\s*:\s*['"]([^'"]+)['"]""", r.text)
    urls = [u for pair in urls for u in pair if u]
    assert urls, r.text
    assert not [u for u in urls if "://" in u or u.startswith("//")], urls
    for url in urls:
        if url.startswith(openapi.ASSETS_URL):
            asset = http.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url


def test_every_operation_states_its_roles() -> None:
    from services.common.settings import load_settings
    from services.ingress.app import create_app
    from services.ingress.openapi import ROLES

    doc = create_app(load_settings({})).openapi()
    known = {"public", "institution", "reviewer", "senior_reviewer", "admin", "nhsa_gateway", "cds_client"}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert (method, path) in ROLES, f"{method.upper()} {path}: add its roles to ROLES (openapi.py)"
            assert op["x-roles"] and set(op["x-roles"]) <= known, (method, path, op["x-roles"])
    assert set(ROLES) == {(m, p) for p, ops in doc["paths"].items() for m in ops}, "ROLES names a route that is gone"


def test_a_405_allows_every_documented_method_of_the_path(http: TestClient, doc: dict[str, Any]) -> None:
    """A path served by several routes (GET and POST /v1/cases are two) answers 405 with an Allow
    header naming all their methods, as documented — not just the first route's."""
    for path, ops in doc["paths"].items():
        documented = {m.upper() for m in ops}
        method = next(m for m in ("PATCH", "PUT", "DELETE", "POST", "GET") if m not in documented)
        r = http.request(method, re.sub(r"\{[^}]+\}", "x", path))
        assert r.status_code == 405, (path, method, r.status_code)
        assert set(r.headers["allow"].split(", ")) - {"HEAD"} == documented, (path, r.headers["allow"])
