"""Triton Python-backend model: ONNX Runtime inside Triton, one session per model instance.

Copied verbatim to `<repo>/<model>/1/model.py` by the exporter; it runs in Triton's stub process, so
it imports nothing from deploylab. Thread counts and the execution provider come from the model's
`config.pbtxt` parameters (the same names Triton's native onnxruntime backend uses).

Why stacking matters: with dynamic batching Triton hands `execute()` several requests at once. Running
them one by one leaves the engine at batch 1 (measured 0.4x of in-process throughput); concatenating
them into one batch, running once and splitting the outputs is what makes server-side batching pay.

Engines (config parameter `engine`):
- `onnxruntime` (default): the exported `model.onnx`; CUDA/TensorRT providers on GPU instances.
- `openvino`: the same `model.onnx` (fp32, or the int8 variant's QDQ file) compiled by OpenVINO's CPU
  plugin, batch axis dynamic, with `intra_op_thread_count` as INFERENCE_NUM_THREADS. The other
  properties match `services/modelzoo/engines.py`'s (the exporter's parity check runs with them):
  one stream (LATENCY hint), fp32 kept fp32 on bf16-capable CPUs, no thread pinning.
- `torch`: for GPU hosts. Builds `torch_builder` (`torchvision:resnet50`, `timm:repvgg_a0`), loads the
  state_dict `model.pt` if present (weights_only), re-parameterizes when `torch_reparameterize` is 1,
  and runs fp16 + channels_last on the instance's GPU. With `torch_cuda_graphs` 1 it captures one
  CUDA graph per power-of-two batch size up to max_batch_size and pads each batch to the next one:
  launch overhead disappears, which is most of a small batch's time on a large GPU.

Input types: the batch reaches the engine in the datatype config.pbtxt declares (FP32, or UINT8 pixels
for a graph that normalises them itself), never cast here; the torch engine takes FP32 only.

With `pipeline` 1 (onnxruntime or openvino engine) an instance stages its next batch while its engine runs one
(`_Pipeline`): the throughput of two instances per core from one.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils


def _parameters(config: dict) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def _providers(available: list[str], kind: str, device_id: int, wanted: str) -> list:
    """CPU by default; CUDA (or TensorRT) when the instance is on a GPU and ORT was built with it."""
    if kind == "GPU" or wanted in {"cuda", "tensorrt"}:
        chain = []
        if wanted == "tensorrt" and "TensorrtExecutionProvider" in available:
            chain.append(("TensorrtExecutionProvider", {"device_id": device_id, "trt_fp16_enable": True}))
        if "CUDAExecutionProvider" in available:
            chain.append(("CUDAExecutionProvider", {"device_id": device_id}))
        if chain:
            return [*chain, "CPUExecutionProvider"]
        pb_utils.Logger.log_warn(
            f"GPU instance requested but ONNX Runtime offers only {available}; running on CPU"
        )
    return ["CPUExecutionProvider"]


def _split(logits: np.ndarray, sizes: list[int], output_name: str) -> list:
    """One batch's logits back into one Triton tensor per request (numpy views, no copy)."""
    outputs, offset = [], 0
    for size in sizes:
        outputs.append(pb_utils.Tensor(output_name, logits[offset : offset + size]))
        offset += size
    return outputs


def _error_responses(exc: Exception, count: int) -> list:
    """The same error answer for each of `count` requests: every request gets one, never a crash."""
    error = pb_utils.TritonError(f"inference failed: {type(exc).__name__}: {exc}")
    return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in range(count)]


