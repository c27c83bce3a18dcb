"""Instructions per event of the rule engine, counted by callgrind: the deterministic A/B measure.

    python -m loadtest.rules_ir prepare /tmp/ir.pkl              # warm bench_rules' states, keep the timed events
    python -m loadtest.rules_ir count /tmp/ir.pkl all ctx apply R19
    python -m loadtest.rules_ir digest [--seed 7]                # digests of every alert and final state

Wall-clock and CPU-time rates on a shared 2-core host swing 2x between runs, so a change of 10 % in
the engine's cost cannot be seen with ``bench_rules``. This counts machine instructions instead
(docs/rules.md, "Measured by instruction count"): ``prepare`` replays bench_rules' stream (2,000
patients, seed 7: 180 days of history untimed, the next 30 days timed) and pickles the warmed states
(state codec form) with the timed events; ``count`` runs the timed events once per part under
``valgrind --tool=callgrind`` with collection switched on only inside the part (the toggle is
``functools.reduce``, which nothing in the engine calls), and prints instructions per timed event —
repeatable to about ±0.2 %. Parts: ``all`` (the whole timed loop), ``ctx`` (reading the event into the
context), ``eval`` (the rules and their alerts), ``apply`` (the state update), ``alert`` (alert
building), a rule id (its family function), or ``fn:<module>.<function>``.

Compare two trees with one pickle when their states are identical, else a pickle made by each tree
(run from the tree's root so its ``services`` is imported). ``digest`` prints digests of the alerts
and final states over the whole stream (codec round trip every 7th event, as the worker does): a
speed-up must leave them unchanged. Needs valgrind (Debian: ``apt-get install valgrind``); a
benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

PATIENTS, HISTORY_DAYS, TIMED_DAYS, SEED = 2000, 180, 30, 7


def stream(engine: Any, seed: int = SEED) -> list[tuple[int, int, dict[str, Any]]]:
    """bench_rules' event stream (key, patient, event), in time order across patients."""
    from loadtest.bench_rules import Gen

    gen = Gen(engine, seed)
    events = [(key, pid, ev) for pid in range(PATIENTS) for key, ev in gen.patient(pid, HISTORY_DAYS + TIMED_DAYS)]
    events.sort(key=lambda x: (x[0], x[1]))
    return events


def prepare(path: str) -> None:
    from services.rules import state as st
    from services.rules.engine import Engine

    engine = Engine.load()
    events = stream(engine)
    split = HISTORY_DAYS * 100  # bench_rules' keys: day * 100 + the event's slot in the day
    states: dict[int, dict[str, Any]] = {}
    for key, pid, ev in events:
        if key < split:
            states[pid], _ = engine.process(states.get(pid), ev)
    timed = [(pid, ev) for key, pid, ev in events if key >= split]
    with open(path, "wb") as f:
        pickle.dump(({pid: st.dumps(s) for pid, s in states.items()}, timed), f)
    print(f"rules_ir: {len(states)} warmed states, {len(timed)} timed events → {path}", file=sys.stderr)


