"""Debug only: where the worker's memory goes (``PRESETTLE_TRACEMALLOC_FILE``).

With ``PRESETTLE_TRACEMALLOC_FILE=<path>`` the worker starts :mod:`tracemalloc` (several
frames per allocation: Python slows down noticeably, so not for production) and, every
``PRESETTLE_TRACEMALLOC_INTERVAL_S`` seconds (default 60), appends to that file one report:
the process's resident memory (VmRSS) beside the total tracemalloc traces (what Python
allocated; the difference is native memory — RocksDB's block cache and memtables, the
interpreter, arenas), then the allocation sites that grew most since the first report and
since the previous one, by line and by call stack. Used to find the worker's memory growth
of issue 9 (docs/operations.md, *Worker memory*).
"""

from __future__ import annotations

import asyncio
import linecache
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

FRAMES = 8
TOP = 25
STACKS = 8
# Allocations of tracemalloc itself and of the import machinery are noise here.
IGNORED = (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>",
           "<unknown>")


def rss_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, name) for name in IGNORED])


def _frame_text(frame: Any) -> str:
    line = linecache.getline(frame.filename, frame.lineno).strip()
    return f"{frame.filename}:{frame.lineno}  {line}"


def diff_lines(title: str, stats: list[tracemalloc.StatisticDiff], top: int, stack: bool = False) -> list[str]:
    """Text lines for the ``top`` allocation sites that grew most (pure: formats statistics)."""
    grown = sorted((s for s in stats if s.size_diff > 0), key=lambda s: s.size_diff, reverse=True)[:top]
    out = [f"-- {title}"]
    for s in grown:
        out.append(f"{s.size_diff / 1024:+10.1f} KiB {s.count_diff:+8d} blocks  (now {s.size / 1024:.1f} KiB, "
                   f"{s.count} blocks)  {_frame_text(s.traceback[0]) if not stack else ''}")
        if stack:
            out.extend(f"        {_frame_text(frame)}" for frame in s.traceback)
    return out


class Tracer:
    def __init__(self, path: str | Path, sizes: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.sizes = sizes  # the sizes of the worker's own bookkeeping, reported beside the allocations
        self.first: tracemalloc.Snapshot | None = None
        self.last: tracemalloc.Snapshot | None = None
        self.started = time.monotonic()

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)

    def report(self) -> str:
        snap = _snapshot()
        traced, peak = tracemalloc.get_traced_memory()
        rss = rss_kb()
        lines = [f"== {time.strftime('%Y-%m-%dT%H:%M:%S')} t={time.monotonic() - self.started:.0f}s "
                 f"rss={rss / 1024 if rss else float('nan'):.1f} MiB traced={traced / 2**20:.1f} MiB "
                 f"(peak {peak / 2**20:.1f}) tracemalloc overhead={tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MiB"]
        if self.sizes is not None:
            try:
                lines.append(f"sizes: {self.sizes()}")
            except Exception as exc:  # a debug report never stops the worker
                lines.append(f"sizes: {exc!r}")
        if self.first is None:
            self.first = snap
            lines += [f"{s.size / 1024:10.1f} KiB {s.count:8d} blocks  {_frame_text(s.traceback[0])}"
                      for s in snap.statistics("lineno")[:TOP]]
        else:
            lines += diff_lines("grown since the first report, by line", snap.compare_to(self.first, "lineno"), TOP)
            assert self.last is not None
            lines += diff_lines("grown since the previous report, by line", snap.compare_to(self.last, "lineno"), TOP)
            lines += diff_lines("grown since the first report, by call stack",
                                snap.compare_to(self.first, "traceback"), STACKS, stack=True)
        self.last = snap
        return "\n".join(lines) + "\n\n"

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            text = await asyncio.to_thread(self.report)
            with self.path.open("a") as out:
                out.write(text)
