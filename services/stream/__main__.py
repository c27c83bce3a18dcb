"""``python -m services.stream`` starts one faust worker (metrics on PRESETTLE_WORKER_METRICS_PORT)."""

from __future__ import annotations

import logging
import sys

from prometheus_client import start_http_server

from services.common.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    if settings.worker_metrics_port:
        try:
            start_http_server(settings.worker_metrics_port, addr=settings.http_host)
        except OSError as exc:
            logging.getLogger("presettle.worker").warning(
                "worker metrics port %s unavailable (%s); metrics not served", settings.worker_metrics_port, exc
            )
    from services.stream.app import app

    args = (sys.argv[1:] if argv is None else argv) or ["--loop", "uvloop", "worker", "--loglevel", "warn", "--without-web"]
    sys.argv = [sys.argv[0], *args]
    app.main()


if __name__ == "__main__":
    main()
