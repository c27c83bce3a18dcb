"""The engine gateway: how a caller hands one record to the engine and gets one of three answers.

``EngineClient`` (services.ingress.engine_client, over Kafka) implements it; tests use an
in-process engine. Every answer is one of evaluated / timeout / unavailable — never a hang.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from services.contracts.decision import EngineStatus


@dataclass
class Outcome:
    status: EngineStatus
    decision: dict[str, Any] | None = None  # the audit record (evaluated), or the worker's reply body
    error: str | None = None


class EngineGateway(Protocol):
    async def submit(self, key: bytes, event: dict[str, Any], budget_s: float) -> Outcome:
        """Send one record keyed by ``key`` and wait up to ``budget_s`` for the engine's answer."""
        ...
