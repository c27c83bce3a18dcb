"""NHSA gateway-style authentication: x-tif-* signed headers → institution (services.ingress.gateway_auth)."""

from __future__ import annotations

import hashlib
import time

import pytest

from services.common.settings import SettingsError, load_settings
from services.ingress.gateway_auth import AuthFailure, ReplayCache, gateway_signature, verify_gateway
from tests.dialects.conftest import PAASIDS, App, example, signed_headers
from tests.dialects.test_routes import OUTPATIENT, fresh

SETTINGS = load_settings({"PRESETTLE_NHSA_PAASIDS": ",".join(f"{p}:{s}:{i}" for p, (s, i) in PAASIDS.items())})


def test_signature_is_sha256_of_timestamp_secret_nonce_timestamp() -> None:
    expected = hashlib.sha256(b"1700000000" + b"s3cret" + b"abc" + b"1700000000").hexdigest()
    assert gateway_signature("1700000000", "s3cret", "abc") == expected and len(expected) == 64


def test_verify_maps_paasid_to_institution_and_accepts_upper_case_hex() -> None:
    h = signed_headers("his-h2")
    h["x-tif-signature"] = h["x-tif-signature"].upper()  # several clients send upper-case hex
    assert verify_gateway(h, SETTINGS, ReplayCache(), time.time()) == "H2"


@pytest.mark.parametrize("change, field, words", [
    (lambda h: h.pop("x-tif-nonce"), "x-tif-nonce", "缺少请求头"),
    (lambda h: h.update({"x-tif-paasid": "nobody"}), "x-tif-paasid", "未知的 paasid"),
    (lambda h: h.update({"x-tif-timestamp": "yesterday"}), "x-tif-timestamp", "时间戳格式错误"),
    (lambda h: h.update({"x-tif-signature": "0" * 64}), "x-tif-signature", "签名校验失败"),
])
def test_each_failure_names_what_is_wrong(change, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    h = signed_headers()
    change(h)
    with pytest.raises(AuthFailure) as err:
        verify_gateway(h, SETTINGS, ReplayCache(), time.time())
    assert err.value.status == 401 and err.value.field == field and words in err.value.message


def test_timestamp_window_and_nonce_replay() -> None:
    now = time.time()
    old = signed_headers(timestamp=int(now) - 301)
    with pytest.raises(AuthFailure, match="超出 ±300 秒"):
        verify_gateway(old, SETTINGS, ReplayCache(), now)
    ahead = signed_headers(timestamp=int(now) + 290)  # within the window on the other side
    assert verify_gateway(ahead, SETTINGS, ReplayCache(), now) == "H1"
    nonces = ReplayCache()
    h = signed_headers()
    assert verify_gateway(h, SETTINGS, nonces, now) == "H1"
    with pytest.raises(AuthFailure, match="随机数已使用"):
        verify_gateway(signed_headers(nonce=h["x-tif-nonce"]), SETTINGS, nonces, now + 10)
    # the same nonce from another paasid is its own
    assert verify_gateway(signed_headers("his-h2", nonce=h["x-tif-nonce"]), SETTINGS, nonces, now) == "H2"
    # a rejected signature does not burn the nonce
    bad = signed_headers()
    bad["x-tif-signature"] = "ab" * 32
    with pytest.raises(AuthFailure):
        verify_gateway(bad, SETTINGS, nonces, now)
    assert verify_gateway(signed_headers(nonce=bad["x-tif-nonce"]), SETTINGS, nonces, now) == "H1"


def test_replay_cache_forgets_after_expiry_and_stays_bounded() -> None:
    cache = ReplayCache(max_entries=3)
    assert cache.add("a", 10.0, 0.0) and not cache.add("a", 10.0, 5.0)
    assert cache.add("a", 20.0, 11.0)  # expired: accepted again
    for v in "bcde":
        cache.add(v, 100.0, 12.0)
    assert len(cache) <= 3


@pytest.mark.parametrize("raw", ["his1:short:H1", "his1:secret-long-enough-123", "::H1"])
def test_bad_paasid_settings_are_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="PRESETTLE_NHSA_PAASIDS"):
        load_settings({"PRESETTLE_NHSA_PAASIDS": raw})


# -- on the routes -------------------------------------------------------------------------
def test_signed_request_without_api_key_is_answered(gateway_app: App) -> None:
    r = gateway_app.post("/nhsa/3101", json=fresh(example(OUTPATIENT)), headers=signed_headers())
    assert r.status_code == 200 and r.json()["infcode"] == 0, r.json()


@pytest.mark.parametrize("headers, words", [
    (lambda: {**signed_headers(), "x-tif-signature": "ab" * 32}, "签名校验失败"),
    (lambda: signed_headers(timestamp=int(time.time()) - 3600), "时间戳已过期"),
    (lambda: signed_headers("his-h1", secret="not-the-secret-at-all"), "签名校验失败"),
    (lambda: {**signed_headers(), "x-tif-paasid": "his-h9"}, "未知的 paasid"),
    (dict, "缺少鉴权信息"),
])
def test_401_in_the_envelope_with_a_chinese_err_msg(gateway_app: App, headers, words: str) -> None:  # type: ignore[no-untyped-def]
    r = gateway_app.post("/nhsa/3101", json=fresh(example(OUTPATIENT)), headers=headers())
    answer = r.json()
    assert r.status_code == 401 and answer["infcode"] == -1 and answer["output"] is None
    assert words in answer["err_msg"], answer


def test_replayed_nonce_is_401_and_other_institution_is_403(gateway_app: App) -> None:
    body = fresh(example(OUTPATIENT))
    h = signed_headers()
    assert gateway_app.post("/nhsa/3101", json=body, headers=h).json()["infcode"] == 0
    r = gateway_app.post("/nhsa/3101", json=body, headers=h)
    assert r.status_code == 401 and "随机数已使用" in r.json()["err_msg"]
    r = gateway_app.post("/nhsa/3101", json=body, headers=signed_headers("his-h2"))  # H2 sending H1's envelope
    assert r.status_code == 403 and r.json()["infcode"] == -1
    assert r.json()["err_msg"].startswith("fixmedins_code: 定点医药机构编号 H1 与调用方机构 H2 不符")


def test_api_key_keeps_working_next_to_the_gateway(gateway_app: App) -> None:
    r = gateway_app.post("/nhsa", json=fresh(example(OUTPATIENT)), headers={"X-API-Key": "dev-key-h1"})
    assert r.status_code == 200 and r.json()["infcode"] == 0
    r = gateway_app.post("/nhsa", json=fresh(example(OUTPATIENT)), headers={"X-API-Key": "wrong-key-123"})
    assert r.status_code == 401 and "未知的 X-API-Key" in r.json()["err_msg"]


def test_authentication_comes_before_body_validation(gateway_app: App) -> None:
    r = gateway_app.post("/nhsa/3101", json={"infno": "3101"}, headers={**signed_headers(), "x-tif-signature": "0"})
    assert r.status_code == 401  # an unauthenticated caller learns nothing about the body
