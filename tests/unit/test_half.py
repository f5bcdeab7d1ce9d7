"""fp16 deployments: float32 kept at the edges, fidelity measured, CPU instances refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from deploylab.services.modelzoo import half
from deploylab.services.modelzoo.catalog import Preprocessing, get_spec
from deploylab.services.modelzoo.engines import open_onnx
from deploylab.services.modelzoo.errors import ZooError
from deploylab.services.modelzoo.export import ExportOptions, export_model, export_onnx
from deploylab.services.modelzoo.half import convert_fp16
from deploylab.services.modelzoo.parity import random_batch
from deploylab.services.modelzoo.quantize import measure_fidelity
from deploylab.services.modelzoo.repository import ServingConfig, onnx_path, parse_triton_config
from tritonclient.grpc import model_config_pb2 as mc

from tests.unit.test_engines import SIDE, tiny_network

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small network's fp32 ONNX export and its fp16 conversion."""
    directory = tmp_path_factory.mktemp("half")
    fp32, fp16 = directory / "fp32.onnx", directory / "fp16.onnx"
    export_onnx(tiny_network(), fp32, SIDE)
    convert_fp16(fp32, fp16)
    return fp32, fp16


def elem_types(values: list[onnx.ValueInfoProto]) -> list[int]:
    return [v.type.tensor_type.elem_type for v in values]


def test_fp16_file_holds_float16_weights_behind_float32_input_and_output(files: tuple[Path, Path]) -> None:
    fp32, fp16 = (onnx.load(str(f)).graph for f in files)
    assert [i.name for i in fp16.input] == [i.name for i in fp32.input]
    assert [o.name for o in fp16.output] == [o.name for o in fp32.output]
    assert elem_types(list(fp16.input)) == elem_types(list(fp16.output)) == [FLOAT]
    assert fp16.input[0].type.tensor_type.shape.dim[0].dim_param  # the batch axis stays dynamic
    float_weights = [t for t in fp16.initializer if t.data_type in (FLOAT, FLOAT16)]
    assert float_weights and all(t.data_type == FLOAT16 for t in float_weights)
    assert {n.op_type for n in fp16.node} >= {"Cast", "Conv"}


def test_fp16_file_answers_in_float32_within_float16_rounding(files: tuple[Path, Path]) -> None:
    fp32, fp16 = (open_onnx(f, "onnxruntime", threads=1) for f in files)
    for batch_size in (1, 3):
        batch = random_batch(batch_size, SIDE, seed=batch_size)
        want, got = fp32(batch), fp16(batch)
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()
        assert (got.argmax(1) == want.argmax(1)).all()


def test_fp16_fidelity_is_measured_by_the_int8_measurement(files: tuple[Path, Path]) -> None:
    fp32, fp16 = files
    fidelity = measure_fidelity(fp32, fp16, Preprocessing(resize=36, crop=SIDE), "onnxruntime", "cpu")
    assert set(fidelity) == {"calibration", "held_out"}
    for measured in fidelity.values():
        assert measured["images"] > 0
        assert measured["top1_agreement"] == 1.0
        assert measured["max_logit_error"] < 1e-2  # rounding, far below int8's


@pytest.mark.parametrize(("has_cuda", "device"), [(True, "cuda"), (False, "cpu")])
def test_fp16_fidelity_runs_on_cuda_only_where_onnxruntime_has_it(
    monkeypatch: pytest.MonkeyPatch, has_cuda: bool, device: str
) -> None:
    monkeypatch.setattr(half, "onnxruntime_has_cuda", lambda: has_cuda)
    assert half.fidelity_device() == device


def test_every_fp16_variant_needs_gpu_instances_and_nothing_else_does() -> None:
    spec = get_spec("repvgg_a0")
    assert spec.variant("fp16").needs_gpu and spec.variant("fp16").device == "gpu"
    assert [v.name for v in spec.variants if v.needs_gpu] == ["fp16"]


def test_exporting_fp16_for_cpu_instances_is_refused_in_one_line_before_building(tmp_path: Path) -> None:
    with pytest.raises(ZooError) as info:
        export_model(get_spec("mobilenet_v3_small"), "fp16", tmp_path, ExportOptions())
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("mobilenet_v3_small_fp16: fp16 is served on GPU instances only")
    assert "--kind gpu" in message and "CPU provider runs fp16 slower than fp32" in message
    assert not (tmp_path / "mobilenet_v3_small_fp16").exists()


def test_an_fp16_export_for_gpu_instances_records_its_fidelity_and_serves_float32(tmp_path: Path) -> None:
    spec = get_spec("mobilenet_v3_small")
    gpu = ExportOptions(serving=ServingConfig(instance_kind="gpu"))
    outcome = export_model(spec, "fp16", tmp_path, gpu)
    manifest = outcome.manifest
    assert (outcome.status, manifest.model, manifest.precision) == (
        "exported",
        spec.triton_name("fp16"),
        "fp16",
    )
    assert manifest.params == spec.variant("fp16").expected_params
    record = manifest.quantization
    assert record is not None and record["converter"] == half.CONVERSION["converter"]
    assert record["keep_io_types"] is True and record["fidelity_device"] in ("cpu", "cuda")
    held_out = record["fidelity_vs_fp32"]["held_out"]  # type: ignore[index]
    assert held_out["images"] > 0 and held_out["top1_agreement"] >= 0.9

    config = parse_triton_config((tmp_path / manifest.model / "config.pbtxt").read_text())
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert config.input[0].data_type == config.output[0].data_type == mc.TYPE_FP32
    graph = onnx.load(str(onnx_path(tmp_path, manifest.model)), load_external_data=False).graph
    assert elem_types(list(graph.input)) == elem_types(list(graph.output)) == [FLOAT]
    assert any(t.data_type == FLOAT16 for t in graph.initializer)
    # Unchanged: skipped, like every other variant.
    assert export_model(spec, "fp16", tmp_path, gpu).status == "skipped"
