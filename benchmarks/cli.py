"""`deploylab bench` and `deploylab tune`: the performance commands.

Heavy imports (torch, onnxruntime, tritonclient) happen inside the commands so `deploylab --help`
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from deploylab.services.common.cli_errors import cli_errors
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from deploylab.benchmarks.bench import BenchOptions
    from deploylab.services.perf.client import Transport
    from deploylab.services.perf.tune import Trial, TuneResult
    from deploylab.services.runtime.settings import RuntimeSettings

console = Console(stderr=True)


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"{what}: give at least one value")
    return values


def _layouts(text: str) -> tuple[tuple[int, int], ...]:
    """`2x1,1x2` → ((2, 1), (1, 2)): instances x ORT intra-op threads."""
    layouts = []
    for part in text.split(","):
        instances, _, threads = part.strip().partition("x")
        if not (instances.isdigit() and threads.isdigit()) or int(instances) < 1 or int(threads) < 1:
            raise ValueError(f"--layouts: expected INSTANCESxTHREADS like 2x1, got {part!r}")
        layouts.append((int(instances), int(threads)))
    return tuple(layouts)


def _preferred(text: str) -> tuple[tuple[int, ...], ...]:
    """`-;4,8;8` → ((), (4, 8), (8,)): sets of preferred batch sizes, `-` for none."""
    sets = []
    for part in text.split(";"):
        part = part.strip()
        sets.append(() if part in {"", "-"} else _ints(part, "--preferred"))
    return tuple(sets)


@cli_errors
def tune_command(
    model: Annotated[
        str, typer.Argument(help="Triton model name (resnet50, repvgg_a0_deploy) or catalog name")
    ],
    p99_ms: Annotated[float, typer.Option("--p99-ms", min=0.1, help="latency limit: p99 per request, ms")],
    repository: Annotated[Path | None, typer.Option("--repository", "-r")] = None,
    triton_url: Annotated[
        str | None,
        typer.Option(help="tune a running Triton in explicit model-control mode (http://host:port)"),
    ] = None,
    concurrency: Annotated[str, typer.Option(help="closed-loop client counts to sweep")] = "1,4,16,64",
    duration: Annotated[float, typer.Option(min=0.5, help="seconds per measured point")] = 3.0,
    request_batch: Annotated[int, typer.Option(min=1, help="images per client request")] = 1,
    transport: Annotated[str, typer.Option(help="http | http-shm | tritonclient-http | grpc")] = "http",
    grid: Annotated[bool, typer.Option("--grid", help="full cartesian search instead of two phases")] = False,
    layouts: Annotated[
        str | None,
        typer.Option(help="INSTANCESxTHREADS list, e.g. 2x1,1x2,4x1 (default: all that use every core)"),
    ] = None,
    max_batch: Annotated[str, typer.Option(help="max_batch_size values; the first is the baseline")] = "8,16",
    queue_delay_us: Annotated[str, typer.Option(help="max_queue_delay_microseconds values")] = "0,500",
    preferred: Annotated[
        str, typer.Option(help="preferred batch size sets, ';'-separated, '-' = none")
    ] = "-",
    max_trials: Annotated[int | None, typer.Option(min=1, help="stop after this many trials")] = None,
    confirm: Annotated[
        int, typer.Option(min=0, help="leading configs measured again at the end; score = their mean")
    ] = 2,
    pipeline: Annotated[
        bool | None,
        typer.Option(
            "--pipeline/--no-pipeline",
            help="every trial pipelined (or not): instances stage their next batch while the engine runs "
            "(default: as exported)",
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="python or deploylab_ort (the native backend) for every trial (default: as exported)"
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="where the trials table goes")] = Path("results/tune"),
) -> None:
    """Search serving configs for the most throughput under a p99 limit; install the best config.pbtxt.

    Each trial is loaded into a running Triton through model control (no restart); the default search
    takes a few minutes on 2 cores. Widen it with --grid, --layouts, --max-batch, --queue-delay-us.
    Every trial keeps what the model was exported with beyond the searched knobs (its engine, instance
    kind, queue policy), and its backend and pipelining unless --backend or --pipeline say otherwise.
    """
    from deploylab.services.measure.names import served_model
    from deploylab.services.modelzoo.repository import ServingConfig
    from deploylab.services.perf.tune import TuneOptions, TuneSpace
    from deploylab.services.perf.tune_run import run_tune

    name = served_model(model).triton_model
    if backend not in (None, "python", "deploylab_ort"):
        raise ValueError(f"--backend must be python or deploylab_ort, got {backend!r}")
    chosen = {"backend": backend, "pipeline": pipeline}
    space = TuneSpace(
        layouts=_layouts(layouts) if layouts else (),
        max_batch_sizes=_ints(max_batch, "--max-batch"),
        queue_delays_us=_ints(queue_delay_us, "--queue-delay-us"),
        preferred_batch_sizes=_preferred(preferred),
        # run_tune puts these over the model's exported config (TuneSpace.on_deployment)
        base=ServingConfig(pipeline=bool(pipeline), backend=backend or "python"),  # type: ignore[arg-type]
        chosen=tuple(key for key, value in chosen.items() if value is not None),
    )
    options = TuneOptions(
        p99_ms=p99_ms,
        concurrencies=_ints(concurrency, "--concurrency"),
        duration_s=duration,
        request_batch=request_batch,
        transport=_transport(transport),
        strategy="grid" if grid else "quick",
        space=space,
        max_trials=max_trials,
        confirm_top=confirm,
    )
    settings = _embedded_settings(repository)
    where = triton_url or "an embedded Triton on free ports"
    console.print(f"tuning [bold]{name}[/bold] for p99 ≤ {p99_ms:g} ms against {where} …")

    def show(trial: Trial) -> None:
        best = trial.best_point
        verdict = (
            f"{best.throughput_img_s:.1f} img/s at c={best.concurrency} (p99 {best.p99_ms:.1f} ms, "
            f"mean batch {best.mean_executed_batch:.2f})"
            if best
            else (trial.error or "no concurrency met the limit")
        )
        console.print(f"  trial {trial.index}: {trial.title:<40} {verdict}")

    report = run_tune(settings, name, options, out, triton_url=triton_url, on_trial=show)
    console.print(trials_table(report.result))
    console.print(f"trials: {report.json_path}  {report.markdown_path}")
    if report.config_path is None:
        console.print("[yellow]no trial met the limit: config.pbtxt left unchanged[/yellow]")
        raise typer.Exit(2)
    best_trial = report.result.best
    assert best_trial is not None
    console.print(
        f"[green]best[/green] {best_trial.label} → wrote {report.config_path} and reloaded it from disk"
    )


def _transport(text: str) -> Transport:
    from deploylab.services.perf.client import TRANSPORTS

    if text not in TRANSPORTS:
        raise ValueError(f"--transport: choose from {', '.join(TRANSPORTS)}")
    return cast("Transport", text)


def _embedded_settings(repository: Path | None) -> RuntimeSettings:
    """Runtime settings for a Triton this command starts: free ports, explicit model control."""
    from deploylab.services.measure.ports import triton_ports
    from deploylab.services.runtime.settings import RuntimeSettings

    updates: dict[str, object] = {**triton_ports(), "triton_model_control": "explicit"}
    if repository is not None:
        updates["model_repository"] = repository
    return RuntimeSettings().model_copy(update=updates)


def trials_table(result: TuneResult) -> Table:
    best = result.best
    table = Table(title=f"{result.model}: trials under p99 ≤ {result.p99_limit_ms:g} ms")
    for column in ("#", "config", "img/s", "config mean", "c", "p50 ms", "p99 ms", "mean batch"):
        table.add_column(column, justify="left" if column == "config" else "right")
    for trial in result.trials:
        point = trial.best_point
        label = trial.title + (" ★" if best is not None and trial.index == best.index else "")
        if point is None:
            table.add_row(str(trial.index), label, "–", "–", "–", "–", "–", "–")
            continue
        table.add_row(
            str(trial.index),
            label,
            f"{point.throughput_img_s:.1f}",
            f"{result.mean_score(trial.serving):.1f}",
            str(point.concurrency),
            f"{point.p50_ms:.2f}",
            f"{point.p99_ms:.2f}",
            f"{point.mean_executed_batch:.2f}",
        )
    return table


@cli_errors
def bench_command(
    models: Annotated[
        str, typer.Option(help="comma-separated Triton or catalog names")
    ] = "mobilenet_v3_large,resnet50",
    repository: Annotated[Path | None, typer.Option("--repository", "-r")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="interleaved rounds; ratios are their median")] = 2,
    duration: Annotated[float, typer.Option(min=0.5, help="seconds per measured point")] = 4.0,
    concurrency: Annotated[
        str, typer.Option(help="client counts; the largest is 'saturation'")
    ] = "1,4,16,64",
    transports: Annotated[
        str, typer.Option(help="direct-to-Triton transports at saturation")
    ] = "http,grpc,http-shm",
    gateway_workers: Annotated[str, typer.Option(help="gateway worker counts to measure")] = "1,2",
    backends: Annotated[
        str,
        typer.Option(
            help="other Triton backends measured beside the served one each round (same config, "
            "swapped in through model control; direct at saturation); '' for none"
        ),
    ] = "deploylab_ort",
    layouts: Annotated[
        str,
        typer.Option(
            help="other instance layouts measured beside the served one each round, INSTANCESxTHREADS "
            "with p for pipelined (1x2p), at one client and at saturation; auto: one pipelined instance "
            "with the whole thread budget and single-thread ones (whichever is not served); '' for none"
        ),
    ] = "auto",
    gateway: Annotated[bool, typer.Option("--gateway/--no-gateway")] = True,
    repvgg: Annotated[
        bool, typer.Option("--repvgg/--no-repvgg", help="RepVGG train vs deploy + profile")
    ] = True,
    threads: Annotated[
        int | None, typer.Option(min=1, help="thread budget (default: cores available)")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="1 round, 2 s points, 1 gateway worker (~3 min)")
    ] = False,
    out: Annotated[Path, typer.Option(help="JSON results directory")] = Path("results/bench"),
    write_docs: Annotated[
        Path | None, typer.Option(help="regenerate the tables in this Markdown file (docs/benchmarks.md)")
    ] = None,
    render_only: Annotated[
        Path | None,
        typer.Option("--render", help="measure nothing: print (and --write-docs) this results JSON"),
    ] = None,
    suite: Annotated[
        str,
        typer.Option(
            help="serving (in-process vs direct vs gateway), admission (default vs static admission "
            "from 1 to 256 clients, wrk beside the own client, open-loop overload) or all"
        ),
    ] = "all",
    kind: Annotated[
        str,
        typer.Option(
            help="auto (gpu where this host has an NVIDIA GPU and a CUDA build of torch, else cpu; says "
            "which and why), cpu (the suites above) or gpu (the GPU check: ResNet-50 in-process vs served "
            "vs through the gateway on the GPU, RepVGG train vs deploy; benchmarks/gpu_check.py)"
        ),
    ] = "auto",
) -> None:
    """In-process engine vs Triton direct vs the gateway, and admission under load; prints the ratios.

    Default: mobilenet_v3_large and resnet50, 2 rounds of the serving suite (about 10 minutes on 2
    cores) then the admission suite (about 8 minutes; needs wrk), plus about a minute per model the
    first time (exports missing models). Writes results/bench/<timestamp>.json;
    --write-docs docs/benchmarks.md updates the generated tables there; --render JSON redoes that
    from an earlier run without measuring.
    """
    from deploylab.benchmarks.bench import BenchOptions
    from deploylab.services.modelzoo.repository import InstanceLayout, available_cores
    from deploylab.services.runtime.devices import kind_message, resolve_instance_kind
    from deploylab.services.runtime.settings import RuntimeSettings

    if render_only is not None:
        _render_only(render_only, write_docs)
        return
    if suite not in ("all", "serving", "admission"):
        raise ValueError(f"--suite must be all, serving or admission, got {suite!r}")
    resolved, why = resolve_instance_kind(kind, engine="torch")
    console.print(kind_message(resolved, why))
    if resolved == "gpu":
        if suite != "all":
            raise ValueError(f"--suite {suite} measures CPU deployments: add --kind cpu to run it here")
        _gpu_suite(out, quick)
        return
    if suite != "serving":
        from deploylab.benchmarks.wrk import wrk_binary

        wrk_binary()  # refuse before minutes of measuring, with the install hint
    settings = RuntimeSettings()
    budget = threads or available_cores()
    layouts = f"1x{budget}p,{budget}x1" if layouts == "auto" else layouts
    options = BenchOptions(
        models=tuple(m for m in models.split(",") if m),
        repository=repository or settings.model_repository,
        threads=budget,
        rounds=1 if quick else rounds,
        duration_s=2.0 if quick else duration,
        concurrencies=_ints(concurrency, "--concurrency"),
        direct_transports=tuple(_transport(t) for t in transports.split(",") if t),
        gateway=gateway,
        gateway_workers=(1,) if quick else _ints(gateway_workers, "--gateway-workers"),
        backends=tuple(b for b in backends.split(",") if b),
        layouts=tuple(InstanceLayout.parse(text) for text in layouts.split(",") if text),
        state_dir=settings.state_dir / "bench",
    )
    result = _serving_suite(options, repvgg) if suite != "admission" else {}
    if suite != "serving":
        result["admission"] = _admission(options.models, options, quick)
    _write_results(result, out, write_docs)


def _gpu_suite(out: Path, quick: bool) -> None:
    """The GPU check on this host's GPU, its JSON under `out/gpu-<timestamp>/` (see gpu_check.py)."""
    from datetime import UTC, datetime

    from deploylab.benchmarks import gpu_check

    run_dir = out / f"gpu-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    args = ["run", "--out", str(run_dir), "--work", str(out / "gpu-work")]
    args += ["--seconds", "1", "--load-seconds", "2", "--skip", "repvgg"] if quick else []
    console.print("[bold]GPU check: ResNet-50 in-process vs served vs gateway, RepVGG train vs deploy[/bold]")
    gpu_check.main(args)
    console.print(f"results: {run_dir / 'gpu_check.json'}")


