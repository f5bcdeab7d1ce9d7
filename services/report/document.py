"""The report's content in reading order, independent of format: blocks the HTML and Markdown writers lay out.

The decision comes first (which deployment meets the objective, at what cost), then the cross-check
flags and the claims, then the evidence (tables and figures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .claims import Claim, check_claims
from .decision import decide
from .plots import Plot, build_plots
from .results import LOOP_LABELS, RunResults
from .tables import (
    Table,
    accuracy_table,
    build_tables,
    decision_lines,
    decision_table,
    deployments_table,
)

#: Reading order: ("table" | "plot", key). Claims and the flag banner come before these.
LAYOUT: tuple[tuple[str, str], ...] = (
    ("table", "deployments"),
    ("table", "facts"),
    ("table", "accuracy"),
    ("table", "latency"),
    ("plot", "throughput-latency"),
    ("table", "ramp"),
    ("plot", "ramp"),
    ("table", "server"),
    ("plot", "triton-time"),
    ("table", "checks"),
    ("table", "inprocess"),
    ("table", "paired"),
    ("table", "served-vs-inprocess"),
    ("plot", "served-vs-inprocess"),
    ("table", "gateway-overhead"),
    ("table", "repvgg"),
    ("table", "run"),
)


@dataclass(frozen=True)
class ReportContent:
    title: str
    decision: list[str]
    decision_table: Table
    summary: list[str]
    flags: list[str]
    claims: list[Claim]
    blocks: list[Table | Plot]
    notes: list[str] = field(default_factory=list)


def _features(results: RunResults) -> str:
    """The int8-relevant extensions, because they decide which precision and engine wins."""
    features = [f for f in results.machine.cpu_features if "vnni" in f or "amx" in f]
    return (
        f", {'/'.join(features)}"
        if features
        else (", no VNNI or AMX" if results.machine.cpu_features else "")
    )


def build_content(
    results: RunResults, accuracy: dict[str, Any] | None = None, k8s_dir: Path | None = None
) -> ReportContent:
    """The report's content; `accuracy` is the run's accuracy.json when one was measured, `k8s_dir` the
    kustomize overlay written for the decision."""
    decision = decide(results)
    lines = decision_lines(decision)
    if k8s_dir is not None:
        lines.append(f"Kubernetes, sized from these numbers: kubectl apply -k {k8s_dir}")
    tables = {t.key: t for t in build_tables(results)}
    tables["deployments"] = deployments_table(decision)
    if accuracy is not None:
        tables["accuracy"] = accuracy_table(accuracy)
    plots = {p.key: p for p in build_plots(results)}
    blocks: list[Table | Plot] = []
    for kind, key in LAYOUT:
        source: dict[str, Table] | dict[str, Plot] = tables if kind == "table" else plots
        if key in source:
            blocks.append(source[key])
    claims = check_claims(results)
    checked = len([p for p in results.points if p.checks]) + len([r for r in results.ramps if r.checks])
    flags = results.flagged()
    flagged = len({flag.split(": ")[0] for flag in flags})
    gpus = f", GPU {', '.join(results.machine.gpus)}" if results.machine.gpus else ", no GPU"
    summary = [
        f"Run {results.run_id}: {results.profile} profile, {results.status}, "
        f"{len(results.points)} points and {len(results.ramps)} ramps over {len(results.models)} models "
        f"on {results.machine.cpu_model} ({results.machine.logical_cores} cores{gpus}"
        f"{_features(results)}).",
        "Loops: " + "; ".join(f"{key} = {label}" for key, label in LOOP_LABELS.items()) + ".",
        f"Cross-checks: {checked - flagged} of {checked} windows agree with the gateway's and Triton's "
        "counters within 5%."
        if checked
        else "Cross-checks: no checked windows.",
    ]
    if results.status != "complete":
        summary.append(
            f"This run is {results.status}: the report covers the points finished before it stopped."
        )
    return ReportContent(
        title=f"deploylab comparison report — {results.run_id}",
        decision=lines,
        decision_table=decision_table(decision),
        summary=summary,
        flags=flags,
        claims=claims,
        blocks=blocks,
        notes=list(results.notes),
    )
