"""The GPU check's native step: `deploylab_ort` on ONNX Runtime's CUDA provider, served vs in-process.

What the served torch step cannot show: the serving cost of the native engine, where a batch never
leaves tritonserver. The same ONNX file runs in-process (an ONNX Runtime session on the CUDA provider
fed from host numpy at batch 1, 8 and 64: the host→device path Triton's clients take) and served (two
KIND_GPU `deploylab_ort` instances, dynamic batching to 64, on a server that sees the GPU), with
batch-1 clients over system shared memory and over CUDA shared memory (the input already on the device).
Served ÷ the in-process best is the ratio the GPU issue sets at ≥ 0.8.

The ONNX file comes from the check's own weights through torch's TorchScript exporter (the GPU host has
torch but not the exporter's dynamo dependencies). On a CPU (`--device cpu`, a rehearsal) everything
runs on CPU instances and the CUDA points are left out.
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .gpu_serving import LoadPlan

NATIVE_PLAN_GPU: LoadPlan = [
    ("http-shm", 1, 64, 8),
    ("http-cudashm", 1, 64, 8),
    ("http", 1, 64, 8),
    ("http-shm", 64, 4, 4),
    ("http-cudashm", 64, 4, 4),
]
NATIVE_PLAN_DRY: LoadPlan = [("http-shm", 1, 2, 1), ("http", 2, 1, 1)]
NATIVE_MAX_BATCH = 64
#: The served name: beside the torch step's model in the same work directory, never mistaken for it.
NATIVE_SUFFIX = "_native"


def export_native_model(repository: Path, model: str, weights: Path, device: str) -> Path:
    """`repository/<model>_native`: the model's ONNX file and a `deploylab_ort` config with two instances
    (KIND_GPU on a GPU, KIND_CPU in a rehearsal), dynamic batching up to NATIVE_MAX_BATCH."""
    import torch
    from deploylab.services.modelzoo.build import build_model
    from deploylab.services.modelzoo.catalog import get_spec
    from deploylab.services.modelzoo.repository import (
        INPUT_NAME,
        OUTPUT_NAME,
        ServingConfig,
        onnx_path,
        write_model_files,
    )

    spec = get_spec(model)
    name = model + NATIVE_SUFFIX
    serving = ServingConfig(
        backend="deploylab_ort",
        max_batch_size=NATIVE_MAX_BATCH,
        instance_count=2,
        instance_kind="gpu" if device.startswith("cuda") else "cpu",
    )
    directory = write_model_files(repository, name, spec.input_size, spec.num_classes, serving)
    network = build_model(spec).eval()
    network.load_state_dict(torch.load(weights, map_location="cpu"))
    example = torch.randn(1, 3, spec.input_size, spec.input_size)
    with warnings.catch_warnings():  # torch names the TorchScript exporter legacy; it needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(torch, network, example, onnx_path(repository, name), INPUT_NAME, OUTPUT_NAME)
    return directory


def _export(torch: Any, network: Any, example: Any, path: Path, input_name: str, output_name: str) -> None:
    torch.onnx.export(
        network,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def native_session(onnx_file: Path, device: str) -> Any:
    """An ONNX Runtime session on the file: CUDA provider on a GPU (refused if it falls back), else CPU."""
    import onnxruntime as ort

    cuda = device.startswith("cuda")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(onnx_file), providers=providers)
    if cuda and session.get_providers()[0] != "CUDAExecutionProvider":
        raise RuntimeError(f"ONNX Runtime did not put the model on CUDA: providers {session.get_providers()}")
    return session


def inprocess_rows(session: Any, batches: list[int], seconds: float) -> list[dict[str, Any]]:
    """The session at each batch, host numpy in and out."""
    from .gpu_serving import measure_host_calls

    name, size = session.get_inputs()[0].name, session.get_inputs()[0].shape[-1]
    rows = []
    for batch in batches:
        host = np.random.default_rng(batch).standard_normal((batch, 3, size, size), dtype=np.float32)
        call = functools.partial(session.run, None, {name: host})
        row = {
            "variant": "onnxruntime in-process, host numpy in/out",
            **measure_host_calls(call, batch, seconds),
        }
        rows.append(row)
    return rows


def served_parity(session: Any, url: str, model: str) -> dict[str, Any]:
    """Served logits against the in-process session's for one batch: the numbers mean nothing otherwise."""
    from deploylab.services.perf.client import make_client

    size = session.get_inputs()[0].shape[-1]
    batch = np.random.default_rng(7).standard_normal((2, 3, size, size), dtype=np.float32)
    client = make_client("http", url, model)
    try:
        served = client.infer(batch)
    finally:
        client.close()
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    if served.shape != expected.shape:
        raise RuntimeError(f"served logits have shape {served.shape}, in-process {expected.shape}")
    error = float(np.abs(served - expected).max())
    scale = float(np.abs(expected).max()) or 1.0
    return {
        "max_abs_error": round(error, 6),
        "relative": round(error / scale, 6),
        "ok": error <= 1e-3 * scale,
    }


def run_native(
    model: str,
    weights: Path,
    work: Path,
    out: Path,
    binary: Path | None,
    device: str,
    batches: list[int],
    seconds: float,
    load_seconds: float,
    dry: bool,
) -> dict[str, Any]:
    """Export, in-process rows, then the served points; the ratio of the best of each."""
    from deploylab.services.modelzoo.repository import onnx_path

    from .gpu_serving import run_points, served_triton

    repository = work / "native-repo"
    name = model + NATIVE_SUFFIX
    started = time.perf_counter()
    export_native_model(repository, model, weights, device)
    result: dict[str, Any] = {"model": name, "export_s": round(time.perf_counter() - started, 1)}
    session = native_session(onnx_path(repository, name), device)
    result["inprocess"] = inprocess_rows(session, batches, seconds)
    plan = NATIVE_PLAN_DRY if dry else NATIVE_PLAN_GPU
    if not device.startswith("cuda"):
        plan = [point for point in plan if point[0] != "http-cudashm"]
    with served_triton(repository, name, work, out, binary) as served:
        result["plan"] = served.server.plan.summary
        result["parity"] = served_parity(session, served.url, name)
        if not result["parity"]["ok"]:
            raise RuntimeError(f"served logits differ from the in-process session's: {result['parity']}")
        result["points"] = run_points(served.url, served.url, name, plan, load_seconds, "direct")
    best_inprocess = max(row["img_s"] for row in result["inprocess"])
    best_served = max((p["throughput_img_s"] for p in result["points"] if not p["errors"]), default=0.0)
    result["served_over_inprocess"] = round(best_served / best_inprocess, 3) if best_inprocess else None
    return result
