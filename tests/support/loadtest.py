"""Running `deploylab loadtest` and its gateway the way a user does, for the load-test modules."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from deploylab.services.runtime.settings import RuntimeSettings

from tests.conftest import make_gateway_settings, running_gateway

ROOT = Path(__file__).resolve().parents[2]
MODEL = "mobilenet_v3_small"


@contextlib.contextmanager
def capacity_gateway(runtime: RuntimeSettings, log_dir: Path) -> Iterator[str]:
    """A real gateway configured the way `deploylab loadtest` configures its own: a fixed in-flight
    bound above every concurrency and a long deadline, so load is measured rather than shed."""
    settings = make_gateway_settings(
        runtime, admission="static", max_inflight_per_model=128, request_timeout_s=60.0
    )
    with running_gateway(settings, log_dir) as gateway:
        yield gateway.url


def run_loadtest(
    out: Path,
    gateway_url: str,
    runtime: RuntimeSettings,
    repository: Path,
    *extra: str,
    stop_timeout_s: float = 3,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`deploylab loadtest MODEL --profile smoke` against running servers, as a user would run it;
    `env` is added to this process's environment (every process the run starts inherits it)."""
    command = [
        sys.executable,
        "-m",
        "deploylab.services.cli",
        "loadtest",
        MODEL,
        "--profile",
        "smoke",
        "--gateway-url",
        gateway_url,
        "--triton-url",
        runtime.triton_http_url,
        "--triton-metrics-url",
        runtime.triton_metrics_url,
        "--repository",
        str(repository),
        "--out",
        str(out),
        "--stop-timeout-s",
        str(stop_timeout_s),
        *extra,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
        env={**os.environ, **(env or {})},
    )
