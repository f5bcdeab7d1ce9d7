"""Which engine and device `deploylab accuracy` runs an exported variant on: the ones that serve it."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploylab.services.accuracy.evaluate import file_engine, serving_device
from deploylab.services.common.errors import UserError
from deploylab.services.modelzoo import engines
from deploylab.services.modelzoo.manifest import Manifest, read_manifest


@pytest.fixture
def manifest(model_repository: Path) -> Manifest:
    found = read_manifest(model_repository / "mobilenet_v3_small")
    assert found is not None
    return found


def served(manifest: Manifest, **serving: object) -> Manifest:
    return manifest.model_copy(update={"serving": {**manifest.serving, **serving}})


def test_the_served_engine_runs_the_file_and_deploylab_ort_is_onnx_runtime(manifest: Manifest) -> None:
    assert file_engine(manifest) == "onnxruntime"
    assert file_engine(served(manifest, engine="openvino")) == "openvino"
    assert file_engine(served(manifest, backend="deploylab_ort")) == "onnxruntime"
    with pytest.raises(UserError, match="engine 'tensorrt'"):
        file_engine(served(manifest, engine="tensorrt"))


def test_gpu_instances_run_on_cuda_where_onnx_runtime_has_it_else_on_the_cpu(
    manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_gpu = served(manifest, instance_kind="gpu")
    monkeypatch.setattr(engines, "onnxruntime_has_cuda", lambda: True)
    assert (serving_device(manifest), serving_device(on_gpu)) == ("cpu", "cuda")
    monkeypatch.setattr(engines, "onnxruntime_has_cuda", lambda: False)
    assert serving_device(on_gpu) == "cpu"
