"""Settings: env parsing, key handling, production refuses development keys."""

from __future__ import annotations

import os
import re

import pytest

from services.common.settings import DEV_API_KEYS, SettingsError, load_settings


def test_defaults_use_development_keys_and_embedded_broker() -> None:
    s = load_settings({})
    assert s.dev_keys and s.institution_keys() == DEV_API_KEYS
    assert s.kafka_bootstrap is None and s.bootstrap == "127.0.0.1:19092"
    assert s.budget_ms == 300 and s.http_port == 8000 and s.http_host == "127.0.0.1"


def test_api_keys_parsed() -> None:
    s = load_settings({"PRESETTLE_API_KEYS": "k-hospital-1:H100, k-hospital-2:H200"})
    assert s.institution_keys() == {"k-hospital-1": "H100", "k-hospital-2": "H200"} and not s.dev_keys


@pytest.mark.parametrize("raw", ["nocolon12345", "short:H1", ":H1", "longenoughkey:"])
def test_bad_api_keys_rejected(raw: str) -> None:
    with pytest.raises(SettingsError, match="PRESETTLE_API_KEYS"):
        load_settings({"PRESETTLE_API_KEYS": raw})


def test_production_refuses_development_keys() -> None:
    with pytest.raises(SettingsError, match="production"):
        load_settings({"PRESETTLE_ENV": "production"})
    strong_admin = "c2a9e4f7b1d5a8c3e6f0b9d2a5c8e1f4"
    with pytest.raises(SettingsError, match="PRESETTLE_API_KEYS: the key for institution H1 is a placeholder"):
        load_settings({"PRESETTLE_ENV": "production", "PRESETTLE_API_KEYS": "dev-key-h1:H1",
                       "PRESETTLE_ADMIN_KEYS": strong_admin})
    keys = {"PRESETTLE_ENV": "production", "PRESETTLE_API_KEYS": "7f3c9a1e5b2d8c4f6a0e9b3d7c1f5a2e:H1",
            "PRESETTLE_ADMIN_KEYS": strong_admin}
    with pytest.raises(SettingsError, match="PRESETTLE_PSEUDONYM_KEY: the development pseudonym key"):
        load_settings(keys)
    s = load_settings({**keys, "PRESETTLE_PSEUDONYM_KEY": "a-long-secret-pseudonym-key-9f8e7d"})
    assert s.env == "production" and s.pseudonym_key.get_secret_value() == "a-long-secret-pseudonym-key-9f8e7d"


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


def test_secrets_never_in_repr() -> None:
    s = load_settings({"PRESETTLE_API_KEYS": "k-hospital-1:H100", "PRESETTLE_ADMIN_KEYS": "admin-key-123",
                       "PRESETTLE_PSEUDONYM_KEY": "a-long-secret-pseudonym-key"})
    text = repr(s) + str(s)
    assert "k-hospital-1" not in text and "admin-key-123" not in text and "a-long-secret" not in text
    assert s.institution_for("k-hospital-1") == "H100" and s.institution_for("admin-key-123") is None
    assert s.is_admin_key("admin-key-123") and not s.is_admin_key("k-hospital-1")
    with pytest.raises(SettingsError, match="PRESETTLE_API_KEYS") as err:
        load_settings({"PRESETTLE_API_KEYS": "secretkey1:H1,tiny:H2"})
    assert "secretkey1" not in str(err.value) and "tiny" not in str(err.value)


def test_one_default_per_field_and_blank_means_default() -> None:
    from services.common.settings import Settings

    blank = load_settings({f"PRESETTLE_{name.upper()}": "  " for name in Settings.model_fields})
    defaults = load_settings({})
    for name, info in Settings.model_fields.items():
        if name != "instance_id":
            assert getattr(defaults, name) == info.default, name
            assert getattr(blank, name) == info.default, name
    assert defaults.instance_id.endswith("-8000")
    assert load_settings({"PRESETTLE_HTTP_PORT": "8123"}).instance_id.endswith("-8123")
    assert load_settings({"PRESETTLE_INSTANCE_ID": "ingress-1"}).instance_id == "ingress-1"


