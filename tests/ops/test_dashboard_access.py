"""Who may see the live page: keys, session cookies, scopes, and the production switch (no broker)."""

from __future__ import annotations

import pytest

from services.common.settings import load_settings
from services.ingress.board_auth import ALL, SESSION_S, make_token, scope_of_key, scope_of_token
from services.ingress.dashboard import Boards
from tests.dialects.conftest import App

STRONG = {"PRESETTLE_ENV": "production", "PRESETTLE_API_KEYS": "7f3c9a1e5b2d8c4f6a0e9b3d7c1f5a2e:H1",
          "PRESETTLE_ADMIN_KEYS": "c2a9e4f7b1d5a8c3e6f0b9d2a5c8e1f4",
          "PRESETTLE_PSEUDONYM_KEY": "9e1b4d7a2c5f8e3b6d9a1c4f7e2b5d8a"}


def app_for(env: dict[str, str], key: str) -> App:
    from services.ingress.app import create_app

    return App(create_app(load_settings(env)), {"X-API-Key": key})


def test_production_disables_the_live_page_unless_switched_on() -> None:
    assert load_settings({}).dashboard_on and not load_settings(STRONG).dashboard_on
    api = app_for(STRONG, "c2a9e4f7b1d5a8c3e6f0b9d2a5c8e1f4")
    for path in ("/dashboard", "/dashboard/data", "/dashboard/stream"):
        assert api.get(path).status_code == 404, path
    assert api.post("/dashboard/session").status_code == 404
    on = app_for({**STRONG, "PRESETTLE_DASHBOARD_ENABLED": "true"}, "c2a9e4f7b1d5a8c3e6f0b9d2a5c8e1f4")
    assert on.get("/dashboard").status_code == 200
    assert on.get("/dashboard/data").json()["scope"] == ALL
    assert on.get("/dashboard/data", headers={"X-API-Key": ""}).status_code == 401


def test_keys_map_to_scopes() -> None:
    s = load_settings({})
    assert scope_of_key(s, "dev-admin-key") == ALL
    assert scope_of_key(s, "dev-key-h2") == "H2"
    assert scope_of_key(s, "nope") is None and scope_of_key(s, None) is None


def test_session_tokens_are_signed_expire_and_end_with_their_key() -> None:
    s = load_settings({})
    token = make_token(s, "H1", "dev-key-h1", now=1_000_000)
    assert "dev-key-h1" not in token
    assert scope_of_token(s, token, now=1_000_000 + 60) == "H1"
    assert scope_of_token(s, token, now=1_000_000 + SESSION_S + 1) is None  # expired
    # Tampered scope: the signature no longer matches.
    parts = token.split(".")
    parts[1] = "Kg"  # base64url of "*"
    assert scope_of_token(s, ".".join(parts), now=1_000_000) is None
    # Another deployment's secret does not verify it.
    other = load_settings({"PRESETTLE_PSEUDONYM_KEY": "another-pseudonym-key-0123456789"})
    assert scope_of_token(other, token, now=1_000_000) is None
    # The key is removed from the settings: its sessions end at once.
    revoked = load_settings({"PRESETTLE_API_KEYS": "dev-key-h2:H2"})
    assert scope_of_token(revoked, token, now=1_000_000) is None
    # The key now belongs to another institution: the session does not follow it there.
    moved = load_settings({"PRESETTLE_API_KEYS": "dev-key-h1:H9"})
    assert scope_of_token(moved, token, now=1_000_000) is None
    assert scope_of_token(s, "garbage", now=1_000_000) is None


@pytest.mark.parametrize("institution", ["H1", "H2"])
def test_boards_keep_institutions_apart(institution: str) -> None:
    boards = Boards(["H1", "H2"])
    for inst, rule in (("H1", "R03"), ("H2", "R19"), ("H3", "R07")):
        boards.add({"decision_id": f"d-{inst}", "institution_id": inst, "patient_id": "P000000001",
                    "alerts": [{"rule_id": rule, "severity": "C", "message_zh": "x"}]})
    boards.notify()
    everyone = boards.for_scope(ALL).snapshot()
    assert everyone["scope"] == ALL and everyone["totals"]["decisions"] == 3
    mine = boards.for_scope(institution).snapshot()
    assert mine["scope"] == institution and mine["totals"]["decisions"] == 1
    assert {a["institution_id"] for a in mine["recent"]} == {institution}
    assert [r["rule_id"] for r in mine["top_rules"]] == [{"H1": "R03", "H2": "R19"}[institution]]
    # An institution that got a key after start sees an empty board, never another's data.
    assert boards.for_scope("H7").snapshot()["totals"]["decisions"] == 0
