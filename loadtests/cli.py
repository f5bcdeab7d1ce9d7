"""`deploylab loadtest`, `deploylab report`, `deploylab compare`: the load-test commands.

Heavy imports (torch via the baselines, matplotlib via the report) happen inside the commands so
`deploylab --help` stays fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from deploylab.services.common.cli_errors import cli_errors
from deploylab.services.common.signals import stop_on_sigterm
from rich.console import Console

if TYPE_CHECKING:
    from deploylab.services.measure.results import Objective

    from .runs import RunOutcome

console = Console(stderr=True)

ModelsArg = Annotated[
    list[str] | None,
    typer.Argument(help="catalog names (all their variants) or Triton model names; default: --set"),
]
SetOpt = Annotated[
    str, typer.Option("--set", help="model set when no models are named (default, small, all)")
]
WorkersOpt = Annotated[
    int, typer.Option(min=0, help="Locust worker processes on loopback (0: one local process)")
]
OutOpt = Annotated[Path, typer.Option(help="parent folder of the run directory results/<timestamp>/")]
SloOpt = Annotated[
    float | None,
    typer.Option(
        "--slo-p99-ms", min=0.001, help="the decision's latency objective: p99 in ms [default: 200]"
    ),
]
RpsOpt = Annotated[
    float | None,
    typer.Option(
        "--rps", min=0.001, help="the decision's target rate in requests/s, all replicas [default: 100]"
    ),
]
RepositoryOpt = Annotated[
    Path | None,
    typer.Option("--repository", "-r", help="model repository (default: DEPLOYLAB_MODEL_REPOSITORY)"),
]


def _parse_users(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        users = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--users must be comma-separated integers, got {text!r}") from None
    if not users or min(users) < 1:
        raise ValueError("--users needs at least one count, each >= 1")
    return users


def _objective(slo_p99_ms: float | None, rps: float | None, base: Objective | None = None) -> Objective:
    """The objective with what the command line names replaced (defaults: `base`, else the default)."""
    from deploylab.services.measure.results import DEFAULT_OBJECTIVE, Objective

    start = base or DEFAULT_OBJECTIVE
    return Objective(
        slo_p99_ms=slo_p99_ms if slo_p99_ms is not None else start.slo_p99_ms,
        target_rps=rps if rps is not None else start.target_rps,
    )


def _repository(repository: Path | None) -> Path:
    from deploylab.services.runtime.settings import RuntimeSettings

    return repository if repository is not None else RuntimeSettings().model_repository


def _finish(outcome: RunOutcome, started: float) -> None:
    minutes = (time.monotonic() - started) / 60
    console.print(f"run {outcome.status} in {minutes:.1f} min; results in {outcome.run_dir}")
    if outcome.report is not None:
        console.print(f"report: {outcome.report.html}  (Markdown: {outcome.report.markdown})")
        if outcome.report.k8s is not None:
            console.print(f"deploy the decision: kubectl apply -k {outcome.report.k8s}")
        print(outcome.report.html)  # stdout: the one thing a script wants
    else:
        print(outcome.run_dir)
    if outcome.error:
        console.print(f"[red]error: {outcome.error}[/red]")
    if outcome.interrupted:
        raise typer.Exit(130)
    if outcome.status != "complete":
        raise typer.Exit(1)


@cli_errors
def loadtest_command(
    models: ModelsArg = None,
    model_set: SetOpt = "default",
    profile: Annotated[str, typer.Option(help="sweep profile: full, quick or smoke")] = "full",
    quick: Annotated[
        bool, typer.Option("--quick", help="the quick profile (short windows, fewer points)")
    ] = False,
    gateway_url: Annotated[
        str | None, typer.Option(help="sweep a running gateway (with --triton-url); default: start one")
    ] = None,
    triton_url: Annotated[
        str | None, typer.Option(help="running Triton HTTP URL, e.g. http://host:8000")
    ] = None,
    triton_metrics_url: Annotated[
        str | None, typer.Option(help="running Triton's metrics URL, e.g. http://host:8002/metrics")
    ] = None,
    workers: WorkersOpt = 0,
    stop_timeout_s: Annotated[
        float,
        typer.Option(
            min=0.5, help="graceful stop: time for in-flight requests (each worker pauses this long)"
        ),
    ] = 10.0,
    users: Annotated[str | None, typer.Option(help="closed-loop user counts, e.g. 1,4,16")] = None,
    window_s: Annotated[float | None, typer.Option(min=0.5, help="measured window per point (s)")] = None,
    warmup_s: Annotated[float | None, typer.Option(min=0, help="warm-up before each point (s)")] = None,
    inprocess: Annotated[
        bool, typer.Option(help="measure in-process baselines (ONNX Runtime, torch)")
    ] = True,
    report: Annotated[bool, typer.Option(help="render report.html and report.md at the end")] = True,
    slo_p99_ms: SloOpt = None,
    rps: RpsOpt = None,
    repository: RepositoryOpt = None,
    out: OutOpt = Path("results"),
) -> None:
    """Sweep models × paths × loads with Locust; write results/<timestamp>/ (JSON, CSV, report)."""
    from .plan import Endpoints
    from .runs import RunRequest, customize_profile, profile_named, resolve_targets, run_loadtest

    started = time.monotonic()
    stop_on_sigterm()
    endpoints = None
    if triton_url or gateway_url:
        if not (triton_url and triton_metrics_url):
            raise ValueError(
                "to sweep running servers give --triton-url and --triton-metrics-url (and --gateway-url)"
            )
        endpoints = Endpoints(
            triton_url=triton_url, triton_metrics_url=triton_metrics_url, gateway_url=gateway_url
        )
    chosen = customize_profile(profile_named(profile, quick), _parse_users(users), window_s, warmup_s)
    request = RunRequest(
        targets=resolve_targets(models or [], model_set),
        profile=chosen,
        repository=_repository(repository),
        out=out,
        endpoints=endpoints,
        workers=workers,
        stop_timeout_s=stop_timeout_s,
        inprocess=inprocess,
        report=report,
        objective=_objective(slo_p99_ms, rps),
        settings={"command": " ".join(["deploylab", *sys.argv[1:]])},
    )
    _finish(run_loadtest(request, console), started)


@cli_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `deploylab loadtest`")],
    slo_p99_ms: SloOpt = None,
    rps: RpsOpt = None,
) -> None:
    """Render report.html (self-contained) and report.md from a run's results.json; with --slo-p99-ms or
    --rps, decide again against that objective (kept in results.json)."""
    from deploylab.services.measure.results import load_results
    from deploylab.services.report.writer import write_report

    objective = None
    if slo_p99_ms is not None or rps is not None:
        objective = _objective(slo_p99_ms, rps, load_results(run_dir).objective)
    files = write_report(run_dir, objective)
    console.print(f"report: {files.html}  (Markdown: {files.markdown}, {len(files.plots)} plots)")
    if files.k8s is not None:
        console.print(f"deploy the decision: kubectl apply -k {files.k8s}")
    print(files.html)


@cli_errors
def compare_command(
    models: ModelsArg = None,
    model_set: SetOpt = "default",
    quick: Annotated[bool, typer.Option("--quick", help="≤ 5 minutes: fewer points, short windows")] = False,
    workers: WorkersOpt = 0,
    repository: RepositoryOpt = None,
    out: OutOpt = Path("results"),
    images: Annotated[
        Path | None,
        typer.Option(
            help="labelled images (class folders or labels.csv): every deployment's top-1/top-5 in the report"
        ),
    ] = None,
    slo_p99_ms: SloOpt = None,
    rps: RpsOpt = None,
    axes: Annotated[
        str,
        typer.Option(
            help="how deployments differ beyond the model: 'anchor' (int8 and OpenVINO on ResNet-50, "
            "else the first model), 'precision', 'engine' or both comma-separated (on every model), 'none'"
        ),
    ] = "anchor",
    kind: Annotated[
        str,
        typer.Option(
            help="instance kind of new exports: auto (gpu where this host has an NVIDIA GPU and ONNX "
            "Runtime's CUDA provider), cpu or gpu"
        ),
    ] = "auto",
) -> None:
    """Export the deployments, serve them, sweep them, and write the report that decides (make compare)."""
    from deploylab.services.runtime.devices import kind_message, resolve_instance_kind

    from .axes import parse_axes
    from .runs import RunRequest, export_targets, profile_named, resolve_targets, run_loadtest

    started = time.monotonic()
    stop_on_sigterm()
    instance_kind, why = resolve_instance_kind(kind)
    console.print(kind_message(instance_kind, why))
    targets = resolve_targets(models or [], model_set, parse_axes(axes), instance_kind)
    repo = _repository(repository)
    export_targets(targets, repo, console, instance_kind)
    request = RunRequest(
        targets=targets,
        profile=profile_named("full", quick),
        repository=repo,
        out=out,
        workers=workers,
        objective=_objective(slo_p99_ms, rps),
        settings={"command": " ".join(["deploylab", *sys.argv[1:]])},
    )
    outcome = run_loadtest(request, console)
    if images is not None and (outcome.run_dir / "results.json").is_file():
        from deploylab.services.accuracy.evaluate import measure_accuracy
        from deploylab.services.report.writer import add_accuracy

        for model in dict.fromkeys(t.model for t in targets):
            rows = [r.as_dict() for r in measure_accuracy(model, images, repo, log=console.print)]
            add_accuracy(outcome.run_dir, str(images), rows)
    _finish(outcome, started)


def register(app: typer.Typer) -> None:
    """Add the load-test commands to `deploylab`."""
    app.command("loadtest")(loadtest_command)
    app.command("report")(report_command)
    app.command("compare")(compare_command)
