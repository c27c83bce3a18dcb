"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL (tests/decisionlog/pg.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.decisionlog.store import Store
from tests.decisionlog.pg import Cluster, bindir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    if bindir() is None:
        pytest.skip("PostgreSQL is not installed and tests/setup_system.py could not install it")
    try:
        cluster = Cluster().start()
    except (OSError, subprocess.SubprocessError, KeyError) as exc:
        pytest.skip(f"cannot start a PostgreSQL cluster here: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'decisionlog.sqlite3'}"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()
