"""Settings: env parsing, key handling, production refuses development keys."""

from __future__ import annotations

import pytest

from services.common.settings import DEV_API_KEYS, SettingsError, load_settings


def test_defaults_use_development_keys_and_embedded_broker() -> None:
    s = load_settings({})
    assert s.dev_keys and s.api_keys == DEV_API_KEYS
    assert s.kafka_bootstrap is None and s.bootstrap == "127.0.0.1:19092"
    assert s.budget_ms == 300 and s.http_port == 8000 and s.http_host == "127.0.0.1"


def test_api_keys_parsed() -> None:
    s = load_settings({"PRESETTLE_API_KEYS": "k-hospital-1:H100, k-hospital-2:H200"})
    assert s.api_keys == {"k-hospital-1": "H100", "k-hospital-2": "H200"} and not s.dev_keys


@pytest.mark.parametrize("raw", ["nocolon12345", "short:H1", ":H1", "longenoughkey:"])
def test_bad_api_keys_rejected(raw: str) -> None:
    with pytest.raises(SettingsError, match="PRESETTLE_API_KEYS"):
        load_settings({"PRESETTLE_API_KEYS": raw})


def test_production_refuses_development_keys() -> None:
    with pytest.raises(SettingsError, match="production"):
        load_settings({"PRESETTLE_ENV": "production"})
    with pytest.raises(SettingsError, match="development keys"):
        load_settings({"PRESETTLE_ENV": "production", "PRESETTLE_API_KEYS": "dev-key-h1:H1",
                       "PRESETTLE_ADMIN_KEYS": "admin-key-123"})
    keys = {"PRESETTLE_ENV": "production", "PRESETTLE_API_KEYS": "real-key-123:H1",
            "PRESETTLE_ADMIN_KEYS": "admin-key-123"}
    with pytest.raises(SettingsError, match="PRESETTLE_PSEUDONYM_KEY"):
        load_settings(keys)
    s = load_settings({**keys, "PRESETTLE_PSEUDONYM_KEY": "a-long-secret-pseudonym-key"})
    assert s.env == "production" and s.pseudonym_key == "a-long-secret-pseudonym-key"


def test_masks_hide_short_patient_ids_whole() -> None:
    from services.common.privacy import mask, pseudonym

    assert mask("P0001") == "*****" and mask("P00012345") == "*********"
    assert mask("330102198501011234") == "33**************34"
    assert pseudonym("P0001") != pseudonym("P0002") and "P0001" not in pseudonym("P0001")


@pytest.mark.parametrize(("name", "value"), [("PRESETTLE_BUDGET_MS", "0"), ("PRESETTLE_HTTP_PORT", "x"),
                                             ("PRESETTLE_PARTITIONS", "0"), ("PRESETTLE_ENV", "prod")])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_service_refuses_to_start_in_production_with_development_keys() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    env["PRESETTLE_ENV"] = "production"
    proc = subprocess.run([sys.executable, "-m", "services.stack"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "refuses development keys" in proc.stderr
