"""`deploylab smoke`: export (if needed), start Triton, and get one answer from every model.

The shortest end-to-end proof that the zoo is servable: each model answers a batch of 2 over HTTP and
its logits are checked against in-process ONNX Runtime.
"""

from __future__ import annotations

import time
from typing import Annotated

import onnxruntime as ort
import tritonclient.http as httpclient
import typer
from deploylab.services.common.cli_errors import cli_errors
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer
from rich.console import Console

from .catalog import MODEL_SETS, resolve_model_set
from .export import ExportOptions, export_model
from .parity import ATOL, RTOL, Tolerance, compare_logits, random_batch
from .repository import INPUT_NAME, OUTPUT_NAME, onnx_path

console = Console(stderr=True)


@cli_errors
def smoke_command(
    models: Annotated[list[str] | None, typer.Argument(help="catalog names (default: --set)")] = None,
    model_set: Annotated[str, typer.Option("--set", help=", ".join(MODEL_SETS))] = "default",
) -> None:
    """Export, serve with embedded Triton, and check one inference per model against ONNX Runtime."""
    settings = RuntimeSettings()
    specs = resolve_model_set(models or [], model_set)
    names = []
    for spec in specs:
        for variant in spec.variant_names:
            outcome = export_model(
                spec,
                variant,
                settings.model_repository,
                ExportOptions(),
                lambda model, msg: console.print(f"{model}: {msg}"),
            )
            names.append(outcome.model)
    server = TritonServer(settings, models=names)
    console.print(f"starting tritonserver with {len(names)} models (log: {server.log_path}) …")
    with server:
        client = httpclient.InferenceServerClient(settings.triton_http_url.removeprefix("http://"))
        batch = random_batch(2, 224, seed=0)
        for name in names:
            tensor = httpclient.InferInput(INPUT_NAME, list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch, binary_data=True)
            started = time.perf_counter()
            served = client.infer(name, [tensor]).as_numpy(OUTPUT_NAME)
            elapsed_ms = (time.perf_counter() - started) * 1e3
            session = ort.InferenceSession(
                str(onnx_path(settings.model_repository, name)), providers=["CPUExecutionProvider"]
            )
            expected = session.run(None, {INPUT_NAME: batch})[0]
            # The served logits against the same file in-process, by the export's parity criterion.
            failure = compare_logits(served, expected, Tolerance(RTOL, ATOL), engine="Triton").failure
            mark = "[green]ok[/green]" if failure is None else "[red]MISMATCH[/red]"
            console.print(f"{name:22s} batch 2 in {elapsed_ms:7.1f} ms  top-1 {served.argmax(1)}  {mark}")
            if failure is not None:
                raise ValueError(f"{name}: served logits differ from in-process ONNX Runtime: {failure}")
    console.print("[green]all models answered correctly[/green]")
