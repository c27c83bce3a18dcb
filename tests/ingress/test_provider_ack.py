"""The provider-status routes' acknowledgement: 200 only once every events partition's worker has
read past the record (EngineClient.providers_applied over probe answers; no broker here)."""

from __future__ import annotations

import asyncio
from typing import Any

from services.common.settings import load_settings
from services.ingress.engine_client import EngineClient


class Probed(EngineClient):
    """Probe answers given in order: each a (every partition answered, lowest provider position)."""

    def __init__(self, answers: list[tuple[bool, int | None]]) -> None:
        super().__init__(load_settings({}))
        self.answers = answers
        self.probes = 0

    async def probe(self, timeout_s: float = 3.0) -> dict[str, Any]:
        ok, offset = self.answers[min(self.probes, len(self.answers) - 1)]
        self.probes += 1
        return {"ok": ok, "providers_offset": offset}


def test_applied_once_every_worker_is_past_the_record() -> None:
    client = Probed([(True, 5), (False, None), (True, 7), (True, 8)])
    assert asyncio.run(client.providers_applied(7, 5.0)) is True  # position 8 > offset 7
    assert client.probes == 4  # position 7 is the record itself: not read yet


def test_not_applied_when_the_budget_runs_out_first() -> None:
    client = Probed([(True, 3)])  # a worker that never catches up (or a partition nobody serves)
    assert asyncio.run(client.providers_applied(7, 0.2)) is False
    assert client.probes >= 2  # probed again until the budget ran out


def test_a_worker_that_does_not_report_its_position_is_not_counted_as_applied() -> None:
    client = Probed([(True, None)])  # an older worker release without providers_offset
    assert asyncio.run(client.providers_applied(0, 0.1)) is False
