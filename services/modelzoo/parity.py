"""Parity between the torch model and its ONNX export, run after every export.

A wrong export is silent at serving time (it still returns 1000 floats), so the exporter refuses to
install a model whose logits, as the engine that serves it computes them (ONNX Runtime, or OpenVINO for
the openvino variants), differ from torch's beyond the criterion of `Tolerance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .catalog import Engine
from .engines import ENGINE_LABELS, open_onnx
from .errors import ParityError
from .parity_limits import ATOL, MAX_ATOL, MAX_RTOL, RTOL
from .repository import InputDtype

TOP_K = 5
BATCH_SIZES = (1, 4)


@dataclass(frozen=True)
class Tolerance:
    """When torch and the engine agree: per sample, |Δ| ≤ atol + rtol·max|logit|, and the same top-k.

    Float32 rounding grows with the magnitudes flowing through the network, and the sample's largest
    logit measures them; an element-wise bound (rtol·|logit|) instead fails on near-zero logits of a
    network whose logits reach 1e4 (trained RepVGG: |Δ| 7e-3 is 5e-7 of the scale). The bound is
    relative to the sample, not absolute, because random-init MobileNets emit logits around 1e-9,
    where any fixed absolute tolerance would accept a wrong export; `atol` is only a floor for
    samples whose logits are all (near) zero.

    The ranking is what a classifier's user sees, so top-1 must be the same class and the top-k the
    same set of classes; a difference counts only as a tie when torch's logits of the classes
    involved are within the bound of each other. (The value bound alone lets two classes a little
    more than one bound apart swap.)
    """

    rtol: float = RTOL
    atol: float = ATOL

    def __post_init__(self) -> None:
        for name, value, ceiling in (("rtol", self.rtol, MAX_RTOL), ("atol", self.atol, MAX_ATOL)):
            if not 0 < value <= ceiling:  # also refuses NaN
                raise ValueError(
                    f"parity {name} must be > 0 and at most {ceiling:g} (a looser check would pass "
                    f"wrong exports), got {value!r}"
                )

    def bound(self, scale: float) -> float:
        """The largest |Δ| a sample whose largest |logit| is `scale` may show."""
        return self.atol + self.rtol * scale

    def describe(self) -> str:
        return (
            f"per sample |Δ| ≤ atol + rtol·max|logit| (rtol={self.rtol:g}, atol={self.atol:.3g}), "
            f"same top-1 and top-{TOP_K} classes up to ties within that bound"
        )


@dataclass(frozen=True)
class LogitsComparison:
    """Two logit batches measured against a `Tolerance`; `failure` is None when they agree."""

    max_abs_error: float
    max_scaled_error: float  # max over samples of max|Δ| / the sample's max|logit|: compare with rtol
    max_abs_logit: float
    failure: str | None


@dataclass(frozen=True)
class ParityResult:
    batch_sizes: tuple[int, ...]
    max_abs_error: float
    max_scaled_error: float
    max_abs_logit: float
    tolerance: Tolerance


class ParityToleranceError(ParityError):
    """The logits differ beyond the tolerance: the one parity failure a looser tolerance can lift."""


def random_batch(batch_size: int, input_size: int, seed: int) -> np.ndarray:
    """A normalized-image-like batch: standard normal, float32, NCHW."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, 3, input_size, input_size), dtype=np.float32)


