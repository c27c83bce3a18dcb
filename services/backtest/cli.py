"""``presettle backtest``: what a rule-base change would have done to recorded events.

    presettle backtest --events FILE.jsonl[.gz] --candidate DIR [--baseline DIR]
                       [--json OUT] [--html OUT] [--strict] [--independent]
    presettle backtest --from-topic --since 2026-12-01T00:00:00+08:00 --candidate DIR ...

Prints a per-rule table of the rules whose alerts differ, writes the JSON report (``--json``)
and the HTML report (``--html``); a progress line (events done, rate, ETA) goes to stderr.
Exit 0 when the backtest ran (whatever it found), 2 when it could not (a bundle that does not
load, an unreadable file, a bad line under ``--strict``). See docs/rules.md, "Backtesting a rule-base change".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys
import time
from typing import Any

import orjson

from services.backtest import events as ev
from services.backtest import html
from services.backtest.replay import Backtest, in_event_time_order, load_side
from services.rules.exceptions import DataError


class Progress:
    """One line on stderr, rewritten in place on a terminal (a new line every 10 s otherwise)."""

    def __init__(self, label: str, total: int | None = None, stream: Any = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = 0.0

    def __call__(self, done: int, fraction: float | None = None) -> None:
        now = time.monotonic()
        final = self.total is not None and done >= self.total
        if not final and now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last = now
        elapsed = max(now - self.t0, 1e-9)
        rate = done / elapsed
        if fraction is None and self.total:
            fraction = done / self.total
        eta = f"ETA {elapsed * (1 - fraction) / fraction:,.0f} s" if fraction else "ETA ?"
        total = f"/{self.total:,}" if self.total else ""
        line = f"{self.label}: {done:,}{total} events  {rate:,.0f} events/s  {eta if not final else 'done'}"
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "backtest", help="replay recorded events through the active and a candidate rule base; report differences",
        description=__doc__.split("\n\n")[0] + " Events: a JSON Lines file (one POST /v1/events body per line) "
        "or the events topic (--from-topic).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", type=pathlib.Path, metavar="FILE", help="JSON Lines events (.gz: gzip)")
    src.add_argument("--from-topic", action="store_true",
                     help="read the events topic (PRESETTLE_KAFKA_BOOTSTRAP, PRESETTLE_TOPIC_PREFIX) from --since")
    p.add_argument("--since", help="with --from-topic: ISO 8601 time, or a duration back from now (6h, 2d)")
    p.add_argument("--candidate", required=True, type=pathlib.Path, metavar="DIR", help="the bundle to try")
    p.add_argument("--baseline", type=pathlib.Path, metavar="DIR",
                   help="the bundle to compare with (default: the packaged rule base)")
    p.add_argument("--json", type=pathlib.Path, metavar="OUT", help="write the JSON report here")
    p.add_argument("--html", type=pathlib.Path, metavar="OUT", help="write the HTML report here")
    p.add_argument("--strict", action="store_true", help="stop at the first invalid event instead of skipping it")
    p.add_argument("--independent", action="store_true",
                   help="always keep two states and run every rule on both sides (slower; the same result)")
    p.add_argument("--all-rules", action="store_true",
                   help="count every rule, not only the changed ones (same state: the others agree)")
    p.add_argument("--examples", type=int, default=5, metavar="N", help="example diffs kept per rule (default 5)")
    p.set_defaults(handler=run)
    return p


def _load_events(args: argparse.Namespace, bad: ev.BadLines) -> list[dict[str, Any]]:
    if args.from_topic:
        if not args.since:
            raise ev.EventsError("--from-topic needs --since (how far back to read)")
        from services.common.settings import SettingsError, load_settings

        try:
            settings = load_settings()
        except SettingsError as exc:
            raise ev.EventsError(f"configuration error: {exc}") from None
        since = ev.parse_since(args.since)
        prog = Progress("backtest: reading topic")
        events = asyncio.run(ev.read_topic(settings, since, bad, args.strict, lambda n, _: prog(n)))
        prog.end()
        return events
    size = args.events.stat().st_size if args.events.is_file() else 0
    prog = Progress("backtest: reading")
    out = list(ev.read_file(args.events, bad, args.strict, lambda n, pos: prog(n, pos / size if size else None)))
    prog.end()
    return out


def _table(report: dict[str, Any]) -> str:
    rows = [(rid, r) for rid, r in report["rules"].items() if r["changed"] or r["gained"] or r["lost"]]
    head = f"{'rule':<6}{'baseline':>10}{'candidate':>11}{'gained':>8}{'lost':>7}{'patients':>10}{'inst.':>7}" \
           f"{'amount base':>14}{'amount cand':>14}  name"
    lines = [head]
    for rid, r in rows:
        lines.append(f"{rid:<6}{r['baseline']:>10,}{r['candidate']:>11,}{r['gained']:>8,}{r['lost']:>7,}"
                     f"{r['patients']:>10,}{r['institutions']:>7,}{r['amount_baseline']:>14,.2f}"
                     f"{r['amount_candidate']:>14,.2f}  {r['name_zh']} / {r['name_en']}")
    if not rows:
        lines.append("(no rule's alerts differ)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        t0 = time.monotonic()
        baseline = load_side(args.baseline)
        candidate = load_side(args.candidate)
    except DataError as exc:
        print(f"backtest: the bundle does not load: {exc}", file=sys.stderr)
        return 2
    bad = ev.BadLines()
    try:
        c0 = time.process_time()
        loaded = _load_events(args, bad)
        events = in_event_time_order(loaded)
        load_s, load_cpu = time.monotonic() - t0, time.process_time() - c0
    except (ev.EventsError, OSError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    if bad.count:
        print(f"backtest: skipped {bad.count:,} invalid line(s); first: line {bad.first[0]['line']}: "
              f"{bad.first[0]['error']}", file=sys.stderr)
    from services.common.privacy import pseudonym
    from services.common.settings import SettingsError

    try:
        pseudonym("")  # examples name patients by their pseudonym only: the key must be set
    except SettingsError as exc:
        print(f"backtest: configuration error: {exc}", file=sys.stderr)
        return 2
    bt = Backtest(baseline, candidate, independent=args.independent, pseudonym=pseudonym, all_rules=args.all_rules,
                  examples_per_rule=args.examples)
    prog = Progress("backtest: replaying", total=len(events))
    t1, c1 = time.monotonic(), time.process_time()
    bt.run(events, progress=prog)
    replay_s, replay_cpu = time.monotonic() - t1, time.process_time() - c1
    prog.end()
    report = bt.report()
    report["invalid_lines"] = {"count": bad.count, "first": bad.first}
    report["source"] = f"topic since {args.since}" if args.from_topic else str(args.events)
    n = report["events"] + report["duplicates"]
    report["timing"] = {
        "load_s": round(load_s, 3), "load_cpu_s": round(load_cpu, 3),
        "replay_s": round(replay_s, 3), "replay_cpu_s": round(replay_cpu, 3),
        "replay_events_per_cpu_s": round(n / replay_cpu) if replay_cpu else None,
        "events_per_s_overall": round(n / (load_s + replay_s)) if load_s + replay_s else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(f"backtest: {report['events']:,} events ({report['duplicates']:,} retries applied once) from "
          f"{report['first_event_at']} to {report['last_event_at']}, {report['patients']:,} patients")
    print(f"baseline  {report['baseline_revision']} ({report['baseline']})")
    print(f"candidate {report['candidate_revision']} ({report['candidate']})  mode {report['mode']}"
          + (f": {report['independent_because']}" if report["independent_because"] else ""))
    print(_table(report))
    print(f"replay {replay_s:.2f} s ({report['timing']['replay_events_per_cpu_s'] or 0:,} events/CPU-s), "
          f"reading and validating {load_s:.2f} s")
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"JSON report: {args.json}")
    if args.html:
        args.html.write_text(html.render(report), encoding="utf-8")
        print(f"HTML report: {args.html}")
    return 0
