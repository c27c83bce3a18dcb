"""Write a realistic native-event file (JSON Lines, one ``POST /v1/events`` body per line) for backtests.

    python -m loadtest.gen_events --events 100000 --out /tmp/events.jsonl.gz [--days 180] [--seed 7]
                                  [--retries 0.005] [--bad 0]

Patients come from ``loadtest.bench_rules.Gen`` (chronic outpatients with monthly visits and
pharmacy top-ups, acute outpatients, inpatient stays with daily orders, dialysis), drawn over
``--days`` days from the packaged catalogue, until at least ``--events`` events exist; the file
is in event-time order. ``--retries`` re-sends that fraction of events (same event id: a HIS
retry, which a backtest must apply once); ``--bad`` appends that many invalid lines (a
backtest reports them by line number). ``.gz`` in the name: gzip. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import gzip
import pathlib
import random
import sys
from typing import IO, Any

import orjson

from loadtest.bench_rules import Gen
from services.rules.engine import Engine


def generate(n_events: int, days: int = 180, seed: int = 7, engine: Engine | None = None) -> list[dict[str, Any]]:
    """At least ``n_events`` events over ``days`` days, in event-time order."""
    gen = Gen(engine or Engine.load(), seed)
    stream: list[tuple[int, int, dict[str, Any]]] = []
    pid = 0
    while len(stream) < n_events:
        for key, ev in gen.patient(pid, days):
            stream.append((key, pid, ev))
        pid += 1
    stream.sort(key=lambda x: (x[0], x[1]))
    return [ev for _, _, ev in stream]


def write(path: pathlib.Path, events: list[dict[str, Any]], retries: float = 0.0, bad: int = 0,
          seed: int = 7) -> dict[str, int]:
    rnd = random.Random(seed + 1)
    fh: IO[bytes] = gzip.open(path, "wb", compresslevel=5) if path.suffix == ".gz" else path.open("wb")  # type: ignore[assignment]
    lines = resent = 0
    with fh:
        for ev in events:
            data = orjson.dumps(ev)
            fh.write(data + b"\n")
            lines += 1
            if retries and rnd.random() < retries:
                fh.write(data + b"\n")
                lines += 1
                resent += 1
        for i in range(bad):
            broken = dict(events[i % len(events)], scene=99) if i % 2 == 0 else None
            fh.write((orjson.dumps(broken) if broken else b"{not json") + b"\n")
            lines += 1
    return {"lines": lines, "events": len(events), "retries": resent, "bad": bad}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--retries", type=float, default=0.0)
    ap.add_argument("--bad", type=int, default=0)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    args = ap.parse_args(argv)
    events = generate(args.events, args.days, args.seed)
    print(f"gen_events: {len(events):,} events; writing {args.out}", file=sys.stderr)
    result = {"out": str(args.out), **write(args.out, events, args.retries, args.bad, args.seed)}
    print(orjson.dumps(result).decode())
    return result


if __name__ == "__main__":
    main()
