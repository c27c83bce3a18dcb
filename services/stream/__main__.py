"""``python -m services.stream`` starts one faust worker.

Metrics, ``/ready`` (partitions assigned, table recovered, no rebalance) and ``/healthz``
on PRESETTLE_WORKER_METRICS_PORT (services/stream/readiness.py).

The worker is built here rather than by faust's command line, so that logging is ours
(services/common/logs.py: JSON lines outside a terminal, library loggers at WARNING) and
faust prints no banner and no terminal spinner (escape codes, and a root logger at DEBUG).
With arguments, they go to faust's command line as before (e.g. ``python -m services.stream
tables``).
"""

from __future__ import annotations

import logging
import sys

from services.common import logs
from services.common.settings import settings_or_exit
from services.stream import readiness


def main(argv: list[str] | None = None) -> None:
    settings = settings_or_exit()
    logs.setup("worker", settings.log_format, settings.log_level)
    if settings.worker_metrics_port:
        try:
            readiness.serve(settings.worker_metrics_port, addr=settings.http_host)
        except OSError as exc:
            logging.getLogger("presettle.worker").warning(
                "worker metrics port %s unavailable (%s); metrics not served", settings.worker_metrics_port, exc
            )
    args = sys.argv[1:] if argv is None else argv
    if args:  # explicit faust command line (e.g. `presettle worker tables`)
        from services.stream.app import app

        sys.argv = [sys.argv[0], *args]
        app.main()
        return
    try:
        from mode.loop import use

        use("uvloop")
    except Exception:  # uvloop missing: the default loop
        pass
    import faust

    from services.stream.app import app

    worker = faust.Worker(app, quiet=True, override_logging=False, redirect_stdouts=False, loglevel="WARN")
    worker.spinner = None  # no terminal spinner, no escape codes, no DEBUG root logger
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
