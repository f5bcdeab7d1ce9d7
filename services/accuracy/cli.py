"""`deploylab accuracy MODEL --images DIR`: top-1 / top-5 of each exported variant on the user's images.

Registering it costs `deploylab --help` nothing: the engines (ONNX Runtime, OpenVINO) and the gateway's
preprocessing are imported when the command runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from deploylab.services.common.cli_errors import cli_errors
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


@cli_errors
def accuracy_command(
    model: Annotated[str, typer.Argument(help="catalog name (every exported variant is measured)")],
    images: Annotated[
        Path,
        typer.Option(help="class folders (DIR/LABEL/*.jpg) or a labels file (DIR/labels.csv: path,label)"),
    ],
    repository: Annotated[Path | None, typer.Option("--repository", "-r")] = None,
    out: Annotated[Path, typer.Option(help="JSON results directory")] = Path("results/accuracy"),
    run: Annotated[
        Path | None,
        typer.Option(help="also add the numbers to this comparison run's report (a results/<run> directory)"),
    ] = None,
) -> None:
    """Top-1 / top-5 accuracy of MODEL's exported variants on your labelled images.

    Labels are ImageNet-1k class indices (0-999) or class names. Images go through the gateway's
    preprocessing and each variant's model.onnx on the engine that serves it (ONNX Runtime or
    OpenVINO), so the numbers are those of the deployment; precision and engine come from its manifest.
    """
    from deploylab.services.runtime.settings import RuntimeSettings

    from .evaluate import measure_accuracy

    repo = repository or RuntimeSettings().model_repository
    results = measure_accuracy(model, images, repo, log=console.print, progress=_progress)
    table = Table(title=f"{model}: accuracy on {images}")
    for column in ("variant", "precision", "engine", "images", "top-1", "top-5"):
        table.add_column(column)
    for r in results:
        table.add_row(r.variant, r.precision, r.engine, str(r.images), f"{r.top1:.1%}", f"{r.top5:.1%}")
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{model}.json"
    record = {"model": model, "images": str(images), "results": [r.as_dict() for r in results]}
    path.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"results: {path}")
    if run is not None:
        from deploylab.services.report.writer import add_accuracy

        console.print(f"report: {add_accuracy(run, str(images), [r.as_dict() for r in results])}")


def _progress(name: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if done == total or done % 256 < 16:
            console.print(f"  {name}: {done}/{total}")

    return report


def register(app: typer.Typer) -> None:
    """Add the accuracy command."""
    app.command("accuracy")(accuracy_command)