def run(path: str, part: str, gc_off: bool = False) -> None:
    """The timed loop, once; only ``part`` runs inside functools.reduce (callgrind's collection toggle)."""
    import gc
    import importlib

    from services.rules import engine as engmod
    from services.rules import state as st
    from services.rules.context import Ctx
    from services.rules.engine import Engine

    engine = Engine.load()
    with open(path, "rb") as f:
        frozen, timed = pickle.load(f)
    reduce = functools.reduce

    def marked(fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *a: reduce(lambda _x, _y: fn(*a), [0, 0])

    work = {pid: st.loads(b) for pid, b in frozen.items()}
    if gc_off:  # the cyclic GC's passes land in whichever part runs when they fall due
        gc.disable()
    kb, windows = engine.kb, engine.windows
    mk_ctx, evaluate, apply = Ctx, engine._evaluate, st.apply_event
    if part == "ctx":
        mk_ctx = marked(Ctx)
    elif part == "eval":
        evaluate = marked(engine._evaluate)
    elif part == "apply":
        apply = marked(st.apply_event)
    elif part == "alert":
        engmod._alert = marked(engmod._alert)  # type: ignore[attr-defined]
    elif part.startswith("fn:"):
        modname, name = part[3:].rsplit(".", 1)
        orig = getattr(importlib.import_module(modname), name)
        for mod_name, mod in list(sys.modules.items()):
            if mod_name.startswith("services.rules") and getattr(mod, name, None) is orig:
                setattr(mod, name, marked(orig))
    elif part != "all":
        rules = [r for r in engine.rules if r.id == part]
        if not rules:
            raise SystemExit(f"rules_ir: unknown part {part!r} (all, ctx, eval, apply, alert, a rule id, fn:<module>.<name>)")
        for rule in rules:
            rule.fn = marked(rule.fn)
    split = engine._split

    def loop() -> None:
        for pid, ev in timed:
            s = work.get(pid) or {}
            cx = mk_ctx(kb, s, ev)
            split(evaluate(cx))
            work[pid] = apply(s, cx, windows)

    (marked(loop) if part == "all" else loop)()


def count(path: str, parts: list[str], out_dir: str, gc_off: bool = False) -> dict[str, int]:
    """Instructions per timed event of each part (one valgrind run each)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("rules_ir: valgrind is not installed (Debian: apt-get install valgrind)")
    with open(path, "rb") as f:
        _, timed = pickle.load(f)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = {}
    for part in parts:
        out = os.path.join(out_dir, f"callgrind.{part.replace(':', '_')}")
        proc = subprocess.run(
            [valgrind, "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=functools_reduce",
             f"--callgrind-out-file={out}", sys.executable, "-m", "loadtest.rules_ir", "run", path, part,
             *(["--no-gc"] if gc_off else [])],
            env=env, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or found is None:
            raise SystemExit(f"rules_ir: part {part} failed (exit {proc.returncode}): {proc.stderr[-600:]}")
        result[part] = round(int(found.group(1)) / len(timed))
        print(f"rules_ir: {part:<8} {result[part]:>9,} instructions per event  ({out}; callgrind_annotate reads it)",
              file=sys.stderr, flush=True)
    return result


def digest(seed: int) -> tuple[int, str, str]:
    """(alerts, alerts digest, final states digest) over the whole stream."""
    import orjson

    from services.rules import state as st
    from services.rules.engine import Engine

    engine = Engine.load()
    states: dict[int, dict[str, Any]] = {}
    alerts_digest, states_digest = hashlib.sha256(), hashlib.sha256()
    n = 0
    for key, pid, ev in stream(engine, seed):
        s = states.get(pid)
        if s is not None and key % 7 == 0:  # through the codec now and then, as the worker does
            s = st.loads(st.dumps(s))
        states[pid], alerts = engine.process(s, ev)
        n += len(alerts)
        alerts_digest.update(orjson.dumps(alerts, option=orjson.OPT_SORT_KEYS))
    for pid in sorted(states):
        states_digest.update(st.dumps(states[pid]))
    return n, alerts_digest.hexdigest()[:16], states_digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="warm the states and pickle them with the timed events")
    p.add_argument("pickle")
    p = sub.add_parser("count", help="instructions per timed event of each part (valgrind)")
    p.add_argument("pickle")
    p.add_argument("parts", nargs="+")
    p.add_argument("--out", default=None, help="directory of the callgrind files (default: a new temporary one)")
    p.add_argument("--no-gc", action="store_true", help="cyclic GC off in the timed loop (parts compare without its passes)")
    p = sub.add_parser("run", help="(what count runs under valgrind) the timed loop once")
    p.add_argument("pickle")
    p.add_argument("part")
    p.add_argument("--no-gc", action="store_true")
    p = sub.add_parser("digest", help="digests of every alert and the final states over the stream")
    p.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    if args.command == "prepare":
        prepare(args.pickle)
    elif args.command == "run":
        run(args.pickle, args.part, args.no_gc)
    elif args.command == "count":
        out = args.out or tempfile.mkdtemp(prefix="rules-ir-")
        os.makedirs(out, exist_ok=True)
        print(orjson_line(count(args.pickle, args.parts, out, args.no_gc)))
    else:
        n, alerts, states = digest(args.seed)
        print(orjson_line({"seed": args.seed, "alerts": n, "alerts_digest": alerts, "states_digest": states}))
    return 0


def orjson_line(obj: Any) -> str:
    import orjson

    return orjson.dumps(obj).decode()


if __name__ == "__main__":
    raise SystemExit(main())
