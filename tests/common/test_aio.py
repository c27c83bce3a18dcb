"""Stopping a background feed (services/common/aio.py): every step runs, whatever the one before did."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.common.aio import stop_task_and_clients


class Client:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True
        if self.fail:
            raise ConnectionError("broker gone")


async def _crashes() -> None:
    raise RuntimeError("the feed had crashed")


async def _runs() -> None:
    await asyncio.sleep(3600)


def test_a_running_task_is_cancelled_and_every_client_stopped() -> None:
    async def run() -> tuple[asyncio.Task[None], list[Client]]:
        task = asyncio.get_running_loop().create_task(_runs())
        await asyncio.sleep(0)
        clients = [Client(fail=True), Client()]  # the first one's failure does not skip the second
        await stop_task_and_clients(task, [clients[0], None, clients[1]])
        return task, clients

    task, clients = asyncio.run(run())
    assert task.cancelled()
    assert all(c.stopped for c in clients)


def test_a_task_that_had_crashed_is_logged_and_the_clients_still_stop(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> Client:
        task = asyncio.get_running_loop().create_task(_crashes(), name="feed")
        await asyncio.sleep(0)
        client = Client()
        await stop_task_and_clients(task, [client])
        return client

    with caplog.at_level(logging.ERROR, logger="presettle"):
        client = asyncio.run(run())
    assert client.stopped
    assert "background task feed had failed" in caplog.text
