"""Export: manifest facts, parity enforcement, skip/reconfigure/force behaviour."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
from deploylab.services.modelzoo import quantize
from deploylab.services.modelzoo import repository as repository_module
from deploylab.services.modelzoo.build import build_model
from deploylab.services.modelzoo.catalog import get_spec
from deploylab.services.modelzoo.counted import COUNTED_GMACS
from deploylab.services.modelzoo.errors import ParityError, ZooError
from deploylab.services.modelzoo.export import (
    OPSET,
    ExportOptions,
    _same_file_export,
    default_serving,
    export_model,
)
from deploylab.services.modelzoo.manifest import read_manifest, read_repository
from deploylab.services.modelzoo.parity import ATOL, RTOL, Tolerance, check_parity
from deploylab.services.modelzoo.repository import (
    InstanceLayout,
    ServingConfig,
    default_cpu_threads,
    default_layout,
    onnx_path,
    parse_triton_config,
)


def test_every_exported_model_has_a_complete_manifest(model_repository: Path) -> None:
    manifests = read_repository(model_repository)
    assert set(manifests) == {"resnet18", "mobilenet_v3_small", "repvgg_a0_train", "repvgg_a0_deploy"}
    for name, manifest in manifests.items():
        spec = get_spec(manifest.catalog_name)
        assert manifest.params == spec.variant(manifest.variant).expected_params
        assert manifest.opset >= 17
        assert manifest.onnx_bytes == onnx_path(model_repository, name).stat().st_size
        assert len(manifest.onnx_sha256) == 64
        assert manifest.parity.batch_sizes == [1, 4]
        assert manifest.parity.rtol == RTOL
        assert manifest.parity.max_scaled_error < RTOL
        assert (manifest.parity.atol, manifest.parity.criterion) == (ATOL, Tolerance().describe())
        assert (
            manifest.versions["torch"] and manifest.versions["onnxruntime"] and manifest.versions["openvino"]
        )
        assert manifest.engine == "onnxruntime" and manifest.serving["engine"] == "onnxruntime"
        parse_triton_config((model_repository / name / "config.pbtxt").read_text())
    assert manifests["repvgg_a0_deploy"].parity.reparam_max_abs_error is not None
    assert manifests["repvgg_a0_deploy"].parity.reparam_max_abs_error < 1e-4


def test_onnx_has_a_dynamic_batch_axis_and_the_shared_tensor_names(model_repository: Path) -> None:
    graph = onnx.load(str(onnx_path(model_repository, "resnet18")), load_external_data=False).graph
    (inp,), (out,) = graph.input, graph.output
    assert (inp.name, out.name) == ("input", "logits")
    batch_dim = inp.type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [3, 224, 224]


def test_unchanged_export_is_skipped_and_serving_change_only_rewrites_config(
    model_repository: Path, tmp_path: Path
) -> None:
    shutil.copytree(model_repository / "mobilenet_v3_small", tmp_path / "mobilenet_v3_small")
    spec = get_spec("mobilenet_v3_small")
    assert export_model(spec, "default", tmp_path, ExportOptions()).status == "skipped"

    onnx_before = onnx_path(tmp_path, "mobilenet_v3_small").stat().st_mtime_ns
    changed = ExportOptions(serving=ServingConfig(max_batch_size=16, instance_count=1))
    outcome = export_model(spec, "default", tmp_path, changed)
    assert outcome.status == "reconfigured"
    config = parse_triton_config((tmp_path / "mobilenet_v3_small" / "config.pbtxt").read_text())
    assert config.max_batch_size == 16 and config.instance_group[0].count == 1
    assert onnx_path(tmp_path, "mobilenet_v3_small").stat().st_mtime_ns == onnx_before
    assert read_manifest(tmp_path / "mobilenet_v3_small").serving["max_batch_size"] == 16  # type: ignore[union-attr]

    forced = export_model(spec, "default", tmp_path, ExportOptions(serving=changed.serving, force=True))
    assert forced.status == "exported"


def test_weights_change_the_fingerprint_and_are_recorded(model_repository: Path, tmp_path: Path) -> None:
    import torch

    shutil.copytree(model_repository / "mobilenet_v3_small", tmp_path / "mobilenet_v3_small")
    weights = tmp_path / "w.pt"
    torch.save(build_model(get_spec("mobilenet_v3_small")).state_dict(), weights)
    outcome = export_model(
        get_spec("mobilenet_v3_small"), "default", tmp_path, ExportOptions(weights=weights)
    )
    assert outcome.status == "exported"
    manifest = json.loads((tmp_path / "mobilenet_v3_small" / "manifest.json").read_text())
    assert manifest["weights"]["path"] == str(weights)
    assert len(manifest["weights"]["sha256"]) == 64


def test_parity_check_fails_loudly_for_a_wrong_onnx_file(model_repository: Path) -> None:
    resnet = build_model(get_spec("resnet18"))
    with pytest.raises(ParityError, match="disagrees with torch"):
        check_parity(resnet, onnx_path(model_repository, "repvgg_a0_train"), 224)


def test_parity_catches_errors_hidden_in_tiny_logits(model_repository: Path) -> None:
    """Random-init MobileNet logits are ~1e-9: any absolute tolerance would pass a scaled head."""
    import torch

    model = build_model(get_spec("mobilenet_v3_small"))
    with torch.no_grad():
        model.classifier[3].weight.mul_(1.5)
    with pytest.raises(ParityError, match="worst logit"):
        check_parity(model, onnx_path(model_repository, "mobilenet_v3_small"), 224)


def test_a_default_export_lays_instances_out_by_compute_and_sets_no_queue_policy(
    model_repository: Path,
) -> None:
    serving = default_serving()
    assert (serving.instance_count, serving.intra_op_threads) == (2, default_cpu_threads(2))
    on_gpu = default_serving("resnet50", "gpu")  # the layouts were measured on CPU instances
    assert (on_gpu.instance_count, on_gpu.pipeline, on_gpu.instance_kind) == (2, False, "gpu")
    for name in ("mobilenet_v3_small", "resnet18"):
        config = parse_triton_config((model_repository / name / "config.pbtxt").read_text())
        layout = default_layout(COUNTED_GMACS[name])
        assert config.instance_group[0].count == layout.instances
        assert config.parameters["intra_op_thread_count"].string_value == str(layout.threads)
        assert (config.parameters["pipeline"].string_value == "1") == layout.pipeline
        # A queue policy would stop Triton's batcher from forming batches ahead (docs/benchmarks.md).
        assert not config.dynamic_batching.HasField("default_queue_policy")


@pytest.mark.parametrize(
    ("cores", "gmacs", "expected"),
    [
        (2, 4.09, InstanceLayout(1, 2, pipeline=True)),  # resnet50: a lone request on both cores
        (2, 1.0, InstanceLayout(1, 2, pipeline=True)),
        (2, 0.22, InstanceLayout(2, 1)),  # mobilenet_v3_large: serving work is too large a share
        (2, None, InstanceLayout(2, 1)),  # compute unknown (an int8 or OpenVINO variant): split
        (1, 4.09, InstanceLayout(2, 1)),
        (16, 4.09, InstanceLayout(2, 8)),  # each instance has several cores already
    ],
)
def test_the_default_layout_widens_for_heavy_models_where_instances_would_get_one_core(
    monkeypatch: pytest.MonkeyPatch, cores: int, gmacs: float | None, expected: InstanceLayout
) -> None:
    monkeypatch.setattr(repository_module, "available_cores", lambda: cores)
    assert default_layout(gmacs) == expected


def test_an_unchanged_model_gets_this_deploylabs_model_py(model_repository: Path, tmp_path: Path) -> None:
    shutil.copytree(model_repository / "mobilenet_v3_small", tmp_path / "mobilenet_v3_small")
    python_model = tmp_path / "mobilenet_v3_small" / "1" / "model.py"
    current = python_model.read_text()
    python_model.write_text(current + "\n# an older deploylab's copy\n")
    onnx_before = onnx_path(tmp_path, "mobilenet_v3_small").stat().st_mtime_ns
    spec = get_spec("mobilenet_v3_small")
    assert export_model(spec, "default", tmp_path, ExportOptions()).status == "reconfigured"
    assert python_model.read_text() == current
    assert onnx_path(tmp_path, "mobilenet_v3_small").stat().st_mtime_ns == onnx_before
    assert export_model(spec, "default", tmp_path, ExportOptions()).status == "skipped"


def test_an_openvino_variant_for_a_backend_that_cannot_run_it_is_refused_before_building(
    tmp_path: Path,
) -> None:
    native = ExportOptions(serving=ServingConfig(backend="deploylab_ort"))
    with pytest.raises(
        ZooError, match="mobilenet_v3_small_openvino: engine openvino runs in backend 'python'"
    ):
        export_model(get_spec("mobilenet_v3_small"), "openvino", tmp_path, native)
    assert not (tmp_path / "mobilenet_v3_small_openvino").exists()


# -- int8 and int8_openvino: one file, quantized once ---------------------------------------------------


@pytest.fixture(scope="module")
def int8_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding mobilenet_v3_small's int8 export."""
    repository = tmp_path_factory.mktemp("int8_repository")
    export_model(get_spec("mobilenet_v3_small"), "int8", repository, ExportOptions())
    return repository


