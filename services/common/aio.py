"""Small asyncio helpers shared by the background consumers (ingress, worker feeds)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

log = logging.getLogger("presettle")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait until each has finished; a task that had crashed is logged."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("background task %s had failed", task.get_name())


async def quietly(awaitable: Awaitable[object], timeout_s: float = 5.0) -> None:
    """Await a shutdown step (a client's stop()) without letting its failure stop the shutdown.

    aiokafka's stop() can raise CancelledError (a BaseException) when the broker
    is gone; that is swallowed too unless this task itself is being cancelled.
    """
    try:
        await asyncio.wait_for(awaitable, timeout_s)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as exc:
        log.warning("shutdown step failed: %s", type(exc).__name__)


async def stop_task_and_clients(task: asyncio.Task[None] | None, clients: Iterable[Any]) -> None:
    """Stop a feed: cancel its reading task and wait for it, then stop each Kafka client (None: skipped),
    each step bounded and quiet (:func:`cancel_and_wait`, :func:`quietly`)."""
    if task is not None:
        await cancel_and_wait([task])
    for client in clients:
        if client is not None:
            await quietly(client.stop())
