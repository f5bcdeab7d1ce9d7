"""Start the whole serving stack from Python: embedded Triton (supervised) + the gateway process.

Used by `deploylab serve`, the load-test sweep and the tests, so all of them run the same real
processes the same way. Triton is restarted by a supervisor thread if it dies (the gateway answers
503 meanwhile and recovers on its own); the gateway is stopped with SIGTERM so it drains.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from deploylab.services.common.errors import TritonError
from deploylab.services.runtime.processes import log_excerpt, stop_process_group
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer, die_with_parent, http_ok, port_in_use
from pydantic import SecretStr

from .settings import GatewaySettings

log = logging.getLogger("deploylab.stack")


class GatewayStartError(RuntimeError):
    """The gateway process exited or never became ready; the message carries its log's tail."""


def gateway_env(settings: GatewaySettings) -> dict[str, str]:
    """The settings as `DEPLOYLAB_GATEWAY_*` variables, the way the gateway process reads them."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"DEPLOYLAB_GATEWAY_{name.upper()}"] = text
    return env


class GatewayProcess:
    """`python -m deploylab.services.gateway.main` as a child process with its log in a file."""

    def __init__(self, settings: GatewaySettings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self, ready_timeout_s: float = 60.0, wait_for: str = "/readyz") -> None:
        if port_in_use(self.settings.host, self.settings.port):
            raise GatewayStartError(
                f"port {self.settings.port} (gateway) is already in use on {self.settings.host}; "
                "choose another with --port or DEPLOYLAB_GATEWAY_PORT"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **gateway_env(self.settings)}
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "deploylab.services.gateway.main"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GatewayStartError(
                    f"gateway exited with code {self.process.returncode}; {self.log_tail()}"
                )
            if http_ok(self.url + wait_for, timeout_s=1.0):
                return
            time.sleep(0.2)
        self.stop()
        raise GatewayStartError(f"gateway not ready after {ready_timeout_s:.0f}s; {self.log_tail()}")

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM (uvicorn drains in-flight requests), then SIGKILL after the drain timeout."""
        return stop_process_group(self.process, timeout_s or self.settings.drain_timeout_s + 10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 12) -> str:
        return log_excerpt(self.log_path, lines)


class TritonSupervisor(threading.Thread):
    """Restart Triton when it dies unexpectedly (exponential backoff, 1 s … 30 s).

    A Triton killed hard (kill -9, the OOM killer) never unlinks its Python backend's shared-memory
    regions (16 MB+ per model instance in /dev/shm, itself often only 64 MB in a container): after a
    few crashes the restart would fail for want of shared memory. `TritonServer.stop` removes them
    (they carry the server's own name prefix) once the server and its stubs are gone.
    """

    def __init__(self, triton: TritonServer) -> None:
        super().__init__(name="triton-supervisor", daemon=True)
        self.triton = triton
        self.restarts = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        backoff = 1.0
        while not self._stopping.wait(0.5):
            if self.triton.alive():
                backoff = 1.0
                continue
            code = self.triton.process.returncode if self.triton.process else None
            log.error("tritonserver exited (code %s); restarting in %.0fs", code, backoff)
            if self._stopping.wait(backoff):
                return
            try:
                self.triton.stop()  # reap it and any stubs it left behind, remove its shared memory
                self.triton.start()
                self.restarts += 1
                log.warning("tritonserver restarted (%d restarts so far)", self.restarts)
            except TritonError as exc:
                log.error("tritonserver restart failed: %s", exc)
                backoff = min(backoff * 2, 30.0)

    def stop(self) -> None:
        self._stopping.set()


class ServingStack:
    """Triton (optional, supervised) + gateway, started in order and stopped in reverse order."""

    def __init__(
        self,
        runtime: RuntimeSettings,
        gateway: GatewaySettings,
        models: list[str] | None = None,
        *,
        start_triton: bool = True,
        supervise: bool = True,
        log_dir: Path | None = None,
        ready_timeout_s: float = 120.0,
    ) -> None:
        self.runtime = runtime
        self.log_dir = log_dir or runtime.state_dir / "logs"
        self.triton: TritonServer | None = None
        if start_triton:
            self.triton = TritonServer(runtime, models, log_path=self.log_dir / "triton.log")
            gateway = gateway.model_copy(
                update={"triton_url": f"{runtime.triton_host}:{runtime.triton_http_port}"}
            )
        self.gateway_settings = gateway
        self.gateway = GatewayProcess(gateway, self.log_dir / "gateway.log")
        self.supervise = supervise
        self.supervisor: TritonSupervisor | None = None
        self.ready_timeout_s = ready_timeout_s

    @property
    def gateway_url(self) -> str:
        return self.gateway.url

    def pids(self) -> dict[str, int]:
        """The root process of each running part (`triton`, `gateway`): what a measurement of cost follows."""
        roots = {
            "triton": self.triton.pid if self.triton else None,
            "gateway": self.gateway.process.pid if self.gateway.process else None,
        }
        return {role: pid for role, pid in roots.items() if pid is not None}

    def start(self) -> None:
        try:
            if self.triton is not None:
                self.triton.start()
                if self.supervise:
                    self.supervisor = TritonSupervisor(self.triton)
                    self.supervisor.start()
            self.gateway.start(self.ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor.join(timeout=5)
        self.gateway.stop()
        if self.triton is not None:
            self.triton.stop()

    def __enter__(self) -> ServingStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