class _OrtEngine:
    """ONNX Runtime session configured from the model's parameters."""

    def __init__(self, args: dict, params: dict[str, str], input_name: str, output_name: str) -> None:
        import onnxruntime as ort

        self.input_name = input_name
        self.output_name = output_name
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_thread_count", "1") or 0)
        options.inter_op_num_threads = int(params.get("inter_op_thread_count", "1") or 0)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        spinning = params.get("allow_spinning")
        if spinning not in {"0", "1"} and options.intra_op_num_threads != 1:
            # NOTE: ORT lets idle intra-op threads spin by default. In a stub sharing the cores with
            # Triton's threads, a spinning pool made ~500 ms stalls the rule (1 instance x 2 threads,
            # mobilenet_v3_small, 2 cores: 6-37 img/s, p99 504 ms; without spinning 120-278 img/s,
            # p99 5-15 ms). The stall itself is Triton's batcher, when a queue policy stops it batching
            # ahead, missing a single instance's return (its 500 ms timer, docs/benchmarks.md);
            # spinning starves the batcher thread into it.
            # `allow_spinning: "1"` brings spinning back.
            spinning = "0"
        if spinning in {"0", "1"}:
            options.add_session_config_entry("session.intra_op.allow_spinning", spinning)

        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        providers = _providers(
            ort.get_available_providers(),
            args.get("model_instance_kind", "CPU"),
            int(args.get("model_instance_device_id", "0") or 0),
            params.get("execution_provider", "auto"),
        )
        self.session = ort.InferenceSession(path, options, providers=providers)
        pb_utils.Logger.log_info(
            f"{args['model_name']}: ONNX Runtime {ort.__version__} providers={self.session.get_providers()} "
            f"intra_op={options.intra_op_num_threads} inter_op={options.inter_op_num_threads} "
            f"spinning={'off' if spinning == '0' else 'on'}"
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def infer(self, tensors: list, output_name: str) -> list:
        return _infer_stacked(self.run, tensors, output_name)


class _OpenVinoEngine:
    """OpenVINO's CPU plugin on the exported ONNX file, one infer request per instance."""

    def __init__(self, args: dict, params: dict[str, str]) -> None:
        import openvino as ov

        if args.get("model_instance_kind", "CPU") == "GPU":
            pb_utils.Logger.log_warn(f"{args['model_name']}: the openvino engine runs on the CPU plugin only")
        threads = int(params.get("intra_op_thread_count", "1") or 0)
        config = {
            "INFERENCE_NUM_THREADS": threads,
            # One stream: this instance runs one batch at a time; Triton's instances are the parallelism.
            "PERFORMANCE_HINT": "LATENCY",
            # The variant is fp32: without this, bf16-capable CPUs run it in bf16.
            "INFERENCE_PRECISION_HINT": "f32",
            # Pinned engines choose cores without knowing of each other: two single-thread ones shared
            # one core (measured in one process: the second added nothing).
            "ENABLE_CPU_PINNING": False,
        }
        self.config = config
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        compiled = ov.Core().compile_model(path, "CPU", config)
        self.request = compiled.create_infer_request()
        pb_utils.Logger.log_info(
            f"{args['model_name']}: OpenVINO {ov.__version__} CPU threads={threads or 'auto'} "
            f"hint=LATENCY precision=f32 pinning=off"
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        # The batch is read only during this synchronous call; the logits come back as a fresh copy,
        # so splitting them into views is safe while the next batch runs.
        return self.request.infer({0: batch}, share_inputs=True)[0]

    def infer(self, tensors: list, output_name: str) -> list:
        return _infer_stacked(self.run, tensors, output_name)


def _infer_stacked(run: Any, tensors: list, output_name: str) -> list:
    """Triton tensors in (one per request), one batched run, Triton tensors out (numpy views)."""
    arrays = [t.as_numpy() for t in tensors]
    # Triton has checked every request's datatype against config.pbtxt: the graph takes it as it comes.
    batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    return _split(run(batch), [a.shape[0] for a in arrays], output_name)


class _TorchEngine:
    """A torch model on the instance's device: fp16 + channels_last on CUDA, optional CUDA graphs."""

    def __init__(self, args: dict, params: dict[str, str], max_batch_size: int) -> None:
        # A tritonserver started GPU-blind (CUDA_VISIBLE_DEVICES="") can still hand this instance a GPU:
        # set before torch initialises CUDA in this stub process.
        if "torch_cuda_visible_devices" in params:
            os.environ["CUDA_VISIBLE_DEVICES"] = params["torch_cuda_visible_devices"]
        import torch

        self.torch = torch
        kind = args.get("model_instance_kind", "CPU")
        wanted = params.get("torch_device", "auto")
        use_cuda = torch.cuda.is_available() and (wanted == "cuda" or (wanted == "auto" and kind == "GPU"))
        device_id = int(args.get("model_instance_device_id", "0") or 0)
        self.device = torch.device(f"cuda:{device_id}" if use_cuda else "cpu")
        # On CPU these threads run the model; on a GPU they only copy and stack inputs, and more than
        # one per instance oversubscribes the host: measured 72 ms-4 s per multi-request batch with the
        # default (all cores) on a 16-core host under client load, vs ~5 ms for a single request.
        torch.set_num_threads(max(1, int(params.get("intra_op_thread_count", "1") or 1)))
        if wanted == "cuda" and not use_cuda:
            raise RuntimeError("torch_device is cuda but torch sees no GPU in this stub process")
        self.output_on_device = use_cuda and params.get("torch_output_device", "cpu") == "cuda"
        precision = params.get("torch_precision", "fp16" if use_cuda else "fp32")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.channels_last = params.get("torch_channels_last", "1") == "1"

        model = _build_torch_model(params, os.path.join(args["model_repository"], args["model_version"]))
        model = model.to(self.device, dtype=self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self.graphs: dict[int, tuple] = {}
        self.buckets: list[int] = []
        self.staging: Any = None  # fp32 NCHW device buffer: inputs cross PCIe as-is, convert on the GPU
        if use_cuda and params.get("torch_cuda_graphs", "0") == "1" and max_batch_size > 0:
            self._capture(max_batch_size, params)
        pb_utils.Logger.log_info(
            f"{args['model_name']}: torch {torch.__version__} on {self.device} {self.dtype} "
            f"channels_last={self.channels_last} cuda_graphs={self.buckets or 'off'}"
        )

    def _capture(self, max_batch_size: int, params: dict[str, str]) -> None:
        torch = self.torch
        size = int(params.get("torch_input_size", "224"))
        powers = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256) if b < max_batch_size]
        self.buckets = [*powers, max_batch_size]
        stream = torch.cuda.Stream(self.device)
        with torch.inference_mode(), torch.cuda.device(self.device):
            for bucket in self.buckets:
                static_in = self._prepare(torch.zeros(bucket, 3, size, size, device=self.device))
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(2):  # warm-up on a side stream, as torch.cuda.graphs requires
                        self.model(static_in)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = self.model(static_in)
                self.graphs[bucket] = (graph, static_in, static_out)

    def _prepare(self, batch):  # type: ignore[no-untyped-def]
        batch = batch.to(self.device, dtype=self.dtype, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=self.torch.channels_last)
        return batch

    def _to_device(self, parts: list):  # type: ignore[no-untyped-def]
        """Host float32 NCHW parts → one float32 NCHW batch on the device, without a host-side concat.

        Each part is copied as-is (a plain memcpy over PCIe) into a reused staging buffer; dtype and
        layout conversion then run on the GPU. A direct CPU fp32 → GPU fp16 channels_last `copy_`
        converts on the host first, which under client load made batch 64 take 3x the engine time.
        """
        torch = self.torch
        n = sum(int(p.shape[0]) for p in parts)
        if self.device.type == "cpu":
            return parts[0] if len(parts) == 1 else torch.cat(parts)
        if self.staging is None or self.staging.shape[0] < n or self.staging.shape[1:] != parts[0].shape[1:]:
            capacity = max(n, self.buckets[-1] if self.buckets else n)
            self.staging = torch.empty((capacity, *parts[0].shape[1:]), device=self.device)
        offset = 0
        for part in parts:
            size = int(part.shape[0])
            self.staging[offset : offset + size].copy_(part)
            offset += size
        return self.staging[:n]

    def run_parts(self, parts: list, to_host: bool = True):  # type: ignore[no-untyped-def]
        """Host float32 NCHW tensors in (one per request), float32 logits of all of them out."""
        torch = self.torch
        with torch.inference_mode():
            batch = self._to_device(parts)
            n = int(batch.shape[0])
            bucket = next((b for b in self.buckets if b >= n), None)
            if bucket is None:
                out = self.model(self._prepare(batch))
            else:
                graph, static_in, static_out = self.graphs[bucket]
                static_in[:n].copy_(batch)
                graph.replay()
                out = static_out[:n]
            # .float() copies, so graph outputs are never handed out while the next replay rewrites them.
            return out.float().cpu() if to_host else out.float()

    def run_tensor(self, host, to_host: bool = True):  # type: ignore[no-untyped-def]
        return self.run_parts([host], to_host)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.run_tensor(self.torch.from_numpy(batch)).numpy()

    def infer(self, tensors: list, output_name: str) -> list:
        """Triton tensors in, Triton tensors out, through DLPack: no numpy between torch and Triton.

        # NOTE: DLPack keeps the stub's numpy (its pybind11 predates numpy 2) out of torch's way:
        # torch on a GPU host is usually built for numpy 2, and no array crosses between the two.
        """
        from torch.utils import dlpack

        parts = [dlpack.from_dlpack(t.to_dlpack()).float() for t in tensors]
        logits = self.run_parts(parts, to_host=not self.output_on_device)
        outputs, offset = [], 0
        for part in parts:
            size = part.shape[0]
            piece = logits[offset : offset + size].contiguous()
            outputs.append(pb_utils.Tensor.from_dlpack(output_name, dlpack.to_dlpack(piece)))
            offset += size
        return outputs


def _build_torch_model(params: dict[str, str], version_dir: str):  # type: ignore[no-untyped-def]
    """The architecture named by `torch_builder`, weights from `model.pt` when present."""
    import torch

    source, _, name = params.get("torch_builder", "").partition(":")
    if source == "torchvision":
        import torchvision

        model = getattr(torchvision.models, name)(weights=None)
    elif source == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
    else:
        builder = params.get("torch_builder")
        raise ValueError(f"torch_builder must be torchvision:NAME or timm:NAME, got {builder!r}")
    weights = os.path.join(version_dir, "model.pt")
    if os.path.isfile(weights):
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    if params.get("torch_reparameterize", "0") == "1":
        from timm.utils import reparameterize_model

        model = reparameterize_model(model)
    return model


class _Pipeline:
    """Double buffering (config parameter `pipeline: "1"`): `execute` stages batch N+1 while an engine
    thread runs batch N.

    Without it an instance's core idles while Triton answers batch N and copies batch N+1 into the
    stub (≈5 % per core for mobilenet_v3_large on 2 cores); a second instance per core fills that gap
    too, at the price of a second copy of the weights and session. Measured on 2 cores, interleaved:
    2 pipelined instances 309 img/s, 4 plain ones 311, Triton's PSS 352 vs 615 MiB, batch-1 p50
    +0.2 ms (two thread hand-offs).

    `execute` copies the inputs into one of two reused buffers (Triton reuses their memory once it
    returns), hands the batch over and returns when the engine thread has taken it. A third thread
    answers each request through its response sender, a round trip to Triton (≈0.4 ms) that would
    otherwise keep the engine waiting. The price: Triton's compute time for a batch now covers staging
    and the wait for the previous batch, not the engine run, so its latency statistics understate.
    """

    def __init__(self, engine: _OrtEngine | _OpenVinoEngine, output_name: str, model_name: str) -> None:
        self.engine = engine
        self.output_name = output_name
        self.model_name = model_name
        self.jobs: queue.Queue = queue.Queue(maxsize=1)
        self.buffers: list[np.ndarray | None] = [None, None]
        self.turn = 0
        self.answers: queue.Queue = queue.Queue()
        self.threads = [
            threading.Thread(target=self._run_batches, name="deploylab-engine", daemon=True),
            threading.Thread(target=self._send_answers, name="deploylab-answers", daemon=True),
        ]
        for thread in self.threads:
            thread.start()
        pb_utils.Logger.log_info(f"{model_name}: pipeline on (next batch staged while the engine runs one)")

    def _stage(self, arrays: list) -> np.ndarray:
        """The requests' inputs copied into one of two reused buffers (the other may be running)."""
        rows = sum(a.shape[0] for a in arrays)
        buffer = self.buffers[self.turn]
        first = arrays[0]
        fits = buffer is not None and buffer.shape[1:] == first.shape[1:] and buffer.dtype == first.dtype
        if buffer is None or not fits or buffer.shape[0] < rows:
            buffer = np.empty((rows, *first.shape[1:]), dtype=first.dtype)
            self.buffers[self.turn] = buffer
        self.turn ^= 1
        return np.concatenate(arrays, axis=0, out=buffer[:rows], casting="same_kind")

    def submit(self, requests: list, arrays: list) -> None:
        batch = self._stage(arrays)
        senders = [r.get_response_sender() for r in requests]
        self.jobs.put((senders, batch, [a.shape[0] for a in arrays]))
        self.jobs.join()  # returns once the engine thread has taken the batch: one running, one staged

    def _run_batches(self) -> None:
        while True:
            job = self.jobs.get()
            self.jobs.task_done()
            if job is None:
                self.answers.put(None)
                return
            senders, batch, sizes = job
            try:
                tensors = _split(self.engine.run(batch), sizes, self.output_name)
                responses = [pb_utils.InferenceResponse(output_tensors=[t]) for t in tensors]
            except Exception as exc:  # noqa: BLE001 - every request must get an answer
                responses = _error_responses(exc, len(sizes))
            self.answers.put((senders, responses))

    def _send_answers(self) -> None:
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        while (answer := self.answers.get()) is not None:
            for sender, response in zip(*answer, strict=True):
                try:
                    sender.send(response, flags=final)
                except Exception as exc:  # noqa: BLE001 - a cancelled request must not stop the rest
                    pb_utils.Logger.log_warn(f"{self.model_name}: could not send a response: {exc}")

    def close(self) -> None:
        self.jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=30)


