"""The per-model manifest: what was exported, from what, and how it checked out.

Written last into `<repo>/<model>/manifest.json`, so its presence marks a complete export. The
gateway's model listing, `deploylab models` and the comparison report all read facts from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, model_validator

#: Beside config.pbtxt in every exported model directory; read without importing the repository writer
#: (its protobuf schema costs the `deploylab serve` supervisor ~30 MB).
MANIFEST_FILENAME = "manifest.json"
SCHEMA_VERSION = 1


def served_engine(backend: str, engine: str = "onnxruntime") -> str:
    """What runs a model inside Triton: `deploylab_ort` for that native backend (its own ONNX Runtime
    build), else the engine deploylab's model.py (or Triton's onnxruntime backend) runs."""
    return "deploylab_ort" if backend == "deploylab_ort" else engine


class ParityRecord(BaseModel):
    """torch vs the serving engine on random batches, and the criterion they met (the export fails
    otherwise); OpenVINO for the openvino variants, ONNX Runtime for the rest."""

    batch_sizes: list[int]
    max_abs_error: float
    # max over samples of max|Δ| / the sample's max|logit|: the number the criterion holds below rtol,
    # meaningful at any logit scale (random-init MobileNets: 1e-9, trained RepVGGs: 1e4)
    max_scaled_error: float
    max_abs_logit: float | None = None  # the scale max_abs_error is measured at
    rtol: float
    atol: float
    criterion: str | None = None  # the rule rtol/atol were applied by, in words
    reparam_max_abs_error: float | None = None  # deploy vs train logits (RepVGG deploy only)


class WeightsRecord(BaseModel):
    path: str
    sha256: str


class Manifest(BaseModel):
    schema_version: int = SCHEMA_VERSION
    model: str  # Triton model name
    catalog_name: str
    variant: str
    family: str
    params: int
    gmacs: float
    input_size: int
    num_classes: int
    onnx_bytes: int
    onnx_sha256: str
    opset: int
    parity: ParityRecord
    weights: WeightsRecord | None
    serving: dict[str, object]
    versions: dict[str, str]
    onnx_fingerprint: str
    exported_at: str
    export_seconds: float
    precision: str = "fp32"
    #: What runs the model in Triton (`served_engine`): onnxruntime, openvino or deploylab_ort.
    engine: str = "onnxruntime"
    #: Lower precisions (int8, fp16): how the fp32 file became this one (`method` and its settings;
    #: `reused_from`: the export whose identical file was copied) and its fidelity against the fp32 model
    #: per image set (`fidelity_vs_fp32`), measured on `fidelity_engine` and `fidelity_device`.
    quantization: dict[str, object] | None = None

    @model_validator(mode="before")
    @classmethod
    def _engine_from_serving(cls, data: Any) -> Any:
        """A manifest without an engine (older exports) reads as the engine its serving config implies."""
        if isinstance(data, dict) and not data.get("engine"):
            serving = data.get("serving")
            serving = serving if isinstance(serving, dict) else {}
            backend = str(serving.get("backend", "python"))
            data = {**data, "engine": served_engine(backend, str(serving.get("engine", "onnxruntime")))}
        return data


def manifest_path(model_dir: Path) -> Path:
    return model_dir / MANIFEST_FILENAME


def write_manifest(model_dir: Path, manifest: Manifest) -> None:
    path = manifest_path(model_dir)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n")
    tmp.replace(path)


def read_manifest(model_dir: Path) -> Manifest | None:
    """The manifest of an exported model, or None when absent or unreadable (treated as not exported)."""
    path = manifest_path(model_dir)
    try:
        return Manifest.model_validate_json(path.read_text())
    except (OSError, ValidationError, json.JSONDecodeError):
        return None


def read_repository(repository: Path) -> dict[str, Manifest]:
    """Manifests of every completely exported model in the repository, by Triton model name."""
    if not repository.is_dir():
        return {}
    found = {}
    for child in sorted(repository.iterdir()):
        if child.is_dir() and (manifest := read_manifest(child)) is not None:
            found[manifest.model] = manifest
    return found
