"""Flat CSV views of a run (points, in-process baselines, model facts) for spreadsheets and pandas."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from .results import InProcessResult, ModelFacts, PointResult, RunResults

POINTS_CSV = "points.csv"
INPROCESS_CSV = "inprocess.csv"
MODELS_CSV = "models.csv"

MODEL_COLUMNS = tuple(name for name in ModelFacts.model_fields if name != "serving")
POINT_COLUMNS = (
    "id",
    "model",
    "variant",
    "triton_model",
    "target",
    "api",
    "loop",
    "users",
    "arrival_rate",
    "step",
    "locust_workers",
    "warmup_s",
    "window_s",
    "requests",
    "failures",
    "dropped_arrivals",
    "throughput_rps",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
    "gateway_requests",
    "gateway_request_ms",
    "gateway_preprocess_ms",
    "gateway_inference_ms",
    "triton_requests",
    "triton_avg_batch",
    "triton_queue_ms",
    "triton_compute_infer_ms",
    "triton_request_ms",
    "max_mismatch",
    "flagged",
)


def point_row(point: PointResult) -> dict[str, object]:
    lat, gw, tr = point.latency_ms, point.gateway, point.triton
    return {
        "id": point.id,
        "model": point.model,
        "variant": point.variant,
        "triton_model": point.triton_model,
        "target": point.target,
        "api": point.api,
        "loop": point.loop,
        "users": point.users,
        "arrival_rate": point.arrival_rate,
        "step": point.step,
        "locust_workers": point.locust_workers,
        "warmup_s": point.warmup_s,
        "window_s": point.window_s,
        "requests": point.requests,
        "failures": point.failures,
        "dropped_arrivals": point.dropped_arrivals,
        "throughput_rps": point.throughput_rps,
        "p50_ms": lat.p50,
        "p90_ms": lat.p90,
        "p95_ms": lat.p95,
        "p99_ms": lat.p99,
        "max_ms": lat.max,
        "mean_ms": lat.mean,
        "gateway_requests": gw.requests if gw else None,
        "gateway_request_ms": gw.request_ms if gw else None,
        "gateway_preprocess_ms": gw.preprocess_ms if gw else None,
        "gateway_inference_ms": gw.inference_ms if gw else None,
        "triton_requests": tr.requests if tr else None,
        "triton_avg_batch": tr.avg_batch_size if tr else None,
        "triton_queue_ms": tr.queue_ms if tr else None,
        "triton_compute_infer_ms": tr.compute_infer_ms if tr else None,
        "triton_request_ms": tr.request_ms if tr else None,
        "max_mismatch": max((c.mismatch for c in point.checks), default=None),
        "flagged": bool(point.flags),
    }


def all_points(results: RunResults) -> list[PointResult]:
    """Points and ramp steps together, in measurement order per kind."""
    return [*results.points, *(step for ramp in results.ramps for step in ramp.steps)]


def _write(path: Path, columns: Iterable[str], rows: Iterable[dict[str, object]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    tmp.replace(path)


def write_csv_files(results: RunResults, run_dir: Path) -> list[Path]:
    """points.csv, inprocess.csv and models.csv in `run_dir`; returns their paths."""
    run_dir.mkdir(parents=True, exist_ok=True)
    points = run_dir / POINTS_CSV
    _write(points, POINT_COLUMNS, (point_row(p) for p in all_points(results)))
    inprocess = run_dir / INPROCESS_CSV
    _write(inprocess, InProcessResult.model_fields, (r.model_dump() for r in results.inprocess))
    models = run_dir / MODELS_CSV
    # The serving config is nested; it stays in results.json.
    _write(models, MODEL_COLUMNS, (m.model_dump(include=set(MODEL_COLUMNS)) for m in results.models))
    return [points, inprocess, models]
