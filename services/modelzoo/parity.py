"""Parity between the torch model and its ONNX export, run after every export.

A wrong export is silent at serving time (it still returns 1000 floats), so the exporter refuses to
install a model whose ONNX Runtime logits differ from torch's beyond `rtol`/`atol`.

# NOTE: random-init MobileNets emit logits around 1e-9, where `atol=1e-5` alone would accept any
# export. The same tolerances are therefore applied a second time to logits scaled by their largest
# magnitude, so an error can't hide below the absolute tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ParityError

RTOL = 1e-3
ATOL = 1e-5
BATCH_SIZES = (1, 4)


@dataclass(frozen=True)
class ParityResult:
    batch_sizes: tuple[int, ...]
    max_abs_error: float
    max_scaled_error: float  # max |Δ| / max |torch logits|
    rtol: float
    atol: float


def random_batch(batch_size: int, input_size: int, seed: int) -> np.ndarray:
    """A normalized-image-like batch: standard normal, float32, NCHW."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, 3, input_size, input_size), dtype=np.float32)


def torch_logits(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(batch)).numpy()  # type: ignore[no-any-return]


def check_parity(
    model: nn.Module,
    onnx_file: Path,
    input_size: int,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> ParityResult:
    """Compare torch and ONNX Runtime on random batches; raise ParityError past the tolerance."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    worst = 0.0
    worst_scaled = 0.0
    for seed, batch_size in enumerate(batch_sizes):
        batch = random_batch(batch_size, input_size, seed)
        expected = torch_logits(model, batch)
        actual = session.run(None, {input_name: batch})[0]
        if actual.shape != expected.shape:
            raise ParityError(
                f"{onnx_file}: ONNX output shape {actual.shape} != torch {expected.shape} "
                f"at batch {batch_size}"
            )
        scale = float(np.max(np.abs(expected))) or 1.0
        worst = max(worst, float(np.max(np.abs(actual - expected))))
        worst_scaled = max(worst_scaled, float(np.max(np.abs(actual - expected))) / scale)
        for label, got, want in (
            ("logits", actual, expected),
            ("scaled logits", actual / scale, expected / scale),
        ):
            if not np.allclose(got, want, rtol=rtol, atol=atol):
                bad = ~np.isclose(got, want, rtol=rtol, atol=atol)
                raise ParityError(
                    f"{onnx_file}: ONNX Runtime disagrees with torch at batch {batch_size}: "
                    f"{int(bad.sum())}/{bad.size} {label} outside rtol={rtol}, atol={atol} "
                    f"(max abs error {worst:.3g}, scaled {worst_scaled:.3g})"
                )
    return ParityResult(tuple(batch_sizes), worst, worst_scaled, rtol, atol)
