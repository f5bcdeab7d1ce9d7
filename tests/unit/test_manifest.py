"""manifest.json: the engine a model is served by, as recorded or as its serving config implies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploylab.services.modelzoo.manifest import (
    MANIFEST_FILENAME,
    Manifest,
    read_manifest,
    read_repository,
    served_engine,
    write_manifest,
)


def manifest_fields(**changes: object) -> dict[str, object]:
    """The fields of a complete manifest as JSON holds them, without an engine unless given."""
    fields: dict[str, object] = {
        "model": "resnet18",
        "catalog_name": "resnet18",
        "variant": "default",
        "family": "resnet",
        "params": 11_689_512,
        "gmacs": 1.8141,
        "input_size": 224,
        "num_classes": 1000,
        "onnx_bytes": 46_000_000,
        "onnx_sha256": "0" * 64,
        "opset": 18,
        "parity": {
            "batch_sizes": [1, 4],
            "max_abs_error": 1e-6,
            "max_scaled_error": 1e-7,
            "rtol": 1e-3,
            "atol": 1e-38,
        },
        "weights": None,
        "serving": {"backend": "python", "instance_count": 2},
        "versions": {"torch": "2.14.1"},
        "onnx_fingerprint": "abc",
        "exported_at": "2026-01-01T00:00:00+00:00",
        "export_seconds": 1.0,
    }
    fields.update(changes)
    return fields


def test_served_engine_is_deploylab_ort_for_the_native_backend_else_the_engine_model_py_runs() -> None:
    assert served_engine("python") == "onnxruntime"
    assert served_engine("python", "openvino") == "openvino"
    assert served_engine("onnxruntime") == "onnxruntime"
    assert served_engine("deploylab_ort") == "deploylab_ort"


@pytest.mark.parametrize(
    ("serving", "engine"),
    [
        ({"backend": "python"}, "onnxruntime"),
        ({"backend": "onnxruntime"}, "onnxruntime"),
        ({"backend": "deploylab_ort"}, "deploylab_ort"),
        ({"backend": "python", "engine": "openvino"}, "openvino"),
        ({}, "onnxruntime"),
    ],
)
def test_a_manifest_without_an_engine_reads_as_its_serving_config_implies(
    tmp_path: Path, serving: dict[str, str], engine: str
) -> None:
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps(manifest_fields(serving=serving)))
    manifest = read_manifest(tmp_path)
    assert manifest is not None and manifest.engine == engine


def test_a_recorded_engine_is_kept_and_survives_a_round_trip(tmp_path: Path) -> None:
    written = Manifest.model_validate(
        manifest_fields(model="resnet18_openvino", variant="openvino", engine="openvino")
    )
    (tmp_path / "resnet18_openvino").mkdir()
    write_manifest(tmp_path / "resnet18_openvino", written)
    read = read_repository(tmp_path)
    assert read["resnet18_openvino"].engine == "openvino"
    assert (
        json.loads((tmp_path / "resnet18_openvino" / MANIFEST_FILENAME).read_text())["engine"] == "openvino"
    )


def test_a_manifest_built_in_code_without_an_engine_derives_it_too() -> None:
    native = Manifest(**manifest_fields(serving={"backend": "deploylab_ort"}))  # type: ignore[arg-type]
    assert native.engine == "deploylab_ort"


def test_an_fp16_manifest_keeps_its_precision_and_fidelity_record(tmp_path: Path) -> None:
    fidelity = {"images": 28, "top1_agreement": 1.0, "top5_overlap": 0.99, "max_logit_error": 0.002}
    record = {
        "method": "float16 weights and activations, float32 input and output",
        "fidelity_engine": "onnxruntime",
        "fidelity_device": "cuda",
        "fidelity_vs_fp32": {"calibration": fidelity, "held_out": fidelity},
    }
    fields = manifest_fields(model="resnet18_fp16", variant="fp16", precision="fp16", quantization=record)
    write_manifest(tmp_path, Manifest.model_validate(fields))
    manifest = read_manifest(tmp_path)
    assert manifest is not None and (manifest.precision, manifest.quantization) == ("fp16", record)
