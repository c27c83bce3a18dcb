"""CDS Hooks authentication as the specification describes: the CDS client's JWT bearer token.

Issuer allow-list with JWKS (inline, file, or URL on loopback), aud = the service endpoint,
exp, iat, jti replay window, issuer → institution; X-API-Key as a switchable alternative.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.common.settings import SettingsError, load_settings
from services.rules.decision import decision_id_for
from tests.dialects.conftest import App, InProcessEngine, example
from tests.dialects.fhir_stub import FhirStub
from tests.factories import uid

BASE = "http://presettle.test"  # the App client's base URL
SIGN = "/cds-services/presettle-order-sign"
ISS = "https://ehr.example-hospital.cn"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> dict[str, Any]:
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key()))
    return {"keys": [{**rsa_jwk, "kid": "rsa-1", "alg": "RS384", "use": "sig"},
                     {**ec_jwk, "kid": "ec-1", "alg": "ES384", "use": "sig"}]}


def token(iss: str = ISS, aud: str = BASE + SIGN, key: Any = RSA_KEY, kid: str = "rsa-1", alg: str = "RS384",
          **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": iss, "sub": "client-id", "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4()),
            **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def make_app(fake: InProcessEngine, **env: str) -> App:
    from services.ingress.app import create_app

    settings = load_settings({"PRESETTLE_BUDGET_MS": "30000", "PRESETTLE_CDS_SERVICE_URL": BASE,
                              "PRESETTLE_CDS_ISSUERS": json.dumps({ISS: {"institution": "H2", "jwks": jwks()}}),
                              **env})
    app = create_app(settings)
    app.state.engine_client = fake
    return App(app, {})


def sign_body() -> dict[str, Any]:
    body = example("cds-hook.request.order-sign.json")
    body["context"]["patientId"] = body["prefetch"]["patient"]["id"] = uid("P")
    return body


@pytest.fixture
def jwt_app(fake: InProcessEngine) -> App:
    return make_app(fake)


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


def test_a_valid_jwt_is_the_issuers_institution(jwt_app: App) -> None:
    r = jwt_app.post(SIGN, json=sign_body(), headers=bearer(token()))
    assert r.status_code == 200, r.text
    ext = r.json()["extension"]["presettle"]
    assert ext["decision_id"] == decision_id_for("H2", ext["event_id"])  # recorded for the issuer's institution
    assert "R03" in [c["source"]["topic"]["code"] for c in r.json()["cards"]]
    ec_token = token(key=EC_KEY, kid="ec-1", alg="ES384")
    assert jwt_app.post(SIGN, json=sign_body(), headers=bearer(ec_token)).status_code == 200
    # the discovery base is accepted as aud too
    assert jwt_app.post(SIGN, json=sign_body(), headers=bearer(token(aud=BASE + "/cds-services"))).status_code == 200


@pytest.mark.parametrize("make, words", [
    (lambda: token(aud="https://someone-else.example/cds-services/x"), "受众不符"),
    (lambda: token(exp=int(time.time()) - 120), "已过期"),
    (lambda: token(iat=int(time.time()) - 3600, exp=int(time.time()) + 60), "签发过久"),
    (lambda: token(iat=int(time.time()) + 600), "未来"),
    (lambda: token(jti=None), "缺少声明 jti"),
    (lambda: token(iss="https://unknown-ehr.example"), "签发方未登记"),
    (lambda: token(key=OTHER_KEY), "签名无效"),
    (lambda: token(kid="nope"), "无此密钥"),
    (lambda: jwt.encode({"iss": ISS, "aud": BASE + SIGN, "exp": int(time.time()) + 60, "iat": int(time.time()),
                         "jti": "x"}, "a-shared-secret-of-some-length-0123456789", algorithm="HS256"), "签名算法"),
    (lambda: "not-a-jwt", "令牌格式错误"),
])
def test_bad_tokens_are_401_saying_why(jwt_app: App, make: Any, words: str) -> None:
    r = jwt_app.post(SIGN, json=sign_body(), headers=bearer(make()))
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized" and words in r.json()["message"], r.json()
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_a_replayed_jti_is_refused(jwt_app: App) -> None:
    t = token()
    assert jwt_app.post(SIGN, json=sign_body(), headers=bearer(t)).status_code == 200
    r = jwt_app.post(SIGN, json=sign_body(), headers=bearer(t))
    assert r.status_code == 401 and "重放" in r.json()["message"]


def test_x_api_key_is_an_alternative_a_deployment_can_switch_off(fake: InProcessEngine) -> None:
    on = make_app(fake)
    assert on.post(SIGN, json=sign_body(), headers={"X-API-Key": "dev-key-h1"}).status_code == 200
    assert on.post(SIGN + "/feedback", json={"feedback": [{"card": "x", "outcome": "accepted"}]},
                   headers={"X-API-Key": "dev-key-h1"}).status_code == 422  # authenticated; the card is bad
    for aud in (BASE + SIGN, BASE + SIGN + "/feedback"):  # the feedback endpoint takes the client's JWT too
        r = on.post(SIGN + "/feedback", json={"feedback": [{"card": "x", "outcome": "accepted"}]},
                    headers=bearer(token(aud=aud)))
        assert r.status_code == 422 and r.json()["field"] == "feedback[0].card", r.text
    # credentials of another scheme beside a valid key are refused, not ignored
    r = on.post(SIGN, json=sign_body(), headers={"X-API-Key": "dev-key-h1", "Authorization": "Basic aDE6cHc="})
    assert r.status_code == 401 and r.json()["field"] == "Authorization" and "Bearer" in r.json()["message"], r.text
    off = make_app(fake, PRESETTLE_CDS_API_KEY="off")
    r = off.post(SIGN, json=sign_body(), headers={"X-API-Key": "dev-key-h1"})
    assert r.status_code == 401 and "X-API-Key" not in r.json()["message"]
    assert off.post(SIGN, json=sign_body(), headers=bearer(token())).status_code == 200
    r = off.post(SIGN + "/feedback", json={"feedback": [{"card": "x", "outcome": "accepted"}]},
                 headers={"X-API-Key": "dev-key-h1"})
    assert r.status_code == 401
    assert off.get("/cds-services").status_code == 200  # discovery stays public


@pytest.fixture
def jwks_server() -> Iterator[FhirStub]:
    stub = FhirStub().start()
    stub.add(".well-known/jwks.json", jwks())
    yield stub
    stub.stop()


def test_jwks_from_a_file_or_a_url(fake: InProcessEngine, tmp_path: Path, jwks_server: FhirStub) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks()))
    by_file = make_app(fake, PRESETTLE_CDS_ISSUERS=json.dumps({ISS: {"institution": "H1", "jwks_file": str(path)}}))
    assert by_file.post(SIGN, json=sign_body(), headers=bearer(token())).status_code == 200
    url = f"{jwks_server.url}/.well-known/jwks.json"
    by_url = make_app(fake, PRESETTLE_CDS_ISSUERS=json.dumps({ISS: {"institution": "H1", "jwks_url": url}}))
    assert by_url.post(SIGN, json=sign_body(), headers=bearer(token())).status_code == 200
    assert [p for p, _ in jwks_server.seen] == ["/fhir/.well-known/jwks.json"]  # fetched once, then cached
    assert by_url.post(SIGN, json=sign_body(), headers=bearer(token())).status_code == 200
    assert len(jwks_server.seen) == 1


@pytest.mark.parametrize("raw", ['{"iss": {"jwks": {}}}', '{"iss": {"institution": "H1"}}', "[1]", "not json",
                                 '{"iss": {"institution": "H1", "jwks_url": "file:///etc/x"}}'])
def test_bad_issuer_settings_are_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="PRESETTLE_CDS_ISSUERS"):
        load_settings({"PRESETTLE_CDS_ISSUERS": raw})
