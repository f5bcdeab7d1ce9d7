"""config.pbtxt generation: every config parses with Triton's own protobuf schema and says what we asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploylab.services.modelzoo.errors import RepositoryError
from deploylab.services.modelzoo.repository import (
    INPUT_NAME,
    OUTPUT_NAME,
    ServingConfig,
    ensure_writable,
    parse_triton_config,
    render_triton_config,
    tensor_dims,
    write_model_files,
)
from tritonclient.grpc import model_config_pb2 as mc

CONFIGS = [
    ServingConfig(),
    ServingConfig(
        max_batch_size=32,
        preferred_batch_sizes=(8, 16),
        max_queue_delay_us=500,
        instance_count=4,
        intra_op_threads=2,
        inter_op_threads=1,
    ),
    ServingConfig(backend="onnxruntime", instance_kind="gpu", max_batch_size=64, tensorrt=True),
    ServingConfig(max_batch_size=0, dynamic_batching=False, warmup=False),
]


@pytest.mark.parametrize("serving", CONFIGS, ids=lambda c: f"{c.backend}-mb{c.max_batch_size}")
def test_rendered_config_parses_and_round_trips(serving: ServingConfig) -> None:
    text = render_triton_config("m", 224, 1000, serving)
    config = parse_triton_config(text)
    assert config.name == "m"
    assert config.backend == serving.backend
    assert config.max_batch_size == serving.max_batch_size
    assert config.input[0].name == INPUT_NAME and config.input[0].data_type == mc.TYPE_FP32
    assert config.output[0].name == OUTPUT_NAME
    assert config.instance_group[0].count == serving.instance_count
    expected_kind = (
        mc.ModelInstanceGroup.KIND_GPU if serving.instance_kind == "gpu" else (mc.ModelInstanceGroup.KIND_CPU)
    )
    assert config.instance_group[0].kind == expected_kind
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["intra_op_thread_count"] == str(serving.intra_op_threads)
    assert params["inter_op_thread_count"] == str(serving.inter_op_threads)


def test_a_uint8_input_config_declares_uint8_for_the_input_and_its_warmup_only() -> None:
    config = parse_triton_config(render_triton_config("m", 224, 1000, ServingConfig(input_dtype="uint8")))
    assert config.input[0].data_type == mc.TYPE_UINT8
    assert config.model_warmup[0].inputs[INPUT_NAME].data_type == mc.TYPE_UINT8
    assert config.output[0].data_type == mc.TYPE_FP32


def test_the_input_dtype_reads_back_from_a_manifest_record_and_defaults_to_fp32() -> None:
    assert ServingConfig.from_record({"input_dtype": "uint8"}).input_dtype == "uint8"
    assert ServingConfig.from_record({"backend": "python"}).input_dtype == "fp32"  # older manifests
    with pytest.raises(ValueError, match="input_dtype must be one of fp32, uint8"):
        ServingConfig(input_dtype="fp16")  # type: ignore[arg-type]
    native = parse_triton_config(
        render_triton_config("m", 224, 1000, ServingConfig(backend="deploylab_ort", input_dtype="uint8"))
    )
    assert (native.backend, native.input[0].data_type) == ("deploylab_ort", mc.TYPE_UINT8)


def test_batched_config_omits_batch_dim_and_sets_dynamic_batching() -> None:
    serving = ServingConfig(max_batch_size=16, preferred_batch_sizes=(4, 8), max_queue_delay_us=100)
    config = parse_triton_config(render_triton_config("m", 224, 1000, serving))
    assert list(config.input[0].dims) == [3, 224, 224]
    assert list(config.output[0].dims) == [1000]
    assert config.HasField("dynamic_batching")
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.model_warmup[0].batch_size == 1
    # No queue policy by default: with one, Triton's batcher does not form batches ahead.
    assert not config.dynamic_batching.HasField("default_queue_policy")


def test_a_queue_timeout_writes_a_policy_that_honours_request_timeouts() -> None:
    def policy_of(serving: ServingConfig) -> mc.ModelQueuePolicy:
        config = parse_triton_config(render_triton_config("m", 224, 1000, serving))
        return config.dynamic_batching.default_queue_policy

    policy = policy_of(ServingConfig(default_queue_timeout_us=5_000_000))
    assert policy.allow_timeout_override and policy.timeout_action == mc.ModelQueuePolicy.REJECT
    # Triton ignores a request's own timeout unless the default is non-zero.
    assert policy.default_timeout_microseconds == 5_000_000
    policy = policy_of(ServingConfig(max_queue_size=64))
    assert policy.max_queue_size == 64 and not policy.allow_timeout_override


def test_unbatched_config_spells_out_a_variable_batch_dim() -> None:
    config = parse_triton_config(render_triton_config("m", 224, 1000, CONFIGS[3]))
    assert list(config.input[0].dims) == [-1, 3, 224, 224]
    assert not config.HasField("dynamic_batching")


def test_tensor_dims_rule() -> None:
    assert tensor_dims((-1, 3, 224, 224), 8) == [3, 224, 224]
    assert tensor_dims((-1, 1000), 0) == [-1, 1000]


def test_tensorrt_accelerator_rendered_for_gpu_onnxruntime() -> None:
    config = parse_triton_config(render_triton_config("m", 224, 1000, CONFIGS[2]))
    accel = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert [a.name for a in accel] == ["tensorrt"]
    assert "execution_provider" not in config.parameters


def test_tensorrt_on_deploylab_ort_is_its_execution_provider_not_an_accelerator() -> None:
    serving = ServingConfig(backend="deploylab_ort", instance_kind="gpu", max_batch_size=64, tensorrt=True)
    config = parse_triton_config(render_triton_config("m", 224, 1000, serving))
    assert config.parameters["execution_provider"].string_value == "tensorrt"
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator
    with pytest.raises(ValueError, match="tensorrt needs backend onnxruntime or deploylab_ort"):
        ServingConfig(backend="python", instance_kind="gpu", tensorrt=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_batch_size": -1},
        {"instance_count": 0},
        {"preferred_batch_sizes": (16,), "max_batch_size": 8},
        {"tensorrt": True},
        {"max_queue_delay_us": -5},
        {"pipeline": True, "backend": "onnxruntime"},
        {"engine": "openvino", "backend": "deploylab_ort"},
        {"engine": "openvino", "backend": "onnxruntime"},
        {"engine": "openvino", "instance_kind": "gpu"},
        {"engine": "openvino", "extra_parameters": {"engine": "torch"}},
    ],
)
def test_nonsense_serving_configs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ServingConfig(**kwargs)  # type: ignore[arg-type]


def test_pipeline_is_a_model_parameter_only_when_asked_for() -> None:
    def parameters(serving: ServingConfig) -> dict[str, str]:
        config = parse_triton_config(render_triton_config("m", 224, 1000, serving))
        return {k: v.string_value for k, v in config.parameters.items()}

    assert "pipeline" not in parameters(ServingConfig())
    assert parameters(ServingConfig(pipeline=True))["pipeline"] == "1"


def test_the_engine_is_a_model_parameter_only_when_it_is_not_onnxruntime() -> None:
    def parameters(serving: ServingConfig) -> dict[str, str]:
        config = parse_triton_config(render_triton_config("m", 224, 1000, serving))
        return {k: v.string_value for k, v in config.parameters.items()}

    assert "engine" not in parameters(ServingConfig())
    openvino = parameters(ServingConfig(engine="openvino", intra_op_threads=2, pipeline=True))
    # OpenVINO reads the thread count ONNX Runtime reads, and pipelines like it.
    assert openvino.items() >= {"engine": "openvino", "intra_op_thread_count": "2", "pipeline": "1"}.items()


def test_python_backend_gets_model_py_and_onnxruntime_backend_does_not(tmp_path: Path) -> None:
    directory = write_model_files(tmp_path, "m", 224, 1000, ServingConfig())
    assert (directory / "1" / "model.py").read_text().startswith('"""Triton Python-backend model')
    write_model_files(tmp_path, "m", 224, 1000, ServingConfig(backend="onnxruntime"))
    assert not (directory / "1" / "model.py").exists()
    assert 'backend: "onnxruntime"' in (directory / "config.pbtxt").read_text()


def test_repository_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RepositoryError, match="cannot create model repository"):
        ensure_writable(blocker / "repo")
    with pytest.raises(RepositoryError, match="not a directory"):
        ensure_writable(blocker)