def _serving_suite(options: BenchOptions, repvgg: bool) -> dict[str, Any]:
    """In-process vs direct vs gateway, the JPEG path, the command line's cost, RepVGG train vs deploy."""
    from deploylab.benchmarks.bench import ensure_exported, run_bench
    from deploylab.benchmarks.cli_cost import measure_cli_cost
    from deploylab.benchmarks.jpeg_path import measure_jpeg_path
    from deploylab.benchmarks.repvgg_cpu import bench_repvgg

    result = run_bench(options, log=console.print)
    console.print("[bold]JPEG preprocessing: default path vs full-resolution decode[/bold]")
    result["jpeg_path"] = {m: measure_jpeg_path(options.repository, m) for m in options.models}
    console.print(jpeg_table(result["jpeg_path"]))
    console.print("[bold]the command line's own cost: start-up, heavy imports, supervisor memory[/bold]")
    result["cli_cost"] = measure_cli_cost(options.repository)
    console.print(cli_cost_line(result["cli_cost"]))
    if repvgg:
        console.print("[bold]repvgg_a0 train vs deploy (in-process, ORT profile)[/bold]")
        for name in ("repvgg_a0_train", "repvgg_a0_deploy"):
            ensure_exported(name, options.repository, console.print)
        measured = (options.repository, options.threads, options.duration_s, options.rounds)
        result["repvgg"] = bench_repvgg(*measured)
    return result


