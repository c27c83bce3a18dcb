from __future__ import annotations

import pathlib
import shutil
from typing import Any, Callable

import orjson
import pytest

from services.rules.engine import DEFAULT_DATA, Engine


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load()


@pytest.fixture
def data_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the shipped KB and rule base to edit."""
    shutil.copytree(DEFAULT_DATA / "kb", tmp_path / "kb")
    shutil.copytree(DEFAULT_DATA / "rules", tmp_path / "rules")
    return tmp_path


def edit_json(path: pathlib.Path, fn: Callable[[dict[str, Any]], Any]) -> None:
    doc = orjson.loads(path.read_bytes())
    fn(doc)
    path.write_bytes(orjson.dumps(doc))


@pytest.fixture
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """Pin the wall clock far from the cases' event times: results must depend on event time only."""
    import time

    fixed = 2_000_000_000.0  # 2033-05-18
    monkeypatch.setattr(time, "time", lambda: fixed)
    monkeypatch.setattr(time, "time_ns", lambda: int(fixed * 1e9))
    return fixed
