"""The chaos table as JSON (for machines) and Markdown (for docs/reliability.md)."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .engine import ScenarioResult


def report_data(results: list[ScenarioResult], context: dict[str, Any]) -> dict[str, Any]:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        **context,
        "passed": all(r.passed for r in results),
        "scenarios": [r.as_dict() for r in results],
    }


def _errors(by_kind: dict[str, int]) -> str:
    errors = {k: n for k, n in by_kind.items() if k != "200"}
    return ", ".join(f"{k} x{n}" for k, n in errors.items()) or "none"


def render_markdown(data: dict[str, Any]) -> str:
    """The summary table, then each scenario's checks with what was observed."""
    lines = [
        f"Chaos run {data['created']} on {data['machine']['cpus']} CPUs "
        f"({data['machine']['platform']}), model `{data.get('model', '?')}`.",
        "",
        "| scenario | fault injected | faults | sent | answered | refused | lost | errors by class "
        "| worst recovery | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for s in data["scenarios"]:
        r = s["requests"]
        recovery = "n/a" if s["recovery_s"] is None else f"{s['recovery_s']:.2f} s"
        lines.append(
            f"| {s['name']} | {s['fault']} | {s['faults_injected']} | {r['sent']} | {r['answered']} "
            f"| {r['refused']} | {r['lost']} | {_errors(r['by_kind'])} | {recovery} "
            f"| {'pass' if s['passed'] else '**FAIL**'} |"
        )
    for s in data["scenarios"]:
        lines += ["", f"**{s['name']}**", ""]
        lines += [f"- {'✔' if c['passed'] else '✘'} {c['name']}: {c['observed']}" for c in s["checks"]]
    return "\n".join(lines) + "\n"


def write_report(results: list[ScenarioResult], out_dir: Path, context: dict[str, Any]) -> tuple[Path, Path]:
    """`chaos.json` and `chaos.md` in `out_dir`; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report_data(results, context)
    json_path, md_path = out_dir / "chaos.json", out_dir / "chaos.md"
    json_path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    md_path.write_text(render_markdown(data))
    return json_path, md_path
