"""Every PromQL query the committed dashboards send, in a form Prometheus itself can run.

Grafana fills template variables before querying; `concrete()` does the same with the values a
dashboard shows by default ("All" → `.*`, `$__rate_interval` → 1m), so tests can check each query
with promtool and against a live Prometheus exactly as Grafana would send it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .queries import GPU_METRIC_PREFIX
from .render import DASHBOARD_DIR

#: Grafana's built-in interval variables, as they resolve for a 5 s scrape interval and short ranges.
BUILTIN_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str
    source: str  # "panel", "annotation" or "variable"
    title: str
    expr: str

    @property
    def gpu_only(self) -> bool:
        """Triton exports nv_gpu_* only when it sees a GPU: such queries may be empty on a CPU host."""
        return GPU_METRIC_PREFIX in self.expr

    def concrete(self) -> str:
        expr = self.expr
        for name, value in BUILTIN_VARIABLES.items():
            expr = expr.replace(name, value)
        return re.sub(r"\$[a-z_]+", ".*", expr)  # dashboard variables at "All"


def dashboard_queries(directory: Path = DASHBOARD_DIR) -> Iterator[DashboardQuery]:
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text())
        name = board["uid"]
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield DashboardQuery(name, "panel", f"{panel['title']} [{target['refId']}]", target["expr"])
        for annotation in board.get("annotations", {}).get("list", []):
            if "expr" in annotation:
                yield DashboardQuery(name, "annotation", annotation["name"], annotation["expr"])
        for variable in board.get("templating", {}).get("list", []):
            match = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable.get("query", ""))
            if match:  # Grafana asks for the series of the metric, then reads the label
                yield DashboardQuery(name, "variable", variable["name"], match.group(1))
