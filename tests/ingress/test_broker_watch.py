"""The ingress's broker watcher: refused means down at once; slow means down only when it lasts.

The state machine is pure (services/ingress/broker_watch.py); the probe is run against real
sockets on loopback: a listening server, a closed port, and a clock that makes a probe slow.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from services.ingress import broker_watch
from services.ingress.broker_watch import BrokerWatch, probe


def test_refused_is_down_at_once_and_ok_is_up_again() -> None:
    w = BrokerWatch()
    assert w.available
    assert w.observe("down") is False
    assert w.reason() == "connection refused"
    assert w.observe("ok") is True


def test_slow_probes_flip_only_after_four_in_a_row() -> None:
    w = BrokerWatch()
    assert [w.observe("slow") for _ in range(3)] == [True, True, True]  # a loaded machine: still up
    assert w.observe("slow") is False  # the fourth in a row
    assert "4 probes in a row" in w.reason()
    assert w.observe("slow") is False
    assert w.observe("ok") is True


def test_an_ok_probe_resets_the_slow_streak() -> None:
    w = BrokerWatch()
    for _ in range(3):
        w.observe("slow")
    w.observe("ok")
    assert [w.observe("slow") for _ in range(3)] == [True, True, True]
    # A refusal in between also ends the streak (it is down for its own reason).
    assert w.observe("down") is False
    assert w.observe("slow") is False  # still down: only an ok probe brings it back
    assert w.slow_streak == 1


@pytest.fixture
def listening() -> Iterator[tuple[str, int]]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()
    s.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a connection is refused
    return port


def test_probe_of_a_listening_server_is_ok(listening: tuple[str, int]) -> None:
    assert asyncio.run(probe([listening])) == "ok"


def test_probe_of_a_closed_port_is_down() -> None:
    assert asyncio.run(probe([("127.0.0.1", closed_port())])) == "down"


def test_probe_takes_the_first_server_that_answers(listening: tuple[str, int]) -> None:
    assert asyncio.run(probe([("127.0.0.1", closed_port()), listening])) == "ok"


def test_a_connection_accepted_late_is_slow_not_down(listening: tuple[str, int]) -> None:
    # A clock that advances 1.5 s per reading: the accepted connection took "1.5 s".
    ticks = iter(range(100))

    def clock() -> float:
        return next(ticks) * 1.5
    assert asyncio.run(probe([listening], clock=clock)) == "slow"
    # ... and a refused one stays down, however slow the machine.
    assert asyncio.run(probe([("127.0.0.1", closed_port())], clock=clock)) == "down"


def test_a_connection_that_never_completes_is_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hangs(host: str, port: int) -> None:
        await asyncio.Event().wait()
    monkeypatch.setattr(broker_watch.asyncio, "open_connection", hangs)
    assert asyncio.run(probe([("127.0.0.1", 9)], slow_s=0.01)) == "slow"