def _write_results(result: dict[str, Any], out: Path, write_docs: Path | None) -> None:
    """results/bench/<timestamp>.json (+ the admission table beside it); the summary tables; the docs."""
    import json
    from datetime import UTC, datetime

    from deploylab.benchmarks.report import render, update_docs

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if "summary" in result:
        console.print(ratio_table(result))
    if "admission" in result:
        from deploylab.benchmarks.admission import markdown_table

        table_path = path.with_suffix(".admission.md")
        table_path.write_text(markdown_table(result["admission"]))
        console.print(admission_targets_table(result["admission"]))
        console.print(f"admission table: {table_path}")
    console.print(f"results: {path}")
    if write_docs is not None and "summary" in result:
        update_docs(write_docs, render(result))
        console.print(f"updated {write_docs}")
    elif write_docs is not None:
        console.print(f"{write_docs} left as it is: its tables come from the serving suite, not run here")


def _render_only(results_file: Path, write_docs: Path | None) -> None:
    import json

    from deploylab.benchmarks.report import render, update_docs

    result = json.loads(results_file.read_text())
    console.print(ratio_table(result))
    if write_docs is not None:
        update_docs(write_docs, render(result))
        console.print(f"updated {write_docs} from {results_file}")


def _admission(models: tuple[str, ...], options: BenchOptions, quick: bool) -> dict[str, Any]:
    from deploylab.benchmarks.admission import AdmissionOptions, run_admission

    admission = AdmissionOptions(
        repository=options.repository,
        state_dir=options.state_dir,
        models=models,
        concurrencies=(1, 16, 256) if quick else AdmissionOptions.concurrencies,
        duration_s=4.0 if quick else AdmissionOptions.duration_s,
    )
    console.print("[bold]admission: default (slo) vs static, own client and wrk[/bold]")
    return run_admission(admission, log=console.print)


