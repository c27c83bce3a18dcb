"""How the clients that exist authenticate: the national gateway's signed headers and CDS Hooks JWTs.

* **NHSA gateway signature** (``PRESETTLE_NHSA_PAASIDS="paasid:secret:INSTITUTION,…"``): the
  headers ``x-tif-paasid``, ``x-tif-timestamp`` (Unix seconds), ``x-tif-nonce`` and
  ``x-tif-signature`` = hex SHA-256 of ``timestamp + secret + nonce + timestamp`` (either case),
  as HIS integrations sign calls to the national platform's gateway. The timestamp must be within
  ±``PRESETTLE_NHSA_SIGNATURE_WINDOW_S`` (300 s) of our clock and a nonce is accepted once per
  paasid within that window. The paasid names the institution.
* **CDS Hooks JWT** (``PRESETTLE_CDS_ISSUERS``): ``Authorization: Bearer <jwt>`` signed by an
  allowed issuer (RS/ES/PS algorithms; keys from the issuer's JWKS: inline, a file, or a URL), with
  ``aud`` = the service endpoint called (``PRESETTLE_CDS_SERVICE_URL`` + ``/cds-services/<id>``,
  or the discovery base), ``exp`` in the future, ``iat`` no older than
  ``PRESETTLE_CDS_JWT_MAX_AGE_S`` and a ``jti`` never seen within that window. The issuer names the
  institution.

Replay caches are per ingress process (see docs/integration.md for several replicas).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi  # httpx depends on it: its CA bundle
import httpx
import jwt
import orjson

from services.common.settings import Settings

log = logging.getLogger("presettle.ingress")

GATEWAY_HEADERS = ("x-tif-paasid", "x-tif-timestamp", "x-tif-nonce", "x-tif-signature")
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]
LEEWAY_S = 30  # clock skew allowed on exp / iat


# One TLS context for every outbound call (EHR FHIR servers, JWKS URLs), built when the ingress
# starts: building it loads the CA bundle, which costs milliseconds to seconds on a busy machine —
# too much to pay inside a request's budget (httpx builds one per client otherwise).
_TLS = ssl.create_default_context(cafile=certifi.where())


def http_client(timeout: float, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """An outbound HTTP client on the shared TLS context (no redirects followed)."""
    return httpx.AsyncClient(timeout=timeout, headers=headers, verify=_TLS, follow_redirects=False)


class AuthFailure(Exception):
    """Authentication (401) or authorisation (403) failed; ``message`` is Chinese with English beside it."""

    def __init__(self, field: str, message: str, status: int = 401) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


class ReplayCache:
    """Values seen recently (nonce, jti), each remembered until its expiry; bounded in size."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()  # value → expiry (monotonic order of insertion)
        self.max_entries = max_entries

    def _prune(self, now: float) -> None:
        while self._seen:
            _key, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) < self.max_entries:
                break
            self._seen.popitem(last=False)

    def add(self, value: str, expiry: float, now: float) -> bool:
        """Remember ``value`` until ``expiry``; False when it is already remembered (a replay)."""
        self._prune(now)
        known = self._seen.get(value)
        if known is not None and known > now:
            return False
        self._seen[value] = expiry
        self._seen.move_to_end(value)
        return True

    def __len__(self) -> int:
        return len(self._seen)


# =====================================================================================
# NHSA gateway signature
# =====================================================================================
def gateway_signature(timestamp: str, secret: str, nonce: str) -> str:
    """hex SHA-256 of ``timestamp + secret + nonce + timestamp`` (lower case)."""
    return hashlib.sha256(f"{timestamp}{secret}{nonce}{timestamp}".encode()).hexdigest()


def has_gateway_headers(headers: Mapping[str, str]) -> bool:
    return any(headers.get(h) for h in GATEWAY_HEADERS)


def verify_gateway(headers: Mapping[str, str], settings: Settings, nonces: ReplayCache, now: float) -> str:
    """The institution of a correctly signed request (AuthFailure otherwise). ``now``: Unix seconds."""
    values = {h: (headers.get(h) or "").strip() for h in GATEWAY_HEADERS}
    for name, value in values.items():
        if not value:
            raise AuthFailure(name, f"鉴权参数不完整：缺少请求头 {name} (missing gateway header {name})")
    paasid, raw_ts, nonce, signature = (values[h] for h in GATEWAY_HEADERS)
    entry = settings.paasid(paasid)
    if entry is None:
        raise AuthFailure("x-tif-paasid", "未知的 paasid，未在本服务登记 (unknown paasid)")
    secret, institution = entry
    if not raw_ts.isdigit() or len(raw_ts) > 13:
        raise AuthFailure("x-tif-timestamp", "时间戳格式错误，应为 Unix 秒 (x-tif-timestamp is not Unix seconds)")
    ts = int(raw_ts) / (1000 if len(raw_ts) == 13 else 1)  # milliseconds tolerated
    window = settings.nhsa_signature_window_s
    if abs(now - ts) > window:
        raise AuthFailure("x-tif-timestamp", f"时间戳已过期或超前，超出 ±{window} 秒 (x-tif-timestamp is outside "
                          f"±{window} s of the server time: expired or clock skew)")
    if len(nonce) > 128:
        raise AuthFailure("x-tif-nonce", "随机数过长 (x-tif-nonce longer than 128 characters)")
    expected = gateway_signature(raw_ts, secret, nonce)
    if not hmac.compare_digest(expected, signature.lower()):
        raise AuthFailure("x-tif-signature", "签名校验失败 (bad x-tif-signature: expected hex SHA-256 of "
                          "timestamp + secret + nonce + timestamp)")
    # Remembered for the whole window on both sides of the timestamp: a nonce cannot come back
    # while its timestamp is still acceptable.
    if not nonces.add(f"{paasid}\x00{nonce}", ts + window + 1, now):
        raise AuthFailure("x-tif-nonce", "随机数已使用，疑似重放请求 (x-tif-nonce already used within the window: "
                          "replayed request)")
    return institution