def random_pixels(batch_size: int, input_size: int, seed: int) -> np.ndarray:
    """An image-like batch for a uint8-input export: uniform pixels 0..255, uint8, NCHW."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch_size, 3, input_size, input_size), dtype=np.uint8)


def random_input(batch_size: int, input_size: int, seed: int, input_dtype: InputDtype = "fp32") -> np.ndarray:
    """A random batch of what an export with `input_dtype` takes (`random_batch` or `random_pixels`)."""
    make = random_pixels if input_dtype == "uint8" else random_batch
    return make(batch_size, input_size, seed)


def torch_logits(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(batch)).numpy()  # type: ignore[no-any-return]


def compare_logits(
    actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance, engine: str = "ONNX Runtime"
) -> LogitsComparison:
    """Measure `actual` (N, classes, from `engine`) against torch's `expected`; name the worst logit."""
    actual = actual.astype(np.float64)
    expected = expected.astype(np.float64)
    diff = np.abs(actual - expected)
    diff[~np.isfinite(diff)] = np.inf  # a NaN anywhere is a failure, never a silent pass
    scales = np.abs(expected).max(axis=1)
    bounds = tolerance.atol + tolerance.rtol * scales
    excess = diff / bounds[:, None]
    failure = None
    if not np.all(excess <= 1):
        row, cls = (int(i) for i in np.unravel_index(np.argmax(excess), excess.shape))
        relative = f", |Δ|/scale {diff[row, cls] / scales[row]:.3g}" if scales[row] > 0 else ""
        failure = (
            f"worst logit: sample {row}, class {cls}: torch {expected[row, cls]:.7g}, {engine} "
            f"{actual[row, cls]:.7g}, |Δ| {diff[row, cls]:.3g} > {bounds[row]:.3g} "
            f"(atol + rtol·{scales[row]:.3g}{relative})"
        )
    else:
        for row in range(len(expected)):
            failure = _ranking_failure(row, actual[row], expected[row], float(bounds[row]), engine)
            if failure is not None:
                break
    worst = diff.max(axis=1)
    return LogitsComparison(
        max_abs_error=float(worst.max()),
        max_scaled_error=float((worst / np.maximum(scales, tolerance.atol)).max()),
        max_abs_logit=float(scales.max()),
        failure=failure,
    )


def _ranking_failure(
    row: int, actual: np.ndarray, expected: np.ndarray, bound: float, engine: str
) -> str | None:
    """Top-1 and top-k disagreements that are not ties within `bound` in torch's logits."""
    want, got = int(np.argmax(expected)), int(np.argmax(actual))
    if want != got and expected[want] - expected[got] > bound:
        return (
            f"sample {row}: top-1 is class {want} in torch, {got} in {engine}, whose torch logits "
            f"{expected[want]:.7g} and {expected[got]:.7g} are more than {bound:.3g} apart"
        )
    k = min(TOP_K, len(expected))
    ranked = np.argsort(-expected, kind="stable")
    kth = expected[ranked[k - 1]]
    want_top = set(ranked[:k].tolist())
    got_top = set(np.argsort(-actual, kind="stable")[:k].tolist())
    entered = [c for c in got_top - want_top if expected[c] < kth - bound]
    left = [c for c in want_top - got_top if expected[c] > kth + bound]
    if entered or left:
        return (
            f"sample {row}: top-{k} differs beyond ties within {bound:.3g}: {engine} adds classes "
            f"{sorted(got_top - want_top)} and drops {sorted(want_top - got_top)}"
        )
    return None


def check_parity(
    model: nn.Module,
    onnx_file: Path,
    input_size: int,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    tolerance: Tolerance | None = None,
    engine: Engine = "onnxruntime",
    input_dtype: InputDtype = "fp32",
) -> ParityResult:
    """Compare torch and `engine` on random batches of `input_dtype` (normalized-image-like floats, or
    uint8 pixels for a graph that normalises them itself); raise ParityError when they disagree."""
    tolerance = tolerance or Tolerance()
    label = ENGINE_LABELS[engine]
    run = open_onnx(onnx_file, engine, threads=max(1, torch.get_num_threads()))
    worst = worst_scaled = largest = 0.0
    for seed, batch_size in enumerate(batch_sizes):
        batch = random_input(batch_size, input_size, seed, input_dtype)
        expected = torch_logits(model, batch)
        actual = run(batch)
        if actual.shape != expected.shape:
            raise ParityError(
                f"{onnx_file}: {label} output shape {actual.shape} != torch {expected.shape} "
                f"at batch {batch_size}"
            )
        if not np.all(np.isfinite(expected)):
            raise ParityError(
                f"{onnx_file}: torch's own logits are not finite at batch {batch_size}: "
                "the weights overflow float32, there is nothing to export"
            )
        comparison = compare_logits(actual, expected, tolerance, label)
        worst = max(worst, comparison.max_abs_error)
        worst_scaled = max(worst_scaled, comparison.max_scaled_error)
        largest = max(largest, comparison.max_abs_logit)
        if comparison.failure is not None:
            raise ParityToleranceError(
                f"{onnx_file}: {label} disagrees with torch at batch {batch_size}: "
                f"{comparison.failure}; criterion: {tolerance.describe()}"
            )
    return ParityResult(tuple(batch_sizes), worst, worst_scaled, largest, tolerance)
