"""Top-1 / top-5 of every exported variant of a model on a labelled image set.

The images go through the gateway's own preprocessing (what a served request gets) and the variant's
exported model.onnx on the engine that serves it (ONNX Runtime or OpenVINO, as its manifest says), so
the accuracy is that of the deployment, not of the torch module it came from. Precision and engine are
the manifest's, recorded beside each number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from deploylab.services.common.errors import UserError
from deploylab.services.modelzoo.catalog import ENGINES, Engine, get_spec, imagenet_labels

from .dataset import DatasetError, LabelledImage, read_dataset

if TYPE_CHECKING:
    from deploylab.services.modelzoo.catalog import Preprocessing
    from deploylab.services.modelzoo.engines import OrtDevice
    from deploylab.services.modelzoo.manifest import Manifest

#: Images per engine call: large enough to amortise the call, small enough for any host's memory.
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
    device: str = "cpu"  # where the engine ran: cpu, or cuda (ONNX Runtime's provider, for GPU instances)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows hold their label among their k largest logits."""
    top = np.argpartition(-logits, kth=min(k, logits.shape[1]) - 1, axis=1)[:, :k]
    return int(np.sum(np.any(top == labels[:, None], axis=1)))


def evaluate_variant(
    repository: Path,
    manifest: Manifest,
    images: list[LabelledImage],
    progress: Callable[[int, int], None] | None = None,
) -> Accuracy:
    """Accuracy of one exported variant on `images`, run by the engine that serves it (configured as the
    Triton model runs it, by `engines.open_onnx`)."""
    from deploylab.services.modelzoo.engines import open_onnx
    from deploylab.services.modelzoo.repository import V2_DATATYPES, onnx_path

    spec = get_spec(manifest.catalog_name)
    # A uint8-input export takes the framed pixels and normalises in its graph, as the gateway feeds it.
    datatype = V2_DATATYPES[manifest.serving.get("input_dtype", "fp32")]  # type: ignore[index]
    engine, device = file_engine(manifest), serving_device(manifest)
    run = open_onnx(onnx_path(repository, manifest.model), engine, device=device)
    top1 = top5 = 0
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        batch = np.stack([_pixels(item, spec.preprocessing, datatype) for item in chunk])
        logits = run(batch)
        labels = np.asarray([item.label for item in chunk])
        top1 += topk_hits(logits, labels, 1)
        top5 += topk_hits(logits, labels, 5)
        if progress is not None:
            progress(start + len(chunk), len(images))
    count = len(images)
    return Accuracy(
        model=manifest.model,
        variant=manifest.variant,
        precision=manifest.precision,
        engine=manifest.engine,
        images=count,
        top1=top1 / count,
        top5=top5 / count,
        device=device,
    )


def file_engine(manifest: Manifest) -> Engine:
    """The engine that runs the exported ONNX file: OpenVINO where the served config says so, else ONNX
    Runtime (the Python backend's, Triton's onnxruntime backend or deploylab_ort alike)."""
    engine = manifest.serving.get("engine") or "onnxruntime"
    if engine not in ENGINES:
        raise UserError(
            f"{manifest.model}: its manifest names engine {engine!r}; known: {', '.join(ENGINES)}"
        )
    return cast("Engine", engine)


def serving_device(manifest: Manifest) -> OrtDevice:
    """Where to run the file as its instances run it: ONNX Runtime's CUDA provider for GPU instances
    where this ONNX Runtime has one (else its CPU provider, recorded as such), the CPU otherwise."""
    from deploylab.services.modelzoo.engines import onnxruntime_has_cuda

    on_gpu = manifest.serving.get("instance_kind") == "gpu" and file_engine(manifest) == "onnxruntime"
    return "cuda" if on_gpu and onnxruntime_has_cuda() else "cpu"


def _pixels(item: LabelledImage, steps: Preprocessing, datatype: str) -> np.ndarray:
    """The served preprocessing of one file for a model whose input is `datatype`; an unreadable image
    names its path."""
    from deploylab.services.gateway.errors import ImageTooLargeError, InvalidImageError
    from deploylab.services.gateway.preprocess import decode_and_preprocess

    try:
        return decode_and_preprocess(item.path.read_bytes(), steps, 10**9, datatype)[0]
    except (InvalidImageError, ImageTooLargeError) as exc:
        raise DatasetError(f"{item.path}: {exc.message}") from None


def measure_accuracy(
    model: str,
    images: Path,
    repository: Path,
    log: Callable[[str], None] = print,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
) -> list[Accuracy]:
    """Every exported variant of catalog `model` (opt-in ones included) on the labelled images under
    `images`, each on its own engine."""
    from deploylab.services.modelzoo.manifest import read_repository

    spec = get_spec(model)
    exported = read_repository(repository)
    manifests = [exported[n] for v in spec.all_variant_names if (n := spec.triton_name(v)) in exported]
    if not manifests:
        raise UserError(f"{model} is not exported in {repository}; run `deploylab export {model}` first")
    items = read_dataset(images, imagenet_labels())
    classes = len({i.label for i in items})
    listed = ", ".join(f"{m.model} ({m.precision}, {m.engine}, {serving_device(m)})" for m in manifests)
    log(f"{model}: {len(items)} images, {classes} classes; variants: {listed}")
    return [
        evaluate_variant(repository, m, items, progress=progress(m.model) if progress else None)
        for m in manifests
    ]