def cli_cost_line(cost: dict[str, Any]) -> str:
    supervisor = cost.get("supervisor") or {}
    heavy = sorted({*cost["help_imports"], *cost["models_imports"], *supervisor.get("heavy_libraries", [])})
    return (
        f"deploylab --help {cost['help_s']:.2f} s, models {cost['models_s']:.2f} s, serve supervisor "
        f"{supervisor.get('rss_mb', float('nan')):.0f} MB RSS; "
        f"heavy libraries loaded: {', '.join(heavy) or 'none'}"
    )


def jpeg_table(record: dict[str, Any]) -> Table:
    table = Table(title="JPEG preprocessing per image: default vs full decode (CPU ms, fidelity)")
    for column in ("model", "image", "MB", "default ms", "full ms", "ratio", "max |Δ|", "top-1", "top-5"):
        table.add_column(column)
    for model, measured in record.items():
        for label, row in measured["sizes"].items():
            table.add_row(
                model,
                label,
                f"{row['megabytes']:.2f}",
                f"{row['default_cpu_ms']:.1f}",
                f"{row['full_decode_cpu_ms']:.1f}",
                f"{row['cpu_ratio']:.2f}",
                f"{row['max_abs_error']:.3f}",
                f"{row['top1_agreement']:.0%}",
                f"{row['top5_overlap']:.0%}",
            )
    return table