# =====================================================================================
# CDS Hooks JWT
# =====================================================================================
@dataclass
class _Keys:
    keys: dict[str, Any]  # kid → PyJWK ('' for a key without kid)
    loaded_at: float


class JwtVerifier:
    """Verifies CDS Hooks bearer tokens against the configured issuers (JWKS cached per issuer)."""

    JWKS_TTL_S = 300.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jtis = ReplayCache()
        self._keys: dict[str, _Keys] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.settings.cds_issuer_map)

    async def _load(self, iss: str, entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("jwks"):
            doc = entry["jwks"]
        elif entry.get("jwks_file"):
            doc = orjson.loads(Path(entry["jwks_file"]).read_bytes())
        else:
            async with http_client(2.0) as client:
                resp = await client.get(entry["jwks_url"])
                resp.raise_for_status()
                doc = resp.json()
        keys: dict[str, Any] = {}
        for raw in (doc.get("keys") or []) if isinstance(doc, dict) else []:
            try:
                key = jwt.PyJWK.from_dict(raw)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
                log.warning("CDS issuer %s: a JWKS key is unusable (%s)", iss, type(exc).__name__)
                continue
            keys[str(raw.get("kid") or "")] = key
        return keys

    async def _key(self, iss: str, kid: str | None, now: float) -> Any:
        entry = self.settings.cds_issuer_map[iss]
        cached = self._keys.get(iss)
        fresh = cached is not None and (entry.get("jwks") or now - cached.loaded_at < self.JWKS_TTL_S)
        if cached is None or not fresh or (kid and kid not in cached.keys and not entry.get("jwks")
                                           and now - cached.loaded_at > 10):
            try:
                cached = _Keys(await self._load(iss, entry), now)
            except (OSError, ValueError, TypeError, AttributeError, httpx.HTTPError) as exc:  # file, URL, JSON
                raise AuthFailure("Authorization", f"无法获取签发方公钥 (the JWKS of issuer {iss} cannot be loaded: "
                                  f"{type(exc).__name__})") from None
            self._keys[iss] = cached
        if kid:
            key = cached.keys.get(kid)
        else:
            key = next(iter(cached.keys.values())) if len(cached.keys) == 1 else None
        if key is None:
            raise AuthFailure("Authorization", f"签发方无此密钥 (no key {kid!r} in the JWKS of issuer {iss})")
        return key

    def audiences(self, service_id: str, request_url: str) -> list[str]:
        """Accepted ``aud`` values: the service endpoint (first), its feedback endpoint, the discovery base."""
        base = self.settings.cds_service_url
        if base:
            service = f"{base}/cds-services/{service_id}"
            return [service, f"{service}/feedback", f"{base}/cds-services"]
        url = request_url.split("?", 1)[0].rstrip("/")  # no configured URL: the one the request arrived at
        service = url.removesuffix("/feedback")
        return [service, f"{service}/feedback", service.rsplit("/", 1)[0]]

    async def verify(self, authorization: str | None, service_id: str, request_url: str, now: float) -> str:
        """The institution of the token's issuer (AuthFailure otherwise)."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthFailure("Authorization", "缺少 Bearer 令牌 (missing 'Authorization: Bearer <jwt>')")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthFailure("Authorization", "令牌格式错误 (the bearer token is not a JWT)") from None
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss not in self.settings.cds_issuer_map:
            raise AuthFailure("Authorization", f"签发方未登记 (issuer {str(iss)[:100]!r} is not allowed)")
        if header.get("alg") not in JWT_ALGORITHMS:
            raise AuthFailure("Authorization", f"签名算法不被接受 (alg {header.get('alg')!r}; use RS/ES/PS)")
        key = await self._key(iss, header.get("kid"), now)
        try:
            verified = jwt.decode(
                token, key=key, algorithms=JWT_ALGORITHMS, audience=self.audiences(service_id, request_url),
                issuer=iss, leeway=LEEWAY_S, options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailure("Authorization", "令牌已过期 (the JWT has expired: exp)") from None
        except jwt.InvalidAudienceError:
            raise AuthFailure("Authorization", f"令牌受众不符 (aud must be {self.audiences(service_id, request_url)[0]})"
                              ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthFailure("Authorization", f"令牌缺少声明 {exc.claim} (the JWT has no {exc.claim} claim)") from None
        except jwt.ImmatureSignatureError:
            raise AuthFailure("Authorization", "令牌签发时间在未来 (iat/nbf is in the future)") from None
        except jwt.InvalidSignatureError:
            raise AuthFailure("Authorization", "令牌签名无效 (bad JWT signature)") from None
        except jwt.PyJWTError as exc:
            raise AuthFailure("Authorization", f"令牌无效 (invalid JWT: {exc})"[:200]) from None
        iat = float(verified["iat"])
        max_age = self.settings.cds_jwt_max_age_s
        if iat > now + LEEWAY_S:
            raise AuthFailure("Authorization", "令牌签发时间在未来 (iat is in the future)")
        if now - iat > max_age + LEEWAY_S:
            raise AuthFailure("Authorization", f"令牌签发过久 (iat is older than {max_age} s)")
        if not self.jtis.add(f"{iss}\x00{verified['jti']}", iat + max_age + 2 * LEEWAY_S, now):
            raise AuthFailure("Authorization", "令牌已使用，疑似重放 (jti already used: replayed token)")
        return str(self.settings.cds_issuer_map[iss]["institution"])


def now_s() -> float:
    return time.time()