class TritonPythonModel:
    """One engine per instance; `execute` batches every request Triton hands it."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = _parameters(config)
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.engine: _OrtEngine | _OpenVinoEngine | _TorchEngine | None
        engine = params.get("engine", "onnxruntime")
        if engine == "torch":
            if config["input"][0].get("data_type") != "TYPE_FP32":
                raise ValueError(
                    f"engine torch takes a TYPE_FP32 input (normalised pixels), not "
                    f"{config['input'][0].get('data_type')}: export with --input fp32 for it"
                )
            self.engine = _TorchEngine(args, params, int(config.get("max_batch_size", 0)))
        elif engine == "openvino":
            self.engine = _OpenVinoEngine(args, params)
        elif engine == "onnxruntime":
            self.engine = _OrtEngine(args, params, self.input_name, self.output_name)
        else:
            raise ValueError(f"config parameter engine: onnxruntime, openvino or torch, not {engine!r}")
        self.pipeline: _Pipeline | None = None
        if params.get("pipeline", "0") == "1":
            if isinstance(self.engine, _OrtEngine | _OpenVinoEngine):
                self.pipeline = _Pipeline(self.engine, self.output_name, args["model_name"])
            else:
                name = args["model_name"]
                pb_utils.Logger.log_warn(f"{name}: pipeline applies to onnxruntime and openvino only; off")

    def execute(self, requests: list) -> list | None:
        tensors = [pb_utils.get_input_tensor_by_name(r, self.input_name) for r in requests]
        if self.pipeline is not None:
            self.pipeline.submit(requests, [t.as_numpy() for t in tensors])
            return None
        try:
            assert self.engine is not None, "execute() after finalize()"
            outputs = self.engine.infer(tensors, self.output_name)
        except Exception as exc:  # noqa: BLE001 - every request must get an answer, never a crash
            return _error_responses(exc, len(requests))
        return [pb_utils.InferenceResponse(output_tensors=[out]) for out in outputs]

    def finalize(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        self.engine = None
