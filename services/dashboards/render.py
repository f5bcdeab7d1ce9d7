"""Render every dashboard to the JSON Grafana provisions, and compare it with what is committed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from . import comparison, loadtest, overview, triton

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"

#: File name under deploy/grafana/dashboards/ → builder.
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "overview.json": overview.build,
    "triton.json": triton.build,
    "comparison.json": comparison.build,
    "loadtest.json": loadtest.build,
}


def render_dashboard(builder: Callable[[], Dashboard]) -> str:
    """The dashboard as stable JSON text: sorted keys, numbered panels, trailing newline."""
    model = json.loads(json.dumps(builder().build(), cls=JSONEncoder))
    for panel_id, panel in enumerate(model["panels"], start=1):
        panel["id"] = panel_id  # Grafana needs unique ids; the SDK leaves rows at 0 and panels unset
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def render_all() -> dict[str, str]:
    return {name: render_dashboard(builder) for name, builder in DASHBOARDS.items()}


def write_all(directory: Path = DASHBOARD_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def stale_files(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Names whose committed JSON differs from the generated JSON (missing files included)."""
    stale = []
    for name, text in render_all().items():
        path = directory / name
        if not path.is_file() or path.read_text() != text:
            stale.append(name)
    return stale
