"""`python -m deploylab.services.gateway.main`: run the gateway under uvicorn with the settings from the env.

uvloop + httptools (with request-head limits, protocol.py), no access log (it costs CPU per request
and would log paths). SIGTERM drains (see drain.py): new requests get 503 shutting_down, in-flight
ones finish, then uvicorn's graceful shutdown closes the port and the process exits 0. A second
SIGTERM, or Ctrl-C, stops at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from types import FrameType

import uvicorn

from .drain import DRAIN, Drain
from .protocol import configure_protocol
from .settings import GatewaySettings

log = logging.getLogger("deploylab.gateway")


class DrainingServer(uvicorn.Server):
    """uvicorn's Server with a drain phase in front of its graceful shutdown, and exit 0 after it."""

    def __init__(self, config: uvicorn.Config, drain: Drain, linger_s: float, timeout_s: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.linger_s = linger_s
        self.timeout_s = timeout_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.drain.draining and not self.should_exit:
            # Not recorded as a captured signal: uvicorn would re-raise it on the way out, and the
            # process would die "killed by SIGTERM" after a perfectly clean drain.
            self.drain.begin()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        drain = self.drain
        if drain.draining and not self.should_exit:
            if counter % 10 == 0:
                log.info("draining: %d request(s) in flight", drain.active)
            if drain.finished(self.linger_s, self.timeout_s):
                # What is left of the drain budget bounds uvicorn's own wait for stragglers.
                self.config.timeout_graceful_shutdown = max(1, round(drain.remaining_s(self.timeout_s)))
                self.should_exit = True
        return await super().on_tick(counter)


def run(settings: GatewaySettings | None = None) -> None:
    settings = settings or GatewaySettings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options: dict[str, object] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": configure_protocol(settings.head_timeout_s, settings.max_head_bytes),
        "access_log": False,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": int(settings.drain_timeout_s) or None,
        "timeout_keep_alive": 30,
        "server_header": False,
    }
    app = "deploylab.services.gateway.app:create_app"
    if settings.workers == 1:
        config = uvicorn.Config(app, **options)  # type: ignore[arg-type]
        DrainingServer(config, DRAIN, settings.drain_linger_s, settings.drain_timeout_s).run()
        return
    # NOTE: several workers run under uvicorn's process supervisor, which stops each worker with its
    # plain graceful shutdown (in-flight requests finish, the port closes at once): no drain phase.
    multiproc_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before any worker imports prometheus_client: /metrics then sums all workers.
        multiproc_dir = tempfile.mkdtemp(prefix="deploylab-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    try:
        uvicorn.run(app, **options)  # type: ignore[arg-type]
    finally:
        if multiproc_dir:
            shutil.rmtree(multiproc_dir, ignore_errors=True)


if __name__ == "__main__":
    run()
