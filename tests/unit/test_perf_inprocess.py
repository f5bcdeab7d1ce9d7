"""In-process baselines return sane, complete points on a small exported model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from deploylab.services.perf.inprocess import (
    Layout,
    batch1_latency,
    best_throughput,
    layouts_for,
    measure_inprocess,
    resolve_model_name,
)


def test_onnxruntime_points_cover_every_batch_size_and_both_layouts(model_repository: Path) -> None:
    points = measure_inprocess(
        "mobilenet_v3_small", model_repository, "onnxruntime", batch_sizes=(1, 2), threads=2, duration_s=1.0
    )
    assert {(p.batch_size, p.layout) for p in points} == {(1, "1x2"), (1, "2x1"), (2, "1x2"), (2, "2x1")}
    for point in points:
        assert point.model == "mobilenet_v3_small" and point.engine == "onnxruntime"
        assert point.iterations > 0 and point.throughput_img_s > 0
        assert 0 < point.p50_ms <= point.p90_ms <= point.p99_ms and math.isfinite(point.p99_ms)
    assert best_throughput(points).throughput_img_s == max(p.throughput_img_s for p in points)
    latency = batch1_latency(points)
    assert latency is not None and latency.batch_size == 1 and latency.sessions == 1


def test_torch_engine_measures_the_same_model(model_repository: Path) -> None:
    points = measure_inprocess(
        "mobilenet_v3_small",
        model_repository,
        "torch",
        batch_sizes=(1,),
        duration_s=0.5,
        layouts=[Layout(sessions=1, threads=1)],
    )
    assert len(points) == 1 and points[0].engine == "torch" and points[0].iterations > 0


def test_openvino_engine_runs_the_exported_file(model_repository: Path) -> None:
    points = measure_inprocess(
        "mobilenet_v3_small",
        model_repository,
        "openvino",
        batch_sizes=(1, 4),
        duration_s=0.5,
        layouts=[Layout(sessions=2, threads=1)],
    )
    assert [(p.engine, p.batch_size, p.layout) for p in points] == [
        ("openvino", 1, "2x1"),
        ("openvino", 4, "2x1"),
    ]
    assert all(p.iterations > 0 and p.throughput_img_s > 0 for p in points)


def test_layouts_spend_exactly_the_thread_budget() -> None:
    assert layouts_for(1) == [Layout(1, 1)]
    assert all(layout.sessions * layout.threads == 4 for layout in layouts_for(4))


def test_catalog_names_resolve_to_the_default_variant() -> None:
    assert resolve_model_name("repvgg_a0") == "repvgg_a0_deploy"
    assert resolve_model_name("repvgg_a0_train") == "repvgg_a0_train"
    with pytest.raises(LookupError):
        resolve_model_name("no_such_model")


def test_missing_export_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="deploylab export"):
        measure_inprocess("resnet18", tmp_path, duration_s=0.1)
