"""The GPU check's native step rehearsed on the CPU: the same code exports, serves on deploylab_ort and
measures, so a lent GPU's few minutes are not spent finding its bugs. Only the CUDA points are left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploylab.benchmarks.gpu_check import save_weights
from deploylab.benchmarks.gpu_native import NATIVE_SUFFIX, run_native

pytestmark = pytest.mark.integration
MODEL = "mobilenet_v3_small"


def test_the_native_step_exports_serves_checks_parity_and_sets_served_against_in_process(
    tmp_path: Path,
) -> None:
    weights = tmp_path / "weights" / "model.pt"
    weights.parent.mkdir()
    save_weights(MODEL, weights)
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    result = run_native(MODEL, weights, work, out, None, "cpu", [1, 2], 0.3, 0.8, True)

    config = (work / "native-repo" / (MODEL + NATIVE_SUFFIX) / "config.pbtxt").read_text()
    assert 'backend: "deploylab_ort"' in config and "KIND_CPU" in config and "max_batch_size: 64" in config
    assert result["parity"]["ok"] and result["parity"]["relative"] < 1e-3
    assert [row["batch"] for row in result["inprocess"]] == [1, 2]
    assert {point["transport"] for point in result["points"]} == {
        "http-shm",
        "http",
    }  # no CUDA point on a CPU
    assert all(point["errors"] == 0 and point["throughput_img_s"] > 0 for point in result["points"])
    assert 0 < result["served_over_inprocess"] < 3
