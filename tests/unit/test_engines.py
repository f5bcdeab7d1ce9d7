"""OpenVINO beside ONNX Runtime on one exported ONNX file: parity, int8 fidelity, and model.py's engine."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from deploylab.services.modelzoo import engines
from deploylab.services.modelzoo.catalog import Preprocessing
from deploylab.services.modelzoo.engines import open_onnx, openvino_cpu_config
from deploylab.services.modelzoo.errors import ParityError, ZooError
from deploylab.services.modelzoo.export import export_onnx
from deploylab.services.modelzoo.parity import Tolerance, check_parity, compare_logits, random_batch
from deploylab.services.modelzoo.quantize import measure_fidelity, quantize_int8
from deploylab.services.modelzoo.repository import INPUT_NAME, OUTPUT_NAME
from torch import nn

SIDE = 32
CLASSES = 10
MODEL_PY = Path(__file__).resolve().parents[2] / "services" / "modelzoo" / "triton_python_model.py"


def tiny_network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, CLASSES),
    ).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    """A small network and its ONNX export (dynamic batch, the repository's tensor names)."""
    model = tiny_network()
    path = tmp_path_factory.mktemp("engines") / "model.onnx"
    export_onnx(model, path, SIDE)
    return model, path


def test_openvino_and_onnxruntime_agree_on_the_same_file_at_any_batch(
    exported: tuple[nn.Module, Path],
) -> None:
    _, path = exported
    openvino, onnxruntime = open_onnx(path, "openvino", threads=1), open_onnx(path, "onnxruntime", threads=1)
    for batch_size in (1, 3, 8):  # one compiled model, dynamic batch
        batch = random_batch(batch_size, SIDE, seed=batch_size)
        got, want = openvino(batch), onnxruntime(batch)
        assert got.shape == (batch_size, CLASSES)
        assert compare_logits(got, want, Tolerance(), "OpenVINO").failure is None


def test_parity_runs_on_openvino_and_names_it_when_it_fails(exported: tuple[nn.Module, Path]) -> None:
    model, path = exported
    result = check_parity(model, path, SIDE, engine="openvino")
    assert result.max_scaled_error < result.tolerance.rtol
    with pytest.raises(ParityError, match="OpenVINO disagrees with torch"):
        check_parity(tiny_network(seed=1), path, SIDE, engine="openvino")


def test_int8_fidelity_is_measured_on_the_engine_that_serves_the_file(
    exported: tuple[nn.Module, Path], tmp_path: Path
) -> None:
    _, path = exported
    int8 = tmp_path / "int8.onnx"
    steps = Preprocessing(resize=36, crop=SIDE)
    quantize_int8(path, int8, steps)
    for engine in ("onnxruntime", "openvino"):
        fidelity = measure_fidelity(path, int8, steps, engine)  # type: ignore[arg-type]
        assert set(fidelity) == {"calibration", "held_out"}
        for measured in fidelity.values():
            assert measured["images"] > 0 and 0 <= measured["top1_agreement"] <= 1
            assert 0 < measured["max_logit_error"] < 0.5  # quantized, not broken


def test_onnxruntime_on_cuda_without_its_cuda_provider_is_refused_naming_what_it_has(
    exported: tuple[nn.Module, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = exported
    monkeypatch.setattr(engines, "onnxruntime_has_cuda", lambda: False)
    with pytest.raises(ZooError, match="has no CUDA provider .*CPUExecutionProvider"):
        open_onnx(path, "onnxruntime", device="cuda")


def test_openvino_is_opened_on_the_cpu_only(exported: tuple[nn.Module, Path]) -> None:
    _, path = exported
    with pytest.raises(ValueError, match="CPU only"):
        open_onnx(path, "openvino", device="cuda")


# -- model.py's openvino engine, with a stand-in for Triton's utils module ----------------------------


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class FakeResponse:
    def __init__(self, output_tensors: list[FakeTensor], error: object = None) -> None:
        self.output_tensors, self.error = output_tensors, error


def load_model_py(monkeypatch: pytest.MonkeyPatch) -> Any:
    """model.py as Triton's stub loads it: a module of its own, `triton_python_backend_utils` importable."""
    logger = types.SimpleNamespace(log_info=lambda msg: None, log_warn=lambda msg: None)
    utils = types.SimpleNamespace(
        Logger=logger,
        Tensor=FakeTensor,
        InferenceResponse=FakeResponse,
        TritonError=RuntimeError,
        get_input_tensor_by_name=lambda request, name: request[name],
    )
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    spec = importlib.util.spec_from_file_location("deploylab_test_model_py", MODEL_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def triton_args(path: Path, parameters: dict[str, str]) -> dict[str, str]:
    config = {
        "max_batch_size": 8,
        "input": [{"name": INPUT_NAME}],
        "output": [{"name": OUTPUT_NAME}],
        "parameters": {k: {"string_value": v} for k, v in parameters.items()},
    }
    return {
        "model_config": json.dumps(config),
        "model_repository": str(path.parent.parent),
        "model_version": path.parent.name,
        "model_name": "tiny_openvino",
        "model_instance_kind": "CPU",
    }


def test_model_py_runs_openvino_when_its_config_says_so_and_answers_each_request(
    exported: tuple[nn.Module, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = exported
    model_py = load_model_py(monkeypatch)
    model = model_py.TritonPythonModel()
    model.initialize(triton_args(path, {"engine": "openvino", "intra_op_thread_count": "1"}))
    assert type(model.engine).__name__ == "_OpenVinoEngine"
    # model.py cannot import deploylab: its OpenVINO settings are a copy, held equal here.
    assert model.engine.config == openvino_cpu_config(1)

    inputs = [random_batch(1, SIDE, seed=1), random_batch(3, SIDE, seed=2)]
    responses = model.execute([{INPUT_NAME: FakeTensor(INPUT_NAME, x)} for x in inputs])
    expected = open_onnx(path, "onnxruntime", threads=1)(np.concatenate(inputs))
    got = np.concatenate([r.output_tensors[0].as_numpy() for r in responses])
    assert [r.output_tensors[0].as_numpy().shape[0] for r in responses] == [1, 3]
    assert compare_logits(got, expected, Tolerance(), "OpenVINO").failure is None
    model.finalize()


def test_model_py_refuses_an_engine_it_does_not_know(
    exported: tuple[nn.Module, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = exported
    model = load_model_py(monkeypatch).TritonPythonModel()
    with pytest.raises(ValueError, match="openvino"):
        model.initialize(triton_args(path, {"engine": "tensorflow"}))