def admission_targets_table(record: dict[str, Any]) -> Table:
    table = Table(title="admission targets (default policy; bounds from the brief)")
    for column in ("target", "value", "bound", "met"):
        table.add_column(column)
    for name, row in record["targets"].items():
        met = "yes" if row["met"] else "[red]no[/red]"
        bound = "–" if row["bound"] != row["bound"] else f"{row['bound']:g}"  # NaN: reported, not judged
        table.add_row(name, f"{row['value']:.3g}", bound, met if bound != "–" else "")
    return table


def ratio_table(result: dict[str, object]) -> Table:
    table = Table(title="served vs in-process, gateway vs direct (median over rounds)")
    for column in ("model", "ratio", "value", "target", "met"):
        table.add_column(column)
    models = result["models"]
    assert isinstance(models, dict)
    for model, record in models.items():
        summary = record["summary"]
        for key, value in summary["median"].items():
            if "over" not in key and "delta" not in key:
                continue
            target = summary["targets"].get(key)
            met = "" if target is None else ("[green]yes[/green]" if target["met"] else "[red]no[/red]")
            table.add_row(model, key, f"{value:g}", target["target"] if target else "", met)
    repvgg = result.get("repvgg")
    if isinstance(repvgg, dict):
        for key, value in repvgg["ratios"].items():
            table.add_row("repvgg_a0", key, f"{value:g}", "", "")
    return table


def register(app: typer.Typer) -> None:
    """Add the benchmark commands."""
    app.command("bench")(bench_command)
    app.command("tune")(tune_command)
