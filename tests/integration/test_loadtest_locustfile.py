"""The locustfile run headless by the real Locust CLI against the real gateway and Triton."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.support.loadtest import capacity_gateway

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
SHAPES = ROOT / "loadtests" / "shapes.py"


@pytest.fixture(scope="module")
def gateway_url(
    triton: TritonServer, runtime_settings: RuntimeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real gateway with a fixed in-flight bound: adaptive admission could shed a burst as 429."""
    with capacity_gateway(runtime_settings, tmp_path_factory.mktemp("gateway-logs")) as url:
        yield url


def run_locust(host: str, *args: str, seconds: int = 3) -> tuple[int, dict[str, dict[str, float]], str]:
    """Run Locust headless; returns (exit code, stats by request name, stderr tail)."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "--headless",
        "--json",
        "--host",
        host,
        "--stop-timeout",
        "5",
        "--loglevel",
        "WARNING",
        *args,
    ]
    if "-t" not in args:
        command += ["-t", f"{seconds}s"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=ROOT, check=False)
    try:
        stats = {entry["name"]: entry for entry in json.loads(done.stdout)}
    except ValueError:
        stats = {}
    return done.returncode, stats, done.stderr[-2000:]


def test_classify_and_v2_users_run_against_the_gateway_with_zero_failures(gateway_url: str) -> None:
    code, stats, log = run_locust(
        gateway_url,
        "-f",
        str(LOCUSTFILE),
        "-u",
        "4",
        "-r",
        "4",
        "--model",
        "resnet18",
        "ClassifyUser",
        "V2InferUser",
    )
    assert code == 0, log
    for name in ("classify resnet18:default", "v2 resnet18"):
        assert stats[name]["num_requests"] > 5, (name, log)
        assert stats[name]["num_failures"] == 0, (name, log)


def test_v2_user_runs_straight_against_triton_for_a_variant(
    triton: TritonServer, runtime_settings: RuntimeSettings
) -> None:
    code, stats, log = run_locust(
        runtime_settings.triton_http_url,
        "-f",
        str(LOCUSTFILE),
        "-u",
        "2",
        "-r",
        "2",
        "--model",
        "repvgg_a0",
        "--variant",
        "train",
        "V2InferUser",
    )
    assert code == 0, log
    entry = stats["v2 repvgg_a0_train"]
    assert entry["num_requests"] > 5 and entry["num_failures"] == 0, log


def test_open_loop_user_offers_its_arrival_rate_without_drops(gateway_url: str) -> None:
    code, stats, log = run_locust(
        gateway_url,
        "-f",
        str(LOCUSTFILE),
        "-u",
        "1",
        "-r",
        "1",
        "--model",
        "mobilenet_v3_small",
        "--arrival-rate",
        "20",
        "OpenLoopUser",
        seconds=4,
    )
    assert code == 0, log
    entry = stats["classify mobilenet_v3_small:default"]
    assert entry["num_failures"] == 0, log
    assert 40 <= entry["num_requests"] <= 120, entry["num_requests"]  # ~20/s for ~4 s, Poisson
    assert "dropped arrival" not in stats


def test_step_ramp_shape_drives_the_locust_cli(gateway_url: str) -> None:
    code, stats, log = run_locust(
        gateway_url,
        "-f",
        f"{LOCUSTFILE},{SHAPES}",
        "--model",
        "mobilenet_v3_small",
        "--ramp-users",
        "1,3",
        "--ramp-step-s",
        "1.5",
        "-t",
        "20s",
        "ClassifyUser",
    )
    assert code == 0, log
    entry = stats["classify mobilenet_v3_small:default"]
    assert entry["num_requests"] > 5 and entry["num_failures"] == 0, log


def test_wrong_answers_count_as_failures(triton: TritonServer, runtime_settings: RuntimeSettings) -> None:
    """Triton has no classify API: every request fails, and Locust's exit code says so."""
    code, stats, _ = run_locust(
        runtime_settings.triton_http_url,
        "-f",
        str(LOCUSTFILE),
        "-u",
        "1",
        "-r",
        "1",
        "--model",
        "resnet18",
        "ClassifyUser",
        seconds=2,
    )
    entry = stats["classify resnet18:default"]
    assert code != 0
    assert entry["num_requests"] > 0 and entry["num_failures"] == entry["num_requests"]
