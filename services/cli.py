"""The ``presettle`` command (``[project.scripts]``): one entry point, one sub-parser per subcommand.

    presettle run        the whole service on this machine (as ``make run``)
    presettle worker     one stream worker (extra arguments go to faust)
    presettle ingress    the HTTP ingress (uvicorn)
    presettle sink       the decision-log sink: topics → SQLite / PostgreSQL (docs/decisionlog.md)
    presettle rules      rule-base bundles: validate, publish, revisions, activate (services/rules_cli.py)
    presettle backtest   replay recorded events through a candidate rule base (docs/rules.md)
    presettle kb import  a national code table (CSV/XLSX) → a new catalogue edition (docs/rules.md)

Adding a subcommand: write ``def add_<name>(sub: Subparsers) -> None`` that adds its parser
and sets ``handler`` (a function ``(argparse.Namespace) -> int``, the exit code), then list
it in ``COMMANDS``. Configuration comes from the ``PRESETTLE_*`` variables (README.md,
Configuration); a bad value exits with code 2 and a message naming the variable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from services.common.settings import Settings, settings_or_exit

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

Handler = Callable[[argparse.Namespace], int]


def _settings() -> Settings:
    return settings_or_exit()


# -- run -------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from services import stack

    return stack.main()


def add_run(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="the whole service: broker (embedded unless PRESETTLE_KAFKA_BOOTSTRAP), "
                                   "workers, ingress; Ctrl-C stops",
                       description="Start the whole service on this machine, as `make run` does.")
    p.set_defaults(handler=_run)


# -- worker ----------------------------------------------------------------------------------
def _worker(args: argparse.Namespace) -> int:
    _settings()  # fail fast, with the variable named
    from services.stream.__main__ import main as worker_main

    worker_main(list(args.faust_args))
    return 0


def add_worker(sub: Subparsers) -> None:
    p = sub.add_parser("worker", help="one stream worker (faust); needs a running broker",
                       description="Start one stream worker. Arguments after `worker` go to faust "
                                   "(default: none — the worker runs with our logging, no banner or spinner).")
    p.set_defaults(handler=_worker, passthrough="faust_args")  # unknown arguments → args.faust_args


# -- ingress ---------------------------------------------------------------------------------
def _ingress(args: argparse.Namespace) -> int:
    settings = _settings()
    import uvicorn

    uvicorn.run("services.ingress.app:app", host=args.host or settings.http_host, port=args.port or settings.http_port,
                access_log=False, log_level="warning", timeout_graceful_shutdown=5)
    return 0


def add_ingress(sub: Subparsers) -> None:
    p = sub.add_parser("ingress", help="the HTTP ingress (uvicorn); needs a running broker and worker",
                       description="Serve the HTTP API on PRESETTLE_HTTP_HOST:PRESETTLE_HTTP_PORT.")
    p.add_argument("--host", help="listen address (default: PRESETTLE_HTTP_HOST)")
    p.add_argument("--port", type=int, help="listen port (default: PRESETTLE_HTTP_PORT)")
    p.set_defaults(handler=_ingress)


# -- sink ------------------------------------------------------------------------------------
def _sink(args: argparse.Namespace) -> int:
    from services.decisionlog import sink

    return sink.main()


def add_sink(sub: Subparsers) -> None:
    p = sub.add_parser("sink", help="the decision-log sink: audit, feedback, status and rule-base records into "
                                    "the database (PRESETTLE_DATABASE_URL, default SQLite under the data directory)",
                       description="Store every decision, feedback, status change and rule-base revision in the "
                                   "decision log (docs/decisionlog.md).")
    p.set_defaults(handler=_sink)


# -- deadletter --------------------------------------------------------------------------------
def add_deadletter(sub: Subparsers) -> None:
    from services.stream import deadletter  # imports no faust app: cheap

    parser = deadletter.add_parser(sub)
    parser.set_defaults(handler=deadletter.run)


# -- rules -------------------------------------------------------------------------------------
def add_rules(sub: Subparsers) -> None:
    from services.rules_cli import add_rules as add  # imports no engine until a command runs

    add(sub)


# -- backtest --------------------------------------------------------------------------------
def add_backtest(sub: Subparsers) -> None:
    from services.backtest import cli as backtest_cli  # imports no faust app or Kafka client: cheap

    backtest_cli.add_parser(sub)


# -- kb import -------------------------------------------------------------------------------
def add_kb(sub: Subparsers) -> None:
    from services.kbimport import cli as kb_cli  # the standard library and the rule loader: cheap

    kb_cli.add_parser(sub)


# Every subcommand, in --help order.
COMMANDS: list[Callable[[Subparsers], None]] = [
    add_run, add_worker, add_ingress, add_sink, add_deadletter, add_rules, add_backtest, add_kb,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="presettle",
        description="PreSettle: streaming real-time pre-settlement alerts. "
                    "Configuration: PRESETTLE_* environment variables (README.md, Configuration).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse; a subcommand with ``passthrough=<name>`` receives the arguments it does not know as ``<name>``."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    target = getattr(args, "passthrough", None)
    if rest and not target:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if target:
        setattr(args, target, rest)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
