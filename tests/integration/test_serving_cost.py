"""What serving costs, read from a real tritonserver's process tree around a window of real requests."""

from __future__ import annotations

import numpy as np
from deploylab.loadtests.server_metrics import serving_cost, take_snapshot
from deploylab.services.measure.process_tree import sample_trees
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from tests.support.triton import http_infer

MODEL = "resnet18"
REQUESTS = 12


def snapshot(triton: TritonServer, runtime: RuntimeSettings):  # noqa: ANN201 - a ServerSnapshot
    assert triton.pid is not None
    return take_snapshot(
        runtime.triton_http_url, runtime.triton_metrics_url, MODEL, None, {"triton": triton.pid}
    )


def test_a_window_of_requests_costs_cpu_seconds_and_each_model_is_charged_its_own_instances(
    triton: TritonServer, runtime_settings: RuntimeSettings
) -> None:
    batch = np.random.default_rng(0).standard_normal((4, 3, 224, 224), dtype=np.float32)
    before = snapshot(triton, runtime_settings)
    for _ in range(REQUESTS):
        http_infer(runtime_settings.triton_http_url.removeprefix("http://"), MODEL, batch)
    after = snapshot(triton, runtime_settings)
    cost = serving_cost(before, after, REQUESTS)
    assert cost is not None and set(cost.by_process) == {"triton"}
    # 48 images of ResNet-18 at ~1.8 GMACs each: well over a tenth of a CPU second on any CPU.
    assert cost.cpu_s > 0.1 and cost.cores > 0
    assert cost.cpu_s_per_1k == round(cost.cpu_s / REQUESTS * 1000, 3)
    triton_cost = cost.by_process["triton"]
    assert triton_cost.processes >= 2  # tritonserver and the model's Python-backend stubs
    everything = sample_trees({"triton": triton.pid or 0})
    assert everything is not None
    # The other served models' backend stubs are not charged to this one.
    assert 0 < triton_cost.memory_mib < everything["triton"].memory_mib


def test_a_server_that_is_gone_gives_no_cost_instead_of_a_wrong_one() -> None:
    assert sample_trees({"triton": 2**22 + 12345}) is None
