"""Top-1 / top-5 of every exported variant of a model on a labelled image set.

The images go through the gateway's own preprocessing (what a served request gets) and the variant's
exported model.onnx on ONNX Runtime, so the accuracy is that of the deployment, not of the torch
module it came from. Precision and engine are recorded beside each number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from deploylab.services.common.errors import UserError

from .dataset import DatasetError, LabelledImage, read_dataset

if TYPE_CHECKING:
    from deploylab.services.modelzoo.catalog import Preprocessing

#: Images per ONNX Runtime call: large enough to amortise the call, small enough for any host's memory.
BATCH = 16


@dataclass(frozen=True)
class Accuracy:
    model: str  # Triton model name (the variant's directory)
    variant: str
    precision: str
    engine: str
    images: int
    top1: float
    top5: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows hold their label among their k largest logits."""
    top = np.argpartition(-logits, kth=min(k, logits.shape[1]) - 1, axis=1)[:, :k]
    return int(np.sum(np.any(top == labels[:, None], axis=1)))


def evaluate_variant(
    repository: Path,
    triton_name: str,
    images: list[LabelledImage],
    progress: Callable[[int, int], None] | None = None,
) -> Accuracy:
    """Accuracy of one exported variant (ONNX Runtime, fp32 as exported) on `images`."""
    import onnxruntime as ort
    from deploylab.services.modelzoo.catalog import resolve_triton_name
    from deploylab.services.modelzoo.repository import onnx_path

    spec, variant = resolve_triton_name(triton_name)
    model_file = str(onnx_path(repository, triton_name))
    session = ort.InferenceSession(model_file, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    top1 = top5 = 0
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        batch = np.stack([_pixels(item, spec.preprocessing) for item in chunk])
        logits = session.run(None, {input_name: batch})[0]
        labels = np.asarray([item.label for item in chunk])
        top1 += topk_hits(logits, labels, 1)
        top5 += topk_hits(logits, labels, 5)
        if progress is not None:
            progress(start + len(chunk), len(images))
    count = len(images)
    return Accuracy(triton_name, variant, "fp32", "onnxruntime", count, top1 / count, top5 / count)


def _pixels(item: LabelledImage, steps: Preprocessing) -> np.ndarray:
    """The served preprocessing of one file; an unreadable image names its path."""
    from deploylab.services.gateway.errors import ImageTooLargeError, InvalidImageError
    from deploylab.services.gateway.preprocess import decode_and_preprocess

    try:
        return decode_and_preprocess(item.path.read_bytes(), steps, 10**9)[0]
    except (InvalidImageError, ImageTooLargeError) as exc:
        raise DatasetError(f"{item.path}: {exc.message}") from None


def measure_accuracy(
    model: str,
    images: Path,
    repository: Path,
    log: Callable[[str], None] = print,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
) -> list[Accuracy]:
    """Every exported variant of catalog `model` on the labelled images under `images`."""
    from deploylab.services.modelzoo.catalog import get_spec, imagenet_labels
    from deploylab.services.modelzoo.manifest import read_repository

    spec = get_spec(model)
    exported = read_repository(repository)
    names = [spec.triton_name(v) for v in spec.variant_names if spec.triton_name(v) in exported]
    if not names:
        raise UserError(f"{model} is not exported in {repository}; run `deploylab export {model}` first")
    items = read_dataset(images, imagenet_labels())
    classes = len({i.label for i in items})
    log(f"{model}: {len(items)} images, {classes} classes; variants: {', '.join(names)}")
    return [
        evaluate_variant(repository, name, items, progress=progress(name) if progress else None)
        for name in names
    ]
