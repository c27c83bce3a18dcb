from __future__ import annotations

import pytest

from services.rules.engine import Engine


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load()


@pytest.fixture
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """Pin the wall clock far from the cases' event times: results must depend on event time only."""
    import time

    fixed = 2_000_000_000.0  # 2033-05-18
    monkeypatch.setattr(time, "time", lambda: fixed)
    monkeypatch.setattr(time, "time_ns", lambda: int(fixed * 1e9))
    return fixed
