"""The ingress's view of the broker: down at once when refused, slow only when slow for a while.

The watcher (``EngineClient._watch``) opens a TCP connection to the bootstrap
servers every 0.25 s. Each probe ends one of three ways:

* ``ok``: a server accepted within :data:`SLOW_S`;
* ``down``: every server refused the connection (or the address is unreachable) —
  the broker is down, and the ingress answers ``unavailable`` at once;
* ``slow``: no server refused, but none accepted within :data:`SLOW_S`. A loaded
  machine (or a broker stalled for a moment) does that to a single probe, so the
  ingress turns ``unavailable`` only after :data:`SLOW_PROBES` slow probes in a row;
  each is counted in ``presettle_broker_slow_probes_total``.

:class:`BrokerWatch` is the pure part (probe results in, availability out);
:func:`probe` is the socket part.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Literal

Probe = Literal["ok", "down", "slow"]

SLOW_S = 1.0
SLOW_PROBES = 4


class BrokerWatch:
    """Folds probe results into ``available`` (no I/O)."""

    def __init__(self, slow_probes: int = SLOW_PROBES) -> None:
        self.slow_probes = slow_probes
        self.available = True
        self.slow_streak = 0

    def observe(self, result: Probe) -> bool:
        """Record one probe; the broker's availability after it."""
        if result == "ok":
            self.slow_streak = 0
            self.available = True
        elif result == "down":
            self.slow_streak = 0
            self.available = False
        else:
            self.slow_streak += 1
            if self.slow_streak >= self.slow_probes:
                self.available = False
        return self.available

    def reason(self) -> str:
        """Why the broker counts as unavailable (for the log line)."""
        if self.slow_streak >= self.slow_probes:
            return f"{self.slow_streak} probes in a row took {SLOW_S:g} s or more"
        return "connection refused"


async def probe(hosts: Sequence[tuple[str, int]], slow_s: float = SLOW_S,
                clock: Callable[[], float] = time.monotonic) -> Probe:
    """Connect to each bootstrap server in turn: ``ok`` at the first that accepts within ``slow_s``."""
    slow = False
    for host, port in hosts:
        started = clock()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), slow_s)
        except asyncio.TimeoutError:
            slow = True
            continue
        except OSError:  # refused, unreachable, unknown host
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        if clock() - started < slow_s:
            return "ok"
        slow = True
    return "slow" if slow else "down"
