"""API-key authentication: ``X-API-Key`` → institution; admin keys for the bureau."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from services.common.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

# One security scheme for every keyed route (OpenAPI `ApiKey`: the Authorize button on /docs).
# auto_error=False: the checks below answer 401 in our error shape, 403 stays for the
# institution check.
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False,
    description="An institution's key (events, feedback, NHSA, CDS Hooks) or a bureau admin key "
    "(patient status); lookups take either.",
)
ApiKeyHeader = Annotated[str | None, Depends(api_key_header)]


async def institution_for_key(
    settings: SettingsDep,
    x_api_key: ApiKeyHeader,
) -> str:
    """The institution the caller's key belongs to (401 when missing or unknown)."""
    if not x_api_key:
        raise HTTPException(401, {"error": "unauthorized", "field": "X-API-Key", "message": "missing X-API-Key header"},
                            headers={"WWW-Authenticate": "ApiKey"})
    institution = settings.institution_for(x_api_key)
    if institution is None:
        raise HTTPException(401, {"error": "unauthorized", "field": "X-API-Key", "message": "unknown API key"},
                            headers={"WWW-Authenticate": "ApiKey"})
    return institution


async def require_admin(
    settings: SettingsDep,
    x_api_key: ApiKeyHeader,
) -> None:
    if not x_api_key or not settings.is_admin_key(x_api_key):
        raise HTTPException(401, {"error": "unauthorized", "field": "X-API-Key", "message": "admin key required"},
                            headers={"WWW-Authenticate": "ApiKey"})


async def any_key(
    settings: SettingsDep, x_api_key: ApiKeyHeader
) -> None:
    """Any valid key, institution or admin (lookups that carry no patient data)."""
    if not x_api_key or (settings.institution_for(x_api_key) is None and not settings.is_admin_key(x_api_key)):
        raise HTTPException(401, {"error": "unauthorized", "field": "X-API-Key", "message": "missing or unknown API key"},
                            headers={"WWW-Authenticate": "ApiKey"})


InstitutionDep = Annotated[str, Depends(institution_for_key)]
AdminDep = Annotated[None, Depends(require_admin)]
AnyKey = Annotated[None, Depends(any_key)]


def check_institution(caller: str, institution_id: str, field: str = "institution.id") -> None:
    if caller != institution_id:
        raise HTTPException(403, {"error": "forbidden", "field": field,
                                  "message": f"this API key may only submit events of institution {caller}"})
