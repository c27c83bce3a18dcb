"""Who may see the live page, and how a browser proves it.

An ``EventSource`` cannot send headers, so the page exchanges a key once for a
cookie: ``POST /dashboard/session`` with ``X-API-Key`` (typed into the page's key
prompt, or passed once as ``/dashboard?key=…``, which the page removes from the
address bar at once) answers with ``presettle_board``, an HttpOnly,
``SameSite=Strict`` cookie scoped to ``/dashboard`` that the page's ``fetch`` and
``EventSource`` then send by themselves.

The cookie holds no key: ``v1.<scope>.<expiry>.<key fingerprint>.<HMAC>``, signed
with a secret derived from ``PRESETTLE_PSEUDONYM_KEY`` (the same on every ingress
replica, so any replica accepts it). It is valid for ``SESSION_S`` and only while
a configured key with that fingerprint still has that scope: removing a key from
the settings ends its sessions at the next request. Scripts may send ``X-API-Key``
to ``/dashboard/data`` and ``/dashboard/stream`` directly.

Scope: an admin key sees the whole region (``ALL``); an institution key its own
institution only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Cookie, Depends, Header, HTTPException, Request, Response

from services.common.settings import Settings
from services.ingress.auth import SettingsDep

ALL = "*"
COOKIE = "presettle_board"
SESSION_S = 8 * 3600


def _secret(settings: Settings) -> bytes:
    return hashlib.blake2b(settings.pseudonym_key.get_secret_value().encode(), person=b"presettle-board", digest_size=32).digest()


def fingerprint(key: str) -> str:
    return hashlib.blake2b(key.encode(), person=b"presettle-keyfp", digest_size=8).hexdigest()


def scope_of_key(settings: Settings, key: str | None) -> str | None:
    if not key:
        return None
    if settings.is_admin_key(key):
        return ALL
    return settings.institution_for(key)


def make_token(settings: Settings, scope: str, key: str, now: float | None = None) -> str:
    expiry = int((now or time.time()) + SESSION_S)
    scope_b64 = base64.urlsafe_b64encode(scope.encode()).decode().rstrip("=")
    body = f"v1.{scope_b64}.{expiry}.{fingerprint(key)}"
    mac = hmac.new(_secret(settings), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def scope_of_token(settings: Settings, token: str | None, now: float | None = None) -> str | None:
    """The scope a session cookie grants, or None (forged, expired, or its key is gone)."""
    if not token:
        return None
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != "v1":
        return None
    body, mac = ".".join(parts[:4]), parts[4]
    expected = hmac.new(_secret(settings), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, expected):
        return None
    _, scope_b64, expiry, fp = parts[:4]
    if not expiry.isdigit() or int(expiry) < (now or time.time()):
        return None
    try:
        scope = base64.urlsafe_b64decode(scope_b64 + "=" * (-len(scope_b64) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    # Still a configured key with that fingerprint and that scope (revocation by removing the key).
    keys = settings.admin_key_list() if scope == ALL else [
        k for k, i in settings.institution_keys().items() if i == scope]
    if not any(hmac.compare_digest(fingerprint(k), fp) for k in keys):
        return None
    return scope


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, {"error": "unauthorized", "field": "X-API-Key", "message": message},
                         headers={"WWW-Authenticate": "ApiKey"})


async def key_scope(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="Institution or admin key")] = None,
) -> str:
    scope = scope_of_key(settings, x_api_key)
    if scope is None:
        raise _unauthorized("missing or unknown API key")
    return scope


async def board_scope(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="Institution or admin key (scripts)")] = None,
    presettle_board: Annotated[str | None, Cookie(description="session from POST /dashboard/session")] = None,
) -> str:
    """``ALL`` for an admin, else the caller's institution; 401 without a valid key or session."""
    scope = scope_of_key(settings, x_api_key) if x_api_key else scope_of_token(settings, presettle_board)
    if scope is None:
        raise _unauthorized("the live page needs a key: POST /dashboard/session with X-API-Key, "
                            "or open /dashboard and enter one")
    return scope


def set_session_cookie(response: Response, request: Request, scope: str) -> None:
    key = request.headers.get("x-api-key", "")
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(COOKIE, make_token(request.app.state.settings, scope, key), max_age=SESSION_S,
                        path="/dashboard", httponly=True, samesite="strict", secure=secure)


BoardScope = Annotated[str, Depends(board_scope)]
