"""Shared fixtures: a whole PreSettle stack (broker, worker, ingress) as real processes."""

from __future__ import annotations

import os
import random
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port
from services.common.settings import load_settings
from services.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".artifacts"
# The gateway paasid of test stacks (NHSA x-tif-* signatures; tests/e2e/test_dialects.py).
E2E_PAASID, E2E_PAASID_SECRET = "his-e2e", "e2e-gateway-secret-0123456789"


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free ports in 20000–32767 (below Linux's ephemeral range)."""
    for _ in range(200):
        base = random.randrange(20000, 32768 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no block of {count} free ports found")


def stack_env(**overrides: str) -> dict[str, str]:
    """Environment for a test stack: free ports, a unique topic prefix, dev keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESETTLE_")}
    if os.environ.get("PRESETTLE_KAFKA_BOOTSTRAP"):
        env["PRESETTLE_KAFKA_BOOTSTRAP"] = os.environ["PRESETTLE_KAFKA_BOOTSTRAP"]
    env.update(
        PRESETTLE_ENV="test",
        PRESETTLE_EMBEDDED_BROKER_PORT=str(free_port()),
        PRESETTLE_HTTP_PORT=str(free_port()),
        # Worker i serves metrics on this port + i: a block of free ports below the ephemeral range,
        # so no client connection's local port can take one of them between now and the bind.
        PRESETTLE_WORKER_METRICS_PORT=str(free_port_block(4)),
        PRESETTLE_SINK_METRICS_PORT=str(free_port()),
        # Each stack its own data directory: the workers' RocksDB state files (never another stack's)
        # and the decision log's SQLite file.
        PRESETTLE_DATA_DIR=tempfile.mkdtemp(prefix="presettle-data-"),
        PRESETTLE_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:8]}",
        PRESETTLE_PARTITIONS="2",
        # A generous default budget: the tests check what is decided, not how fast (a slow CI
        # machine must not turn answers into 'timeout'); budget behaviour has its own tests.
        PRESETTLE_BUDGET_MS="5000",
        PRESETTLE_NHSA_PAASIDS=f"{E2E_PAASID}:{E2E_PAASID_SECRET}:H1",
    )
    env.update(overrides)
    return env


def start_stack(name: str, **overrides: str) -> Stack:
    return start_stack_env(stack_env(**overrides), name)


def start_stack_env(env: dict[str, str], name: str) -> Stack:
    """Start a stack with exactly this environment (e.g. to restart one on the same data directory)."""
    stack = Stack(load_settings(env), env=env, log_dir=ARTIFACTS / "logs" / name)
    try:
        stack.start()
        stack.wait_healthy(90)
    except Exception:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    s = start_stack("session")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as c:
        yield c
