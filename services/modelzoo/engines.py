"""An exported ONNX file run by a serving engine, configured the way deploylab's Triton model runs it.

The parity check, the int8 and fp16 fidelity measurements and the in-process baselines judge what
Triton serves, so they open the file as `triton_python_model.py` does (that file imports nothing from
deploylab and repeats these settings): ONNX Runtime with sequential execution and every graph
optimization, on the CPU or (GPU instances) its CUDA provider, or OpenVINO's CPU plugin with
`openvino_cpu_config`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .catalog import Engine
from .errors import ZooError

#: An NCHW float32 batch in, logits out. One caller at a time: an OpenVINO runner owns one request.
Runner = Callable[[np.ndarray], np.ndarray]

#: Where ONNX Runtime runs a file: its CPU provider, or its CUDA provider on GPU 0 (as model.py runs a
#: GPU instance, the CPU provider taking the nodes CUDA lacks).
OrtDevice = Literal["cpu", "cuda"]

#: Engine names as messages print them.
ENGINE_LABELS: dict[str, str] = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}

CUDA_PROVIDER = "CUDAExecutionProvider"


def openvino_cpu_config(threads: int) -> dict[str, Any]:
    """OpenVINO CPU plugin properties for one engine of `threads` threads (0: the plugin decides).

    - `PERFORMANCE_HINT` LATENCY: one stream. An engine runs one batch at a time; Triton's instances
      (or the in-process sessions) are the parallelism, and THROUGHPUT's extra streams would need
      several requests in flight on one compiled model.
    - `INFERENCE_PRECISION_HINT` f32: on CPUs with bf16 (AVX512-BF16, AMX) the plugin otherwise runs
      an fp32 model in bf16 (ResNet-50: |Δ| 4e-3 of the logit scale against ONNX Runtime, where f32
      gives 1e-6). The variant says fp32; it runs in fp32.
    - `ENABLE_CPU_PINNING` off: each engine pins its threads to cores chosen without knowing about the
      others, so two single-thread engines shared one core (ResNet-50 int8, 2 cores, batch 8: 219
      img/s for two engines, as for one; 421 img/s unpinned).
    """
    return {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "ENABLE_CPU_PINNING": False,
    }


def open_onnx(path: Path, engine: Engine, threads: int = 0, device: OrtDevice = "cpu") -> Runner:
    """A runner of the ONNX file on `engine` with `threads` intra-op threads (0: the engine decides),
    on `device` (ONNX Runtime only: OpenVINO runs on the CPU)."""
    if engine == "onnxruntime":
        return onnxruntime_runner(path, threads, device)
    if engine == "openvino":
        if device != "cpu":
            raise ValueError(f"OpenVINO runs deploylab's models on the CPU only, not on {device}")
        return openvino_runner(path, threads)
    raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINE_LABELS)}")


def onnxruntime_has_cuda() -> bool:
    """Whether the installed ONNX Runtime offers its CUDA provider (the onnxruntime-gpu wheel)."""
    import onnxruntime as ort

    return CUDA_PROVIDER in ort.get_available_providers()


def onnxruntime_runner(path: Path, threads: int = 0, device: OrtDevice = "cpu") -> Runner:
    """ONNX Runtime, sequential, every graph optimization (as model.py runs it), on the CPU or CUDA.

    On `cuda` the session must have started its CUDA provider: ONNX Runtime would otherwise fall back
    to the CPU quietly, and a number measured there would be passed off as the GPU's.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers: list[Any] = ["CPUExecutionProvider"]
    if device == "cuda":
        if not onnxruntime_has_cuda():
            raise ZooError(
                f"ONNX Runtime {ort.__version__} has no CUDA provider (install deploylab[gpu]); "
                f"it offers {', '.join(ort.get_available_providers())}"
            )
        providers = [(CUDA_PROVIDER, {"device_id": 0}), *providers]
    session = ort.InferenceSession(str(path), options, providers=providers)
    if device == "cuda" and session.get_providers()[0] != CUDA_PROVIDER:
        raise ZooError(f"ONNX Runtime could not start its CUDA provider for {path} (no usable GPU)")
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]  # type: ignore[no-any-return]

    return run


def openvino_runner(path: Path, threads: int = 0) -> Runner:
    """OpenVINO's CPU plugin on the ONNX file (dynamic batch), with `openvino_cpu_config(threads)`."""
    compiled = _openvino_core().compile_model(str(path), "CPU", openvino_cpu_config(threads))
    request = compiled.create_infer_request()

    def run(batch: np.ndarray) -> np.ndarray:
        # The batch is only read during the synchronous call, so OpenVINO may use it in place.
        return request.infer({0: batch}, share_inputs=True)[0]  # type: ignore[no-any-return]

    return run


@cache
def _openvino_core() -> Any:
    import openvino as ov

    return ov.Core()
