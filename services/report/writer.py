"""`write_report(run_dir)`: results.json in, report.html + report.md (+ plots/*.png) out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from deploylab.services.measure.csv_files import write_csv_files

from .decision import decide
from .document import build_content
from .html_report import render_html
from .k8s_patch import write_k8s_patch
from .markdown_report import PLOTS_DIR, plot_path, render_markdown
from .plots import Plot
from .results import Objective, load_results, save_results

HTML_FILENAME = "report.html"
#: Written by `deploylab accuracy --run DIR` (and compare --images); the report shows it when present.
ACCURACY_FILENAME = "accuracy.json"
MARKDOWN_FILENAME = "report.md"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    plots: list[Path]
    k8s: Path | None = None  # the kustomize overlay for the chosen deployment, when one meets the SLO


def _write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    tmp.replace(path)


def write_report(run_dir: Path, objective: Objective | None = None) -> ReportFiles:
    """Render the run's report next to its results (CSV files are refreshed too), and the kustomize
    overlay of its decision. A new `objective` is kept in results.json, so the report, the overlay and
    later re-renders agree."""
    results = load_results(run_dir)
    if objective is not None and objective != results.objective:
        results.objective = objective
        save_results(results, run_dir)
    accuracy_file = run_dir / ACCURACY_FILENAME
    accuracy = json.loads(accuracy_file.read_text()) if accuracy_file.is_file() else None
    k8s = write_k8s_patch(run_dir, results, decide(results))
    content = build_content(results, accuracy, k8s_dir=k8s)
    write_csv_files(results, run_dir)
    plots_dir = run_dir / PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    plot_files = []
    for block in content.blocks:
        if isinstance(block, Plot):
            path = run_dir / plot_path(block)
            _write(path, block.png)
            plot_files.append(path)
    html_path, md_path = run_dir / HTML_FILENAME, run_dir / MARKDOWN_FILENAME
    _write(html_path, render_html(content))
    _write(md_path, render_markdown(content))
    return ReportFiles(html_path, md_path, plot_files, k8s)


def add_accuracy(run_dir: Path, images: str, rows: list[dict[str, object]]) -> Path:
    """Merge accuracy rows (model, variant, precision, engine, device, images, top1, top5) into the run's
    accuracy.json, replacing rows of the same deployment on the same device, and re-render the report;
    its HTML path."""
    path = run_dir / ACCURACY_FILENAME
    record = json.loads(path.read_text()) if path.is_file() else {"results": []}
    fresh = {_deployment_key(r) for r in rows}
    kept = [r for r in record["results"] if _deployment_key(r) not in fresh]
    _write(path, json.dumps({"images": images, "results": kept + rows}, indent=2) + "\n")
    return write_report(run_dir).html


def _deployment_key(row: dict[str, object]) -> tuple[object, ...]:
    """One deployment on one device (rows written before the device was recorded ran on the CPU)."""
    return row["model"], row["precision"], row["engine"], row.get("device", "cpu")
