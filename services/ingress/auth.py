"""API-key authentication: ``X-API-Key`` → institution; agency staff (reviewer, senior reviewer); admin.

:func:`principal` resolves any key to a :class:`Principal` — its role, what it may read
(:class:`services.decisionlog.store.Scope`) and the name recorded in case histories — for the
decision-log, case, risk and report routes, which state their roles in ``ROLES``
(services/ingress/openapi.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from services.common.settings import Settings
from services.decisionlog.store import EVERYTHING, Scope, region_prefix


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
    """Any valid key, institution, staff or admin (lookups that carry no patient data)."""
    if not x_api_key or (settings.institution_for(x_api_key) is None and not settings.is_admin_key(x_api_key)
                         and settings.staff_for(x_api_key) is None):
        raise HTTPException(401, {"error": "unauthorized", "field": "X-API-Key", "message": "missing or unknown API key"},
                            headers={"WWW-Authenticate": "ApiKey"})


InstitutionDep = Annotated[str, Depends(institution_for_key)]
AdminDep = Annotated[None, Depends(require_admin)]
AnyKey = Annotated[None, Depends(any_key)]


def check_institution(caller: str, institution_id: str, field: str = "institution.id") -> None:
    if caller != institution_id:
        raise HTTPException(403, {"error": "forbidden", "field": field,
                                  "message": f"this API key may only submit events of institution {caller}"})


Role = Literal["institution", "reviewer", "senior_reviewer", "admin"]
ROLE_NAMES: tuple[Role, ...] = ("institution", "reviewer", "senior_reviewer", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling: role, what it may read, and the actor name recorded in case histories."""

    role: Role
    name: str
    scope: Scope
    institution: str | None = None
    region: str | None = None  # a staff key's scope as configured: a region code or "*"

    def public(self) -> dict[str, str | None]:
        return {"role": self.role, "name": self.name, "institution": self.institution,
                "scope": self.institution or self.region or "*"}


def principal_for(settings: Settings, key: str | None) -> Principal | None:
    if not key:
        return None
    institution = settings.institution_for(key)
    if institution is not None:
        return Principal("institution", f"institution:{institution}", Scope(institution=institution), institution)
    staff = settings.staff_for(key)
    if staff is not None:
        scope = EVERYTHING if staff.scope == "*" else Scope(region_prefix=region_prefix(staff.scope))
        return Principal(staff.role, staff.name, scope, region=staff.scope)
    if settings.is_admin_key(key):
        return Principal("admin", "admin", EVERYTHING, region="*")
    return None


async def principal(settings: SettingsDep, x_api_key: ApiKeyHeader) -> Principal:
    """Any valid key as a :class:`Principal` (401 when missing or unknown)."""
    found = principal_for(settings, x_api_key)
    if found is None:
        raise HTTPException(401, {"error": "unauthorized", "field": "X-API-Key",
                                  "message": "missing X-API-Key header" if not x_api_key else "unknown API key"},
                            headers={"WWW-Authenticate": "ApiKey"})
    return found


PrincipalDep = Annotated[Principal, Depends(principal)]


def require_role(who: Principal, roles: tuple[str, ...]) -> None:
    if who.role not in roles:
        raise HTTPException(403, {"error": "forbidden", "field": "X-API-Key",
                                  "message": f"this route is for {', '.join(roles)}; this key is {who.role}"})
