"""Triton model repository: render `config.pbtxt`, lay out `<repo>/<model>/1/`, read what is there.

Configs are built as `ModelConfig` protobuf messages (tritonclient ships Triton's schema) and printed
in text format, so every generated file is valid by construction and parses back the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Literal

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from .catalog import Engine
from .errors import RepositoryError

#: python: model.py in Triton's Python backend (any Triton); onnxruntime: Triton's native backend
#: (NVIDIA's images only); deploylab_ort: deploylab's native backend for the pip Triton, on the CPU or,
#: with the onnxruntime-gpu wheel (`pip install deploylab[gpu]`), CUDA (services/runtime/native).
Backend = Literal["python", "onnxruntime", "deploylab_ort"]
BACKENDS: tuple[Backend, ...] = ("python", "onnxruntime", "deploylab_ort")
#: The backends that run ONNX Runtime's TensorRT provider for `ServingConfig.tensorrt`.
TENSORRT_BACKENDS: tuple[Backend, ...] = ("onnxruntime", "deploylab_ort")
InstanceKind = Literal["cpu", "gpu"]
#: What the model's `input` tensor carries: fp32, pixels already normalised (mean/std) by the client; or
#: uint8, the resized and cropped pixels (0-255), cast and normalised inside the exported graph, so every
#: hop (client → gateway → Triton) moves a quarter of the bytes.
InputDtype = Literal["fp32", "uint8"]
INPUT_DTYPES: tuple[InputDtype, ...] = ("fp32", "uint8")
#: The KServe v2 / Triton datatype of each input dtype, and back: the one table every client reads.
V2_DATATYPES: dict[InputDtype, str] = {"fp32": "FP32", "uint8": "UINT8"}
#: numpy's name for each v2 datatype an input may have (little-endian, as the binary extension sends).
NUMPY_DTYPES: dict[str, str] = {"FP32": "<f4", "UINT8": "u1"}

#: Tensor names shared by the exporter, the Triton config, the Python backend and every client.
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
MODEL_VERSION = "1"
ONNX_FILENAME = "model.onnx"
PYTHON_MODEL_FILENAME = "model.py"
CONFIG_FILENAME = "config.pbtxt"


@dataclass(frozen=True)
class ServingConfig:
    """How Triton serves one model: batching, instances and engine threads.

    Defaults are the best measured on 2 CPU cores: two single-threaded instances whose
    `execute()` stacks every queued request into one batch beat one two-threaded instance.
    """

    backend: Backend = "python"
    max_batch_size: int = 8
    dynamic_batching: bool = True
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    # Queue policy, off by default. Triton's batcher forms the next batch while the instances are busy
    # ("prefetching") only when the queue has no policy; with one, an instance that finishes waits for
    # the next request *arrival* to be handed work: mobilenet_v3_large, 2 cores, 64 clients, instances
    # idle 11-18 % of the time with 150 ms of queue, 0.89 of in-process instead of 0.94 (and with one
    # instance, 500 ms stalls; docs/benchmarks.md).
    max_queue_size: int = 0  # > 0: past it Triton rejects instead of queueing
    # > 0: queued requests time out after this, and a request's own timeout (the gateway sends its
    # deadline) is honoured, so Triton drops what the gateway already answered 504 for.
    default_queue_timeout_us: int = 0
    instance_count: int = 2
    instance_kind: InstanceKind = "cpu"
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    # GPU instances of the onnxruntime or deploylab_ort backend: ONNX Runtime's TensorRT provider in fp16
    # (Triton's execution accelerator, or deploylab_ort's `execution_provider: tensorrt`)
    tensorrt: bool = False
    # Python backend only: each instance stages its next batch while its engine thread runs one
    # (services/modelzoo/triton_python_model.py, `_Pipeline`); half the instances for the same throughput.
    pipeline: bool = False
    # What the Python backend's model.py runs the ONNX file with; the exporter sets it from the variant
    # (`openvino`, `int8_openvino`). OpenVINO reads the same thread count as ONNX Runtime.
    engine: Engine = "onnxruntime"
    # The input tensor's dtype. Unlike the rest of this config it changes the ONNX file (uint8: the
    # normalisation is part of the graph), so the exporter's fingerprint holds it.
    input_dtype: InputDtype = "fp32"
    warmup: bool = True
    extra_parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> ServingConfig:
        """The config as a manifest records it (JSON: lists for tuples; unknown keys from other versions
        ignored); ValueError when it does not read back."""
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in known}
        try:
            return cls(**values)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    @property
    def queue_policy(self) -> bool:
        """Whether config.pbtxt carries a queue policy (and so Triton's batcher does not prefetch)."""
        return self.max_queue_size > 0 or self.default_queue_timeout_us > 0

    def __post_init__(self) -> None:
        if self.max_batch_size < 0:
            raise ValueError("max_batch_size must be >= 0 (0 disables batching)")
        if self.instance_count < 1:
            raise ValueError("instance_count must be >= 1")
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ValueError("thread counts must be >= 0 (0 lets the engine decide)")
        if self.max_queue_delay_us < 0 or self.max_queue_size < 0 or self.default_queue_timeout_us < 0:
            raise ValueError("max_queue_delay_us, max_queue_size and default_queue_timeout_us must be >= 0")
        too_big = [b for b in self.preferred_batch_sizes if b < 1 or b > self.max_batch_size]
        if too_big:
            raise ValueError(f"preferred batch sizes {too_big} outside 1..max_batch_size")
        if self.tensorrt and (self.backend not in TENSORRT_BACKENDS or self.instance_kind != "gpu"):
            raise ValueError("tensorrt needs backend onnxruntime or deploylab_ort and instance kind 'gpu'")
        if self.input_dtype not in INPUT_DTYPES:
            choices = ", ".join(INPUT_DTYPES)
            raise ValueError(f"input_dtype must be one of {choices}, got {self.input_dtype!r}")
        if self.pipeline and self.backend != "python":
            raise ValueError("pipeline needs backend 'python' (it is how deploylab's model.py runs batches)")
        if self.engine != "onnxruntime":
            if self.backend != "python" or self.instance_kind != "cpu":
                raise ValueError(
                    f"engine {self.engine} runs in backend 'python' on CPU instances only "
                    "(deploylab's model.py drives OpenVINO's CPU plugin)"
                )
            if "engine" in self.extra_parameters:
                other = self.extra_parameters["engine"]
                raise ValueError(f"engine {self.engine} and extra parameter engine={other!r}: name one")


def tensor_dims(shape: tuple[int, ...], max_batch_size: int) -> list[int]:
    """Triton `dims` for a tensor whose first axis is the batch.

    The one place that owns Triton's rule: with `max_batch_size > 0` the batch axis is implicit and
    omitted from `dims`; with 0 it is spelled out as -1 (variable). The exporter always marks axis 0
    dynamic, so both cases line up with the ONNX graph.
    """
    rest = list(shape[1:])
    return rest if max_batch_size > 0 else [-1, *rest]


def render_triton_config(model_name: str, input_size: int, num_classes: int, serving: ServingConfig) -> str:
    """The text of `config.pbtxt` for one exported model."""
    config = build_model_config(model_name, input_size, num_classes, serving)
    return text_format.MessageToString(config)


def build_model_config(
    model_name: str, input_size: int, num_classes: int, serving: ServingConfig
) -> mc.ModelConfig:
    """`config.pbtxt` as a ModelConfig message (render with `text_format`)."""
    config = mc.ModelConfig(name=model_name, backend=serving.backend)
    config.max_batch_size = serving.max_batch_size
    input_type = input_data_type(serving.input_dtype)
    config.input.add(
        name=INPUT_NAME,
        data_type=input_type,
        dims=tensor_dims((-1, 3, input_size, input_size), serving.max_batch_size),
    )
    config.output.add(
        name=OUTPUT_NAME,
        data_type=mc.TYPE_FP32,
        dims=tensor_dims((-1, num_classes), serving.max_batch_size),
    )
    kind = (
        mc.ModelInstanceGroup.KIND_GPU if serving.instance_kind == "gpu" else mc.ModelInstanceGroup.KIND_CPU
    )
    config.instance_group.add(count=serving.instance_count, kind=kind)
    if serving.dynamic_batching and serving.max_batch_size > 0:
        config.dynamic_batching.max_queue_delay_microseconds = serving.max_queue_delay_us
        config.dynamic_batching.preferred_batch_size.extend(serving.preferred_batch_sizes)
        if serving.queue_policy:
            # Triton honours a request's own timeout only when the default is non-zero; then one the
            # client has given up on is rejected from the queue instead of being computed for nobody.
            policy = config.dynamic_batching.default_queue_policy
            policy.timeout_action = mc.ModelQueuePolicy.REJECT
            policy.allow_timeout_override = serving.default_queue_timeout_us > 0
            policy.max_queue_size = serving.max_queue_size
            policy.default_timeout_microseconds = serving.default_queue_timeout_us
    # Same parameter names as Triton's native onnxruntime backend, so both backends read one vocabulary.
    native_tensorrt = serving.tensorrt and serving.backend == "deploylab_ort"
    parameters = {
        "intra_op_thread_count": str(serving.intra_op_threads),
        "inter_op_thread_count": str(serving.inter_op_threads),
        **({"pipeline": "1"} if serving.pipeline else {}),
        **({"engine": serving.engine} if serving.engine != "onnxruntime" else {}),
        **({"execution_provider": "tensorrt"} if native_tensorrt else {}),
        **serving.extra_parameters,
    }
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    if serving.tensorrt and serving.backend == "onnxruntime":
        accel = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        accel.parameters["precision_mode"] = "FP16"
    if serving.warmup:
        warmup = config.model_warmup.add(name="random_batch_1", batch_size=1)
        warmup.inputs[INPUT_NAME].data_type = input_type
        warmup.inputs[INPUT_NAME].dims.extend([3, input_size, input_size])
        warmup.inputs[INPUT_NAME].random_data = True
    return config


def input_data_type(input_dtype: InputDtype) -> int:
    """config.pbtxt's `data_type` for an input dtype (`TYPE_FP32`, `TYPE_UINT8`)."""
    return int(mc.DataType.Value(f"TYPE_{V2_DATATYPES[input_dtype]}"))


def parse_triton_config(text: str) -> mc.ModelConfig:
    """Parse `config.pbtxt` text with Triton's own schema (raises on anything Triton would reject)."""
    return text_format.Parse(text, mc.ModelConfig())


def model_dir(repository: Path, model_name: str) -> Path:
    return repository / model_name


def onnx_path(repository: Path, model_name: str) -> Path:
    return repository / model_name / MODEL_VERSION / ONNX_FILENAME


def ensure_writable(repository: Path) -> None:
    """Create the repository directory or raise a one-line RepositoryError saying why not."""
    if repository.exists() and not repository.is_dir():
        raise RepositoryError(f"model repository {repository} exists and is not a directory")
    try:
        repository.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepositoryError(f"cannot create model repository {repository}: {exc.strerror}") from None
    if not os.access(repository, os.W_OK | os.X_OK):
        raise RepositoryError(f"model repository {repository} is not writable")


def write_model_files(
    repository: Path,
    model_name: str,
    input_size: int,
    num_classes: int,
    serving: ServingConfig,
) -> Path:
    """Write config.pbtxt (and model.py for the python backend); return the model directory.

    The ONNX file is placed by the exporter; a python-backend model gets the ONNX Runtime wrapper,
    an onnxruntime-backend model must not have a stray model.py (Triton would ignore it, users would not).
    """
    directory = model_dir(repository, model_name)
    version = directory / MODEL_VERSION
    version.mkdir(parents=True, exist_ok=True)
    config_text = render_triton_config(model_name, input_size, num_classes, serving)
    _atomic_write(directory / CONFIG_FILENAME, config_text)
    python_model = version / PYTHON_MODEL_FILENAME
    if serving.backend == "python":
        _atomic_write(python_model, _python_model_source())
    elif python_model.exists():
        python_model.unlink()
    return directory


def refresh_python_model(repository: Path, model_name: str) -> bool:
    """Rewrite a Python-backend model's `model.py` when this deploylab ships a different one; True if so.

    The file is copied into the repository at export, so a fix to it (say, a default engine option)
    would otherwise reach an exported model only with `--force`. A model without one (onnxruntime
    backend) is left alone.
    """
    python_model = model_dir(repository, model_name) / MODEL_VERSION / PYTHON_MODEL_FILENAME
    if not python_model.is_file():
        return False
    current = _python_model_source()
    if python_model.read_text() == current:
        return False
    _atomic_write(python_model, current)
    return True


def _python_model_source() -> str:
    return resources.files("deploylab.services.modelzoo").joinpath("triton_python_model.py").read_text()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity / container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_cpu_threads(instances: int) -> int:
    """ONNX Runtime threads per instance so that all instances together use every core once."""
    return max(1, available_cores() // max(1, instances))


#: Compute per image (GMACs) from which a CPU model is served, by default, as one pipelined instance
#: with every core where two instances would get one core each. Measured on 2 cores, interleaved, over
#: shared memory (benchmarks/records/latency-layout-2026-12-06.md): resnet18 (1.8 GMACs) and resnet50
#: (4.1) answer a lone request in 0.55-0.62x the time of two single-thread instances at 0.99-1.03x their
#: saturation throughput; mobilenet_v3_large (0.22), whose per-request serving work is a larger share,
#: keeps 0.87x of it that way and stays on two instances.
WIDE_LAYOUT_MIN_GMACS = 1.0


@dataclass(frozen=True)
class InstanceLayout:
    """Instances × ONNX Runtime threads per instance, pipelined or not: `1x2p` is one pipelined
    two-thread instance."""

    instances: int
    threads: int
    pipeline: bool = False

    @classmethod
    def parse(cls, text: str) -> InstanceLayout:
        match = re.fullmatch(r"(\d+)x(\d+)(p?)", text.strip())
        if not match or int(match[1]) < 1 or int(match[2]) < 1:
            raise ValueError(f"a layout is INSTANCESxTHREADS with an optional p (pipelined), got {text!r}")
        return cls(int(match[1]), int(match[2]), bool(match[3]))

    @property
    def label(self) -> str:
        return f"{self.instances}x{self.threads}{'p' if self.pipeline else ''}"

    def on(self, serving: ServingConfig) -> ServingConfig:
        """`serving` laid out this way."""
        return replace(
            serving, instance_count=self.instances, intra_op_threads=self.threads, pipeline=self.pipeline
        )


def default_layout(gmacs: float | None) -> InstanceLayout:
    """The layout a CPU model gets unless told: every core used once, and a lone request on all of
    them where that costs no throughput (`WIDE_LAYOUT_MIN_GMACS`; None: compute unknown, split)."""
    count = ServingConfig.instance_count
    cores = available_cores()
    if gmacs is not None and gmacs >= WIDE_LAYOUT_MIN_GMACS and 1 < cores < 2 * count:
        return InstanceLayout(1, cores, pipeline=True)
    return InstanceLayout(count, default_cpu_threads(count))
