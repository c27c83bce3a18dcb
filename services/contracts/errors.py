"""The error body every native and CDS Hooks route answers with (``{"error", "field", "message", "errors"}``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ErrorCode = Literal["invalid_request", "unauthorized", "forbidden", "not_found", "payload_too_large", "unavailable",
                    "http_error", "internal_error", "bundle_rejected", "conflict"]


class ErrorDetail(BaseModel):
    field: str
    message: str
    type: str


class ErrorBody(BaseModel):
    """Native and CDS Hooks errors: 422 invalid_request, 401 unauthorized, 403 forbidden, 404, 503."""

    model_config = ConfigDict(extra="forbid", title="NativeError")

    error: str = Field(description="invalid_request | unauthorized | forbidden | not_found | payload_too_large "
                       "| unavailable | bundle_rejected | conflict")
    field: str | None = Field(default=None, description="the field at fault, e.g. items[0].quantity")
    message: str
    errors: list[ErrorDetail] | None = None
    failures: list[dict[str, Any]] | None = Field(
        default=None, description="bundle_rejected (POST /v1/admin/rulebase) only: per failing rule and golden "
        "case, {rule_id, case, name, errors} (rule_id null and file set: the bundle did not load)")


def error_body(error: ErrorCode, message: str, field: str | None = None,
               errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An error body as a dict (only the keys that have a value, as the routes answer)."""
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["field"] = field
    body["message"] = message
    if errors is not None:
        body["errors"] = errors
    return body
