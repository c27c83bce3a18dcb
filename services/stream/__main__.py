"""``python -m services.stream`` starts one faust worker.

Metrics, ``/ready`` (partitions assigned, recovery done) and ``/healthz`` on
PRESETTLE_WORKER_METRICS_PORT (services/stream/readiness.py).
"""

from __future__ import annotations

import logging
import sys

from services.common.settings import get_settings
from services.stream import readiness


def main() -> None:
    settings = get_settings()
    if settings.worker_metrics_port:
        try:
            readiness.serve(settings.worker_metrics_port, addr=settings.http_host)
        except OSError as exc:
            logging.getLogger("presettle.worker").warning(
                "worker metrics port %s unavailable (%s); metrics not served", settings.worker_metrics_port, exc
            )
    from services.stream.app import app

    args = sys.argv[1:] or ["--loop", "uvloop", "worker", "--loglevel", "warn", "--without-web"]
    sys.argv = [sys.argv[0], *args]
    app.main()


if __name__ == "__main__":
    main()
