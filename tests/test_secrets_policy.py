"""PRESETTLE_ENV=production refuses weak secrets, naming the variable; secrets can come from files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.common.secrets_policy import MIN_SECRET_LEN, weakness
from services.common.settings import DEV_PSEUDONYM_KEY, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
STRONG_INST = "7f3c9a1e5b2d8c4f6a0e9b3d7c1f5a2e"
STRONG_ADMIN = "c2a9e4f7b1d5a8c3e6f0b9d2a5c8e1f4"
STRONG_PSEUDO = "9e1b4d7a2c5f8e3b6d9a1c4f7e2b5d8a"


def prod(**over: str) -> dict[str, str]:
    env = {"PRESETTLE_ENV": "production", "PRESETTLE_API_KEYS": f"{STRONG_INST}:H1",
           "PRESETTLE_ADMIN_KEYS": STRONG_ADMIN, "PRESETTLE_PSEUDONYM_KEY": STRONG_PSEUDO}
    env.update(over)
    return env


def test_strong_secrets_pass() -> None:
    s = load_settings(prod())
    assert s.env == "production" and s.institution_keys() == {STRONG_INST: "H1"}
    assert s.pseudonym_key.get_secret_value() == STRONG_PSEUDO


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("PRESETTLE_API_KEYS", "dev-key-h1-aaaaaaaaaaaaaaaaaaaa:H1", "placeholder"),
    ("PRESETTLE_API_KEYS", "change-me-h1-0000000000:H1", "placeholder"),
    ("PRESETTLE_API_KEYS", "a1b2c3d4e5f6a7b8c9:H1", "shorter than 24"),
    ("PRESETTLE_ADMIN_KEYS", "replace-me-admin-0000000000", "placeholder"),
    ("PRESETTLE_ADMIN_KEYS", "a1b2c3d4e5f6a7b8c9d0", "shorter than 24"),
    ("PRESETTLE_ADMIN_KEYS", STRONG_INST, "also an institution key"),
    ("PRESETTLE_PSEUDONYM_KEY", DEV_PSEUDONYM_KEY, "development pseudonym key"),
    ("PRESETTLE_PSEUDONYM_KEY", "short-but-16-chars-x", "shorter than 24"),
])
def test_production_refuses_weak_secrets_naming_the_variable(variable: str, value: str, why: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(prod(**{variable: value}))
    message = str(err.value)
    # The message names the variable at fault first (others may be mentioned after it).
    assert message.split(": ", 1)[1].startswith(variable), message
    assert why in message
    assert value not in message or len(value) < 8  # a refused key is not echoed


def test_development_mode_keeps_short_keys() -> None:
    s = load_settings({"PRESETTLE_API_KEYS": "k-hospital-1:H1", "PRESETTLE_ADMIN_KEYS": "k-hospital-1"})
    assert s.institution_keys() == {"k-hospital-1": "H1"}


def _shipped_secret_values() -> list[tuple[str, str, str]]:
    """(file, variable, value) of every key value the deploy/ files ship."""
    found = []
    pattern = re.compile(r"(PRESETTLE_(?:API_KEYS|ADMIN_KEYS|PSEUDONYM_KEY))\s*[:=]\s*([^\s#]+)")
    for path in sorted((ROOT / "deploy").rglob("*")):
        if not path.is_file() or path.suffix not in {".yaml", ".yml", ".example", ".env", ""}:
            continue
        for variable, raw in pattern.findall(path.read_text(encoding="utf-8")):
            raw = raw.strip("'\"")
            if raw.startswith("$") or raw.startswith("/"):
                continue  # an interpolation or a file path, not a value
            for part in raw.split(","):
                found.append((path.name, variable, part.partition(":")[0] if variable == "PRESETTLE_API_KEYS" else part))
    return found


def test_every_key_shipped_in_deploy_is_refused_in_production() -> None:
    shipped = _shipped_secret_values()
    assert len(shipped) >= 6, shipped  # the k8s Secret and .env.example at least
    for name, variable, value in shipped:
        assert weakness(value), f"{name}: {variable} value would be accepted in production"
        env = prod(**{variable: f"{value}:H1" if variable == "PRESETTLE_API_KEYS" else value})
        with pytest.raises(SettingsError, match=variable):
            load_settings(env)


def test_secret_files_are_read(tmp_path: Path) -> None:
    keys = tmp_path / "api_keys"
    keys.write_text(f"{STRONG_INST}:H7\n", encoding="utf-8")
    s = load_settings({**prod(), "PRESETTLE_API_KEYS": "", "PRESETTLE_API_KEYS_FILE": str(keys)})
    assert s.institution_keys() == {STRONG_INST: "H7"}
    with pytest.raises(SettingsError, match="PRESETTLE_API_KEYS and PRESETTLE_API_KEYS_FILE"):
        load_settings({**prod(), "PRESETTLE_API_KEYS_FILE": str(keys)})
    with pytest.raises(SettingsError, match="PRESETTLE_ADMIN_KEYS_FILE"):
        load_settings({"PRESETTLE_ADMIN_KEYS_FILE": str(tmp_path / "missing")})


def test_minimum_length_is_documented() -> None:
    assert f"{MIN_SECRET_LEN}" in (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
