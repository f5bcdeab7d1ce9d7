"""`deploylab chaos`: run the fault and overload scenarios against stacks it starts itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from deploylab.services.common.cli_errors import cli_errors
from rich.console import Console

console = Console(stderr=True)


@cli_errors
def chaos_command(
    model: Annotated[str, typer.Option(help="catalog model to serve (small ones keep runs short)")] = (
        "mobilenet_v3_small"
    ),
    repository: Annotated[
        Path, typer.Option("--repository", "-r", help="model repository (exported into if missing)")
    ] = Path("model_repository"),
    out: Annotated[Path, typer.Option(help="where chaos.json and chaos.md go")] = Path("results/chaos"),
    scenario: Annotated[
        list[str] | None,
        typer.Option(help="run only these (repeatable): overload, model_unload, gateway_sigterm, "
        "triton_kill, slow_backend"),
    ] = None,
    overload_s: Annotated[float, typer.Option(min=1.0, help="overload window")] = 8.0,
    factor: Annotated[float, typer.Option(min=1.0, help="offered load as a multiple of capacity")] = 4.0,
) -> None:
    """Kill Triton, unload a model, SIGTERM the gateway, stall the backend and overload it — under load,
    counting every request — then write the table (faults, sent/answered, errors by class, recovery)."""
    from .report import write_report
    from .runner import SCENARIOS, ChaosPlan, run_chaos
    from .scenarios import OverloadPlan, ScenarioResult

    plan = ChaosPlan(
        model=model,
        repository=repository,
        scenarios=tuple(scenario) if scenario else SCENARIOS,
        overload=OverloadPlan(factor=factor, overload_s=overload_s),
    )

    def show(result: ScenarioResult) -> None:
        verdict = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
        console.print(f"{verdict} {result.name}: {result.fault}")
        for check in result.checks:
            mark = "  ok " if check.passed else "  [red]!![/red] "
            console.print(f"{mark}{check.name}: {check.observed}")

    console.print(f"chaos: {', '.join(plan.scenarios)} on {model} (real Triton + gateway processes) …")
    results = run_chaos(plan, on_result=show)
    json_path, md_path = write_report(results, out, {"model": model, "scenarios_run": list(plan.scenarios)})
    console.print(f"wrote {json_path} and {md_path}")
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the chaos command."""
    app.command("chaos")(chaos_command)