def test_int8_openvino_reuses_an_up_to_date_int8_file_instead_of_quantizing_again(
    int8_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(int8_repository / "mobilenet_v3_small_int8", tmp_path / "mobilenet_v3_small_int8")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("quantized again although an up-to-date int8 file was there")

    monkeypatch.setattr(quantize, "quantize_int8", refuse)
    steps: list[str] = []
    outcome = export_model(
        get_spec("mobilenet_v3_small"),
        "int8_openvino",
        tmp_path,
        ExportOptions(),
        lambda _m, s: steps.append(s),
    )
    int8 = read_manifest(tmp_path / "mobilenet_v3_small_int8")
    assert int8 is not None and outcome.status == "exported"
    assert outcome.manifest.onnx_sha256 == int8.onnx_sha256
    assert outcome.manifest.onnx_fingerprint != int8.onnx_fingerprint  # each variant its own
    record = outcome.manifest.quantization
    assert record is not None and record["reused_from"] == "mobilenet_v3_small_int8"
    assert record["method"] == int8.quantization["method"]  # type: ignore[index]
    # The file is the same; its fidelity is measured again, on the engine that serves it here.
    assert (record["fidelity_engine"], outcome.manifest.engine) == ("openvino", "openvino")
    assert "reusing mobilenet_v3_small_int8's int8 file (same source model and settings)" in steps


def test_an_int8_export_from_other_settings_or_with_another_file_is_not_reused(
    int8_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = get_spec("mobilenet_v3_small")
    shutil.copytree(int8_repository / "mobilenet_v3_small_int8", tmp_path / "mobilenet_v3_small_int8")
    assert _same_file_export(spec, "int8_openvino", tmp_path, None, OPSET) == (
        "mobilenet_v3_small_int8",
        onnx_path(tmp_path, "mobilenet_v3_small_int8"),
    )
    assert _same_file_export(spec, "int8_openvino", tmp_path, None, OPSET - 1) is None  # another source
    assert _same_file_export(spec, "fp16", tmp_path, None, OPSET) is None  # no fp16 file to share

    with monkeypatch.context() as patched:
        patched.setattr(quantize, "QUANTIZATION", replace(quantize.QUANTIZATION, per_channel=False))
        assert _same_file_export(spec, "int8_openvino", tmp_path, None, OPSET) is None

    int8_file = onnx_path(tmp_path, "mobilenet_v3_small_int8")
    data = bytearray(int8_file.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    int8_file.write_bytes(bytes(data))
    assert _same_file_export(spec, "int8_openvino", tmp_path, None, OPSET) is None


def test_forcing_an_int8_export_quantizes_whatever_is_there(
    int8_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(int8_repository / "mobilenet_v3_small_int8", tmp_path / "mobilenet_v3_small_int8")
    calls: list[Path] = []
    real = quantize.quantize_int8

    def counted(fp32: Path, int8: Path, *args: object) -> None:
        calls.append(int8)
        real(fp32, int8, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(quantize, "quantize_int8", counted)
    outcome = export_model(
        get_spec("mobilenet_v3_small"), "int8_openvino", tmp_path, ExportOptions(force=True)
    )
    assert len(calls) == 1 and outcome.manifest.quantization is not None
    assert "reused_from" not in outcome.manifest.quantization


def test_a_uint8_input_is_a_new_export_whose_graph_normalises_the_pixels(
    model_repository: Path, tmp_path: Path
) -> None:
    import numpy as np
    import torch
    from deploylab.services.modelzoo.engines import onnxruntime_runner
    from deploylab.services.modelzoo.export import PixelInput, _onnx_fingerprint

    spec = get_spec("mobilenet_v3_small")
    fp32_fingerprint = _onnx_fingerprint(spec, "default", None, OPSET)
    assert _onnx_fingerprint(spec, "default", None, OPSET, "fp32") == fp32_fingerprint
    assert _onnx_fingerprint(spec, "default", None, OPSET, "uint8") != fp32_fingerprint

    shutil.copytree(model_repository / "mobilenet_v3_small", tmp_path / "mobilenet_v3_small")
    uint8 = ExportOptions(serving=replace(default_serving(), input_dtype="uint8"))
    outcome = export_model(spec, "default", tmp_path, uint8)
    assert outcome.status == "exported"  # not merely reconfigured: the ONNX file changes
    assert outcome.manifest.serving["input_dtype"] == "uint8"
    assert ServingConfig.from_record(outcome.manifest.serving).input_dtype == "uint8"
    graph = onnx.load(str(onnx_path(tmp_path, "mobilenet_v3_small"))).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert export_model(spec, "default", tmp_path, uint8).status == "skipped"

    # The graph's normalisation is the gateway's: the same logits as the fp32 export fed normalised pixels.
    pixels = np.random.default_rng(0).integers(0, 256, (2, 3, 224, 224), dtype=np.uint8)
    steps = spec.preprocessing
    normalised = (
        pixels.astype(np.float32) - np.float32(255) * np.asarray(steps.mean, np.float32)[:, None, None]
    ) * (np.float32(1) / (np.float32(255) * np.asarray(steps.std, np.float32)[:, None, None]))
    from_pixels = onnxruntime_runner(onnx_path(tmp_path, "mobilenet_v3_small"))(pixels)
    from_floats = onnxruntime_runner(onnx_path(model_repository, "mobilenet_v3_small"))(normalised)
    np.testing.assert_allclose(from_pixels, from_floats, rtol=1e-4, atol=1e-4 * np.abs(from_floats).max())
    wrapped = PixelInput(build_model(spec), steps.mean, steps.std).eval()
    with torch.inference_mode():
        reference = wrapped(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(from_pixels, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
