"""`write_report(run_dir)`: results.json in, report.html + report.md (+ plots/*.png) out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .csv_files import write_csv_files
from .document import build_content
from .html_report import render_html
from .markdown_report import PLOTS_DIR, plot_path, render_markdown
from .plots import Plot
from .results import load_results

HTML_FILENAME = "report.html"
MARKDOWN_FILENAME = "report.md"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    plots: list[Path]


def _write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    tmp.replace(path)


def write_report(run_dir: Path) -> ReportFiles:
    """Render the run's report next to its results (CSV files are refreshed too)."""
    results = load_results(run_dir)
    content = build_content(results)
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
    return ReportFiles(html_path, md_path, plot_files)
