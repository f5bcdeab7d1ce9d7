"""`python -m services.gateway.main`: run the gateway under uvicorn with the settings from the env.

uvloop + httptools, no access log (it costs CPU per request and would log paths), graceful drain on
SIGTERM for `drain_timeout_s`: uvicorn stops accepting, lets in-flight requests finish, then exits 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import uvicorn

from .settings import GatewaySettings


def run(settings: GatewaySettings | None = None) -> None:
    settings = settings or GatewaySettings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    multiproc_dir = None
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before any worker imports prometheus_client: /metrics then sums all workers.
        multiproc_dir = tempfile.mkdtemp(prefix="deploylab-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    try:
        uvicorn.run(
            "services.gateway.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level=settings.log_level,
            timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
            timeout_keep_alive=30,
            server_header=False,
        )
    finally:
        if multiproc_dir:
            shutil.rmtree(multiproc_dir, ignore_errors=True)


if __name__ == "__main__":
    run()
