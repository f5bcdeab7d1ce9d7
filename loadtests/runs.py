"""The flows behind `deploylab loadtest` and `deploylab compare`: pick targets, export, serve, sweep, report.

Whatever ends a run — completion, Ctrl-C, SIGTERM, an error — every process it started is stopped
and the results measured so far stay on disk with a report rendered from them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploylab.services.common.errors import TritonError
from deploylab.services.gateway.stack import GatewayStartError
from deploylab.services.measure.names import ServedModel, served_models
from deploylab.services.measure.results import DEFAULT_OBJECTIVE, Objective
from deploylab.services.modelzoo.catalog import CATALOG, resolve_model_set
from deploylab.services.modelzoo.export import ExportOptions, default_serving, export_model
from deploylab.services.modelzoo.manifest import read_manifest
from deploylab.services.modelzoo.repository import InstanceKind, ServingConfig, model_dir
from deploylab.services.report.writer import ReportFiles, write_report
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .axes import NONE, anchor_of, axis_variants
from .live import SweepDisplay
from .payloads import Target
from .plan import Endpoints, PointTemplate, Profile, get_profile
from .serving import serving_stack
from .sweep import SweepConfig, SweepError, new_run_dir, run_sweep


def resolve_targets(
    names: Sequence[str],
    model_set: str | None,
    axes: Sequence[str] = (NONE,),
    instance_kind: InstanceKind = "cpu",
) -> list[Target]:
    """Catalog names expand to their default variants (repvgg_a0 → train and deploy) plus what `axes`
    add on `instance_kind` instances (int8, OpenVINO; fp16 on GPUs); Triton names stay single."""
    wanted = list(names) or [spec.name for spec in resolve_model_set([], model_set)]
    anchor = anchor_of([name for name in wanted if name in CATALOG])
    targets: list[Target] = []
    for name in wanted:
        served = served_models(name)  # unknown names raise with the known list
        if name in CATALOG:
            extra = axis_variants(CATALOG[name], axes, anchor, instance_kind)
            served += [ServedModel(CATALOG[name], v) for v in extra]
        for one in served:
            target = Target(one.spec.name, one.variant, one.triton_model, one.spec.num_classes)
            if target not in targets:
                targets.append(target)
    return targets


def customize_profile(
    profile: Profile,
    users: Sequence[int] | None = None,
    window_s: float | None = None,
    warmup_s: float | None = None,
) -> Profile:
    """The profile with other closed-loop user counts (on every closed-loop path) or windows."""
    updates: dict[str, object] = {}
    if users:
        paths = list(dict.fromkeys((t.target, t.api) for t in profile.templates if t.loop == "closed"))
        closed = [
            PointTemplate(target=target, api=api, loop="closed", users=[n])
            for target, api in paths
            for n in users
        ]
        updates["templates"] = closed + [t for t in profile.templates if t.loop != "closed"]
    if window_s is not None:
        updates["window_s"] = window_s
    if warmup_s is not None:
        updates["warmup_s"] = warmup_s
    return profile.model_copy(update=updates) if updates else profile


def existing_serving(repository: Path, triton_model: str) -> ServingConfig | None:
    """The serving config the repository already holds for a model (e.g. one `deploylab tune` chose)."""
    manifest = read_manifest(model_dir(repository, triton_model))
    if manifest is None:
        return None
    try:
        return ServingConfig.from_record(manifest.serving)
    except ValueError:
        return None


def export_targets(
    targets: Sequence[Target], repository: Path, console: Console, instance_kind: InstanceKind = "cpu"
) -> None:
    """Export every target (unchanged models are skipped in a moment), with a progress bar.

    A model already in the repository keeps its serving config: the comparison measures what is
    deployed, and a tuned config is not silently reset to the defaults. New ones get `instance_kind`,
    except deployments whose engine runs on the CPU only (OpenVINO).
    """
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("export", total=len(targets))
        for target in targets:
            progress.update(task, description=f"export {target.triton_model}")

            def step(model: str, message: str) -> None:
                progress.update(task, description=f"export {model}: {message}")

            spec = CATALOG[target.model]
            on_cuda = spec.variant(target.variant).engine == "onnxruntime"
            kind: InstanceKind = instance_kind if on_cuda else "cpu"
            serving = existing_serving(repository, target.triton_model) or default_serving(
                target.triton_model, kind
            )
            options = ExportOptions(serving=serving)
            outcome = export_model(spec, target.variant, repository, options, step)
            progress.console.print(f"{target.triton_model}: {outcome.status}")
            progress.advance(task)


@dataclass
class RunRequest:
    targets: list[Target]
    profile: Profile
    repository: Path
    out: Path
    endpoints: Endpoints | None = None  # None: start Triton + gateway for the run
    workers: int = 0
    stop_timeout_s: float = 10.0
    inprocess: bool = True
    report: bool = True
    objective: Objective = field(default_factory=lambda: DEFAULT_OBJECTIVE.model_copy())
    settings: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    status: str
    report: ReportFiles | None
    interrupted: bool
    error: str | None = None


@contextlib.contextmanager
def endpoints_for(request: RunRequest, run_dir: Path, console: Console) -> Iterator[Endpoints]:
    if request.endpoints is not None:
        yield request.endpoints
        return
    names = [t.triton_model for t in request.targets]
    console.print(f"starting Triton ({len(names)} models) and the gateway (logs: {run_dir / 'logs'}) …")
    with serving_stack(request.repository, names, run_dir) as endpoints:
        console.print(f"serving: gateway {endpoints.gateway_url}, Triton {endpoints.triton_url}")
        yield endpoints
    console.print("stopped Triton and the gateway")


def run_loadtest(request: RunRequest, console: Console) -> RunOutcome:
    """Serve (unless endpoints were given), sweep, and render the report; Ctrl-C keeps partial results."""
    run_dir = new_run_dir(request.out)
    console.print(f"results: {run_dir}")
    interrupted = False
    status = "failed"
    error = None
    try:
        with endpoints_for(request, run_dir, console) as endpoints:
            config = SweepConfig(
                targets=request.targets,
                profile=request.profile,
                endpoints=endpoints,
                repository=request.repository,
                run_dir=run_dir,
                workers=request.workers,
                stop_timeout_s=request.stop_timeout_s,
                inprocess=request.inprocess,
                objective=request.objective,
                settings=request.settings,
            )
            status = run_sweep(config, SweepDisplay(console)).status
    except KeyboardInterrupt:
        interrupted, status = True, "interrupted"
        console.print(
            "[yellow]interrupted: stopped everything this run started; keeping partial results[/yellow]"
        )
    except (SweepError, GatewayStartError, TritonError) as exc:
        error = str(exc)
    report = None
    if request.report and (run_dir / "results.json").is_file():
        report = write_report(run_dir)
    return RunOutcome(run_dir, status, report, interrupted, error)


def profile_named(name: str, quick: bool) -> Profile:
    return get_profile("quick" if quick else name)