def test_unknown_presettle_variables_are_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="presettle.settings"):
        s = load_settings({"PRESETTLE_BUDGT_MS": "50", "PRESETTLE_BUDGET_MS": "70", "OTHER_VAR": "1",
                           "PRESETTLE_API_KEY": "dev-key-h1"})
    assert s.budget_ms == 70
    lines = [r.getMessage() for r in caplog.records if r.name == "presettle.settings"]
    assert len(lines) == 1
    assert "PRESETTLE_BUDGT_MS (did you mean PRESETTLE_BUDGET_MS?)" in lines[0]
    assert "OTHER_VAR" not in lines[0] and "PRESETTLE_API_KEY " not in lines[0] + " "
    caplog.clear()
    with caplog.at_level("WARNING", logger="presettle.settings"):
        load_settings({"PRESETTLE_BUDGET_MS": "70"})
    assert not caplog.records


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESETTLE_BUDGET_MS", "123")
    assert load_settings().budget_ms == 123
    monkeypatch.setenv("PRESETTLE_BUDGET_MS", "-1")
    with pytest.raises(SettingsError, match="PRESETTLE_BUDGET_MS='-1'"):
        load_settings()


def test_every_deploy_variable_is_a_setting() -> None:
    from pathlib import Path

    from services.common.settings import variables

    root = Path(__file__).resolve().parents[1]
    found: dict[str, set[str]] = {}
    for path in (root / "deploy").rglob("*"):
        if path.is_file():
            for name in re.findall(r"\bPRESETTLE_[A-Z0-9_]+", path.read_text(encoding="utf-8", errors="replace")):
                found.setdefault(name, set()).add(str(path.relative_to(root)))
    assert "PRESETTLE_DATA_DIR" in found, "the worker's data dir is set in deploy/"
    from services.common.secrets_policy import SECRET_VARIABLES

    # A secret may also be handed over as a file: NAME_FILE (services/common/secrets_policy.py).
    known = set(variables()) | {f"{name}_FILE" for name in SECRET_VARIABLES if name in variables()}
    unknown = {name: sorted(files) for name, files in found.items() if name not in known}
    assert not unknown, f"deploy/ sets variables no setting reads: {unknown}"
    assert not re.search(r"\bFAUST_[A-Z]+", "".join(p.read_text(errors="replace") for p in (root / "deploy").rglob("*")
                                                     if p.is_file())), "faust reads no FAUST_* variable here"


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    from pathlib import Path

    from services.common.settings import variables

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {name for line in section.splitlines() if line.startswith("|")
            for name in re.findall(r"`(PRESETTLE_[A-Z0-9_]+)`", line.split("|")[1])}
    assert set(variables()) - rows == set(), "settings missing from README's Configuration table"
    assert rows - set(variables()) == set(), "README documents variables no setting reads"


def test_staff_keys_are_parsed_checked_and_named() -> None:
    from services.common.settings import SettingsError, load_settings

    s = load_settings({"PRESETTLE_STAFF_KEYS": "reviewer-key-1:reviewer:330100:wang, senior-key-01:senior_reviewer:*"})
    assert s.staff_for("reviewer-key-1") == ("reviewer", "330100", "wang")
    assert s.staff_for("senior-key-01").name.startswith("senior_reviewer-")
    assert load_settings({}).staff_for("dev-reviewer-key") is not None  # development keys
    for bad, named in (("k:reviewer:*", "shorter than 8"), ("reviewer-key-1:boss:*", "role 'boss'"),
                       ("reviewer-key-1:reviewer:zhejiang", "scope 'zhejiang'"), ("reviewer-key-1:reviewer", "entry 1"),
                       ("dev-key-h1:reviewer:*", "also an institution")):
        with pytest.raises(SettingsError, match=named):
            load_settings({"PRESETTLE_STAFF_KEYS": bad})
    with pytest.raises(SettingsError, match="PRESETTLE_DATABASE_URL"):
        load_settings({"PRESETTLE_DATABASE_URL": "mysql://x"})


@pytest.mark.parametrize("command", [["-m", "services.stream"], ["-m", "services.cli", "sink"],
                                     ["-m", "services.cli", "deadletter", "replay"]])
def test_every_process_refuses_a_bad_setting_with_one_line_and_exit_code_2(command: list[str]) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    env["PRESETTLE_BUDGET_MS"] = "abc"
    done = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "[presettle] configuration error: PRESETTLE_BUDGET_MS='abc': Input should be a valid integer, unable to "
        "parse string as an integer"]
