"""`deploylab models`, `export`, `triton` and `smoke`: the model zoo from a terminal.

Only typer, rich and plain-data modules are imported here, because every `deploylab` invocation
imports this module to register its commands: torch and ONNX Runtime (seconds and hundreds of MB)
are imported inside the commands that build, export or run models.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from deploylab.services.common.cli_errors import cli_errors
from deploylab.services.common.signals import stop_on_sigterm
from rich.console import Console
from rich.table import Table

from .catalog import CATALOG, MODEL_SETS, ModelSpec, Variant, resolve_model_set
from .counted import COUNTED_GMACS
from .parity_limits import ATOL, MAX_ATOL, MAX_RTOL, RTOL

if TYPE_CHECKING:
    from deploylab.services.runtime.settings import RuntimeSettings

    from .export import ExportOptions
    from .repository import InstanceKind

console = Console(stderr=True)

#: Variants exported only when named (`--variant`), in catalog order.
OPT_IN_VARIANTS = tuple(dict.fromkeys(v.name for s in CATALOG.values() for v in s.variants if v.opt_in))

RepositoryOpt = Annotated[
    Path | None,
    typer.Option("--repository", "-r", help="model repository (default: DEPLOYLAB_MODEL_REPOSITORY)"),
]


def _settings(repository: Path | None, **overrides: object) -> RuntimeSettings:
    from deploylab.services.runtime.settings import RuntimeSettings

    settings = RuntimeSettings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if repository is not None:
        updates["model_repository"] = repository
    return settings.model_copy(update=updates) if updates else settings


def _served_models(settings: RuntimeSettings, names: list[str]) -> dict[str, bool] | None:
    """Readiness per model from a running Triton, or None when no Triton answers."""
    from deploylab.services.runtime.triton import http_ok

    base = settings.triton_http_url
    if not http_ok(f"{base}/v2/health/live", timeout_s=0.3):
        return None
    return {name: http_ok(f"{base}/v2/models/{name}/ready", timeout_s=0.5) for name in names}


def model_rows(settings: RuntimeSettings) -> list[dict[str, object]]:
    """One row per catalog model variant: catalog facts, measured facts, export and serving state.

    An exported variant's params and GMACs come from its manifest (counted on the model that was
    exported); any other's from the catalog and `COUNTED_GMACS`, so listing builds no model.
    """
    from .manifest import read_repository

    manifests = read_repository(settings.model_repository)
    names = [spec.triton_name(v) for spec in CATALOG.values() for v in spec.variant_names]
    served = _served_models(settings, names)
    rows = []
    for spec in CATALOG.values():
        for variant in spec.variant_names:
            name = spec.triton_name(variant)
            manifest = manifests.get(name)
            if manifest is not None:
                params, gmacs = manifest.params, manifest.gmacs
            else:
                params, gmacs = spec.variant(variant).expected_params, COUNTED_GMACS[name]
            rows.append(
                {
                    "model": name,
                    "catalog_name": spec.name,
                    "family": spec.family,
                    "variant": variant,
                    "variants": list(spec.variant_names),
                    "params": params,
                    "expected_params": spec.variant(variant).expected_params,
                    "gmacs": gmacs,
                    "reference_gmacs": spec.reference_gmacs,
                    "input_size": spec.input_size,
                    "onnx_bytes": manifest.onnx_bytes if manifest else None,
                    "exported": manifest is not None,
                    "served": None if served is None else served[name],
                    "sets": [s for s, members in MODEL_SETS.items() if spec.name in members],
                }
            )
    return rows


@cli_errors
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    repository: RepositoryOpt = None,
) -> None:
    """List the model zoo: params, GMACs at 224², ONNX size, exported and served state.

    GMACs are multiply-accumulates (1 MAC = 2 FLOPs), the unit torchvision's model cards call GFLOPS.
    """
    settings = _settings(repository)
    rows = model_rows(settings)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"deploylab model zoo (repository: {settings.model_repository})")
    for column, justify in (
        ("model", "left"),
        ("family", "left"),
        ("variant", "left"),
        ("params", "right"),
        ("GMACs", "right"),
        ("card GMACs", "right"),
        ("ONNX MB", "right"),
        ("exported", "center"),
        ("served", "center"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        served = row["served"]
        table.add_row(
            str(row["model"]),
            str(row["family"]),
            str(row["variant"]),
            f"{row['params']:,}",
            f"{row['gmacs']:.2f}",
            "-" if row["reference_gmacs"] is None else f"{row['reference_gmacs']:.2f}",
            "-" if row["onnx_bytes"] is None else f"{int(row['onnx_bytes']) / 1e6:.1f}",  # type: ignore[call-overload]
            "yes" if row["exported"] else "no",
            "?" if served is None else ("yes" if served else "no"),
        )
    Console(width=max(Console().width, 150)).print(table)
    if rows and rows[0]["served"] is None:
        console.print(f"[dim]served: '?' = no Triton answering at {settings.triton_http_url}[/dim]")


@cli_errors
def export_command(
    models: Annotated[list[str] | None, typer.Argument(help="catalog names (default: --set)")] = None,
    model_set: Annotated[
        str, typer.Option("--set", help=f"model set when no names are given: {', '.join(MODEL_SETS)}")
    ] = "default",
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help="only these variants (default: each model's fp32 forms; opt-in, exported only when "
            f"named: {', '.join(OPT_IN_VARIANTS)})",
        ),
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="state_dict or checkpoint to load (one model only)")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="python (default: model.py, any Triton), deploylab_ort (native backend built for the "
            "pip Triton: CPU, or CUDA with onnxruntime-gpu; no Python stub per instance) or onnxruntime "
            "(NVIDIA's Triton images)"
        ),
    ] = "python",
    max_batch: Annotated[int, typer.Option("--max-batch", min=0, help="Triton max_batch_size")] = 8,
    instances: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="instances per model (default: on 2 cores, 1 pipelined instance with both for models of "
            "1 GMAC or more, 2 single-thread ones below; on more cores 2)",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=0, help="ONNX Runtime intra-op threads per instance")
    ] = None,
    queue_delay_us: Annotated[int, typer.Option(min=0, help="dynamic batching max queue delay")] = 0,
    preferred_batch: Annotated[
        list[int] | None, typer.Option(help="dynamic batching preferred batch size (repeatable)")
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="instance kind: auto (gpu where this host has an NVIDIA GPU and ONNX Runtime's CUDA "
            "provider, else cpu; says which and why), cpu or gpu. OpenVINO variants run on its CPU "
            "plugin: auto gives them cpu, gpu is refused for them"
        ),
    ] = "auto",
    tensorrt: Annotated[
        bool,
        typer.Option(help="GPU instances, onnxruntime or deploylab_ort backend: TensorRT's provider, fp16"),
    ] = False,
    pipeline: Annotated[
        bool | None,
        typer.Option(
            help="python backend: each instance stages its next batch while its engine runs one "
            "(with --instances 2 on 2 cores: the MobileNets' throughput from half the memory; "
            "Triton's compute time then leaves out the engine run). Default: on where the model's "
            "layout is one instance with every core"
        ),
    ] = None,
    queue_timeout_ms: Annotated[
        int,
        typer.Option(
            min=0,
            help="give Triton's queue a policy: requests time out after this, and one carrying its own "
            "timeout (the gateway's deadline) is dropped when it passes. Costs throughput: Triton's "
            "batcher then stops forming batches ahead (0: no policy)",
        ),
    ] = 0,
    parity_rtol: Annotated[
        float | None,
        typer.Option(
            "--parity-rtol",
            help=f"parity torch vs the serving engine: per sample |Δ| ≤ atol + rtol·max|logit|, same "
            f"top-1 and top-5 up to ties (default {RTOL:g}, at most {MAX_RTOL:g})",
        ),
    ] = None,
    parity_atol: Annotated[
        float | None,
        typer.Option(
            "--parity-atol",
            help=f"parity floor for samples whose logits are all near zero (default {ATOL:.3g}, float32's "
            f"smallest normal; at most {MAX_ATOL:g})",
        ),
    ] = None,
    input_dtype: Annotated[
        str,
        typer.Option(
            "--input",
            help="the input tensor's type: fp32 (default: pixels normalised by the client or gateway) or "
            "uint8 (resized and cropped pixels 0-255, normalised inside the graph: a quarter of the bytes "
            "on every hop). Changing it re-exports",
        ),
    ] = "fp32",
    force: Annotated[bool, typer.Option(help="re-export even when unchanged")] = False,
    repository: RepositoryOpt = None,
) -> None:
    """Export models to ONNX, check parity, and install them into the Triton model repository."""
    from deploylab.services.runtime.devices import kind_message, resolve_instance_kind

    from .export import ExportOptions
    from .parity import Tolerance
    from .repository import (
        BACKENDS,
        INPUT_DTYPES,
        InstanceLayout,
        ServingConfig,
        default_cpu_threads,
        default_layout,
    )

    settings = _settings(repository)
    tolerance = Tolerance(
        rtol=RTOL if parity_rtol is None else parity_rtol,
        atol=ATOL if parity_atol is None else parity_atol,
    )
    specs = resolve_model_set(models or [], model_set)
    if weights is not None and len(specs) != 1:
        raise ValueError("--weights applies to one model: name exactly one catalog model")
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"--input must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    jobs = export_jobs(specs, variant)
    resolved, why = resolve_instance_kind(kind)
    refuse_unservable(jobs, backend, kind, resolved, why)
    console.print(kind_message(resolved, why))
    on_cpu = [spec.triton_name(v) for spec, v in jobs if variant_kind(spec.variant(v), resolved) != resolved]
    if on_cpu:
        console.print(f"{', '.join(on_cpu)}: instance kind cpu (OpenVINO runs on its CPU plugin only)")

    def serving_for(spec: ModelSpec, name: str) -> ServingConfig:
        chosen = spec.variant(name)
        kind_chosen = variant_kind(chosen, resolved)
        measured = backend == "python" and kind_chosen == "cpu"  # where the default layouts come from
        if instances is None and threads is None and pipeline is None and measured:
            layout = default_layout(COUNTED_GMACS.get(spec.triton_name(name)))
        else:
            count = instances or ServingConfig.instance_count
            chosen_threads = default_cpu_threads(count) if threads is None else threads
            layout = InstanceLayout(count, chosen_threads, bool(pipeline))
        serving = ServingConfig(
            backend=backend,  # type: ignore[arg-type]
            max_batch_size=max_batch,
            max_queue_delay_us=queue_delay_us,
            preferred_batch_sizes=tuple(preferred_batch or ()),
            instance_kind=kind_chosen,
            tensorrt=tensorrt,
            default_queue_timeout_us=queue_timeout_ms * 1000,
            engine=chosen.engine,
            input_dtype=input_dtype,  # type: ignore[arg-type]
        )
        return layout.on(serving)

    for spec, name in jobs:
        serving_for(spec, name)  # refuse a bad combination before any model is built
    if instances == 1 and max_batch > 0 and queue_timeout_ms > 0:
        # NOTE: measured with Triton 2.51 (the pip wheel's): with a queue policy the batcher hands a batch
        # only to an instance already waiting, and is woken for it only by a new request; when none
        # comes it waits out its 500 ms timer. Two instances never did; without a policy it prefetches.
        console.print(
            "[yellow]one instance with a queue policy: Triton's batcher stalls ~500 ms at times under "
            "concurrent load; --instances 2 (or no --queue-timeout-ms) avoids it[/yellow]"
        )
    console.print(f"exporting {len(jobs)} model(s) into {settings.model_repository}")
    for index, (spec, var) in enumerate(jobs, start=1):
        options = ExportOptions(
            serving=serving_for(spec, var), weights=weights, force=force, parity=tolerance
        )
        _export_one(spec, var, settings.model_repository, options, f"[{index}/{len(jobs)}]")
    console.print("[green]done[/green]: serve them with `deploylab serve` or `deploylab triton`")


def variant_kind(variant: Variant, kind: InstanceKind) -> InstanceKind:
    """The instance kind a variant is exported with when the others get `kind`: cpu for OpenVINO's,
    whose engine runs on its CPU plugin only."""
    return kind if variant.engine == "onnxruntime" else "cpu"


def refuse_unservable(
    jobs: list[tuple[ModelSpec, str]], backend: str, requested: str, kind: InstanceKind, why: str
) -> None:
    """Refuse, in one line and before anything is exported, variants the options cannot serve: OpenVINO
    off the python backend or on an explicit `--kind gpu`, and GPU-only variants on CPU instances."""
    openvino = [spec.triton_name(v) for spec, v in jobs if spec.variant(v).engine == "openvino"]
    if openvino and backend != "python":
        raise ValueError(
            f"{', '.join(openvino)}: OpenVINO runs in the python backend (deploylab's model.py), not "
            f"--backend {backend}; export the openvino variants with --backend python"
        )
    if openvino and requested == "gpu":
        raise ValueError(
            f"{', '.join(openvino)}: OpenVINO runs on its CPU plugin only, not on --kind gpu; export the "
            "openvino variants with --kind auto or --kind cpu"
        )
    gpu_only = [spec.triton_name(v) for spec, v in jobs if spec.variant(v).needs_gpu]
    if gpu_only and kind != "gpu":
        raise ValueError(
            f"{', '.join(gpu_only)}: served on GPU instances only, and instances here are cpu ({why}); "
            "export them with --kind gpu on a host with an NVIDIA GPU"
        )


def export_jobs(specs: list[ModelSpec], variants: list[str] | None) -> list[tuple[ModelSpec, str]]:
    """The (model, variant) pairs an export names; a `--variant` that none of the models has is refused
    rather than dropped, so a typo never exports less than asked."""
    for wanted in variants or ():
        if not any(wanted in spec.all_variant_names for spec in specs):
            specs[0].variant(wanted)  # raises with the model's variant list
    jobs = []
    for spec in specs:
        chosen = [v for v in spec.all_variant_names if v in variants] if variants else spec.variant_names
        if variants and not chosen:
            spec.variant(variants[0])  # raises with the model's variant list
        jobs += [(spec, v) for v in chosen]
    return jobs


@cli_errors
def triton_command(
    models: Annotated[
        list[str] | None, typer.Argument(help="Triton model names to load (default: all exported)")
    ] = None,
    http_port: Annotated[int | None, typer.Option(help="Triton HTTP port")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="Triton gRPC port")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Triton metrics port")] = None,
    repository: RepositoryOpt = None,
) -> None:
    """Run the embedded tritonserver alone on the model repository until Ctrl-C / SIGTERM."""
    from deploylab.services.runtime.triton import TritonServer

    from .manifest import read_repository

    settings = _settings(
        repository,
        triton_http_port=http_port,
        triton_grpc_port=grpc_port,
        triton_metrics_port=metrics_port,
    )
    exported = read_repository(settings.model_repository)
    if not exported:
        raise ValueError(f"no exported models in {settings.model_repository}: run `deploylab export` first")
    unknown = [m for m in models or [] if m not in exported]
    if unknown:
        raise ValueError(
            f"not exported: {', '.join(unknown)}; exported models: {', '.join(sorted(exported))}"
        )
    server = TritonServer(settings, models=models or sorted(exported))
    console.print(f"starting tritonserver ({len(server.models or [])} models), log: {server.log_path}")
    stop_on_sigterm()
    try:
        server.start()
        console.print(
            f"[green]ready[/green]  HTTP {settings.triton_http_url}  gRPC {settings.triton_grpc_url}  "
            f"metrics {settings.triton_metrics_url}   (Ctrl-C to stop)"
        )
        while server.alive():
            time.sleep(0.5)
        raise ValueError(f"tritonserver exited unexpectedly; {server.log_summary()}")
    except KeyboardInterrupt:
        console.print("stopping tritonserver …")
    finally:
        code = server.stop()
        if code is not None:
            console.print(f"tritonserver stopped (exit code {code})")


def _export_one(spec: ModelSpec, variant: str, repository: Path, options: ExportOptions, prefix: str) -> None:
    """One export with live progress; a parity failure says which flag relaxes the check."""
    from .export import export_model
    from .parity import ParityToleranceError

    with console.status(f"{prefix} {spec.triton_name(variant)}: starting") as status:
        started = time.perf_counter()

        def on_step(model: str, message: str) -> None:
            status.update(f"{prefix} {model}: {message} ({time.perf_counter() - started:.0f}s)")
            console.print(f"{prefix} {model}: {message}")

        try:
            outcome = export_model(spec, variant, repository, options, on_step)
        except ParityToleranceError as exc:
            tolerance = options.parity
            raise ParityToleranceError(
                f"{exc}. If the model is right and this is float noise, relax the check with "
                f"--parity-rtol (now {tolerance.rtol:g}) or --parity-atol (now {tolerance.atol:.3g})"
            ) from None
    if outcome.status == "exported":
        m = outcome.manifest
        console.print(
            f"{prefix} [green]{m.model}[/green]: {m.params:,} params, {m.gmacs:.2f} GMACs, "
            f"{m.onnx_bytes / 1e6:.1f} MB ONNX"
        )


def smoke_command(
    models: Annotated[list[str] | None, typer.Argument(help="catalog names (default: --set)")] = None,
    model_set: Annotated[str, typer.Option("--set", help=", ".join(MODEL_SETS))] = "default",
) -> None:
    """Export, serve with embedded Triton, and check one inference per model against ONNX Runtime."""
    # NOTE: `smoke` imports ONNX Runtime and tritonclient at module level, so it is loaded only when
    # this command runs; its own function reports errors the CLI way.
    from .smoke import smoke_command as run_smoke

    run_smoke(models, model_set)
