"""`deploylab serve` as a user runs it: Triton + gateway up, URLs printed, SIGTERM drains and exits 0.

The process left running is only a supervisor, so it holds neither torch nor ONNX Runtime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
from deploylab.benchmarks.cli_cost import heavy_libraries_in
from deploylab.services.runtime.triton import http_ok

from tests.conftest import TEST_ROUTING
from tests.support import images
from tests.support.ports import free_ports


def test_serve_starts_the_stack_and_drains_on_sigterm(model_repository: Path, tmp_path: Path) -> None:
    gateway_port, http, grpc, metrics = free_ports(4)
    env = {
        **os.environ,
        "DEPLOYLAB_STATE_DIR": str(tmp_path),
        "DEPLOYLAB_TRITON_HTTP_PORT": str(http),
        "DEPLOYLAB_TRITON_GRPC_PORT": str(grpc),
        "DEPLOYLAB_TRITON_METRICS_PORT": str(metrics),
        "DEPLOYLAB_GATEWAY_ROUTING_FILE": str(TEST_ROUTING),
        "DEPLOYLAB_GATEWAY_DRAIN_TIMEOUT_S": "20",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploylab.services.cli",
            "serve",
            "resnet18",
            "repvgg_a0",
            "--port",
            str(gateway_port),
            "--repository",
            str(model_repository),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{gateway_port}"
    try:
        deadline = time.monotonic() + 120
        while not http_ok(f"{url}/readyz"):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "deploylab serve never became ready"
            time.sleep(0.5)
        models = httpx.get(f"{url}/v1/models").json()["models"]
        served = {v["triton_model"] for m in models for v in m["variants"] if v["served"]}
        assert served == {"resnet18", "repvgg_a0_train", "repvgg_a0_deploy"}  # repvgg_a0 = both variants
        assert heavy_libraries_in(process.pid) == []  # the supervisor; Triton and the gateway run apart

        children = psutil.Process(process.pid).children(recursive=True)
        batch = [("file", (f"{i}.jpg", images.jpeg(seed=i), "image/jpeg")) for i in range(16)]
        results: list[int] = []
        in_flight = threading.Thread(
            target=lambda: results.append(
                httpx.post(f"{url}/v1/models/resnet18/classify", files=batch, timeout=60).status_code
            )
        )
        in_flight.start()
        time.sleep(0.3)  # the request is being served
        process.send_signal(signal.SIGTERM)
        in_flight.join(60)
        assert results == [200], "an in-flight request must finish during the drain"
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert f"gateway {url}" in output and "docs" in output and f"127.0.0.1:{http}" in output
    assert "draining" in output
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
    try:
        httpx.get(f"{url}/healthz", timeout=2)
        raise AssertionError("the gateway still answers after SIGTERM")
    except httpx.TransportError:
        pass
