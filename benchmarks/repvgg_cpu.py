"""RepVGG train vs deploy on this CPU, with ONNX Runtime's per-node profile to say why.

The paper's claim (deploy faster than train) was measured on GPUs, where three branches mean three
times the kernel launches and memory passes. On CPU, ONNX Runtime already fuses each Conv+BN, so the
train form is "3x3 conv + 1x1 conv + (identity) + adds" against one 3x3 conv: the 1x1 branch is
1/9 of the 3x3 FLOPs, and the extra cost is the Add nodes and the memory traffic of two more
feature maps. The profile splits the time per operator type so the difference has a name.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from deploylab.services.modelzoo.parity import random_batch
from deploylab.services.modelzoo.repository import INPUT_NAME, onnx_path
from deploylab.services.perf.inprocess import Layout, measure_inprocess

VARIANTS = ("repvgg_a0_train", "repvgg_a0_deploy")


def bench_repvgg(
    repository: Path,
    threads: int,
    duration_s: float,
    rounds: int,
    models: tuple[str, ...] = VARIANTS,
    profile_iterations: int = 20,
) -> dict[str, Any]:
    """Interleaved throughput (train, deploy, train, deploy …) and one per-op profile per form."""
    layouts = [Layout(1, threads)] + ([Layout(threads, 1)] if threads > 1 else [])
    measured: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    for _ in range(rounds):
        for model in models:
            measured_now = measure_inprocess(
                model, repository, "onnxruntime", batch_sizes=(1, 8), threads=threads, duration_s=duration_s,
                layouts=layouts,
            )  # fmt: skip
            measured[model] += [p.as_dict() for p in measured_now]
    summary: dict[str, Any] = {}
    for model, points in measured.items():
        best: dict[str, float | None] = {}
        for batch in (1, 8):
            at_batch = [p for p in points if p["batch_size"] == batch]
            best[f"b{batch}_best_img_s"] = round(statistics.median(_best_per_round(at_batch, rounds)), 1)
            single = [p["p50_ms"] for p in at_batch if p["sessions"] == 1]
            best[f"b{batch}_p50_ms"] = round(statistics.median(single), 3) if single else None
        summary[model] = best
    train, deploy = models[0], models[-1]
    ratios = {
        f"deploy_over_train_b{b}": round(
            summary[deploy][f"b{b}_best_img_s"] / summary[train][f"b{b}_best_img_s"], 3
        )
        for b in (1, 8)
    }
    profiles = {m: profile_ops(onnx_path(repository, m), profile_iterations) for m in models}
    return {"points": measured, "summary": summary, "ratios": ratios, "profiles": profiles}


def _best_per_round(points: list[dict[str, Any]], rounds: int) -> list[float]:
    per_round = max(1, len(points) // rounds)
    chunks = [points[i : i + per_round] for i in range(0, len(points), per_round)]
    return [max(p["throughput_img_s"] for p in chunk) for chunk in chunks if chunk]


def profile_ops(model_file: Path, iterations: int, batch_size: int = 1) -> dict[str, Any]:
    """ms per inference by operator type (ONNX Runtime's optimized graph, one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        batch = random_batch(batch_size, 224, seed=0)
        for _ in range(3):
            session.run(None, {INPUT_NAME: batch})
        for _ in range(iterations):
            session.run(None, {INPUT_NAME: batch})
        trace = Path(session.end_profiling())
        events = json.loads(trace.read_text())
    # Each run's node events; drop the 3 warm-up runs by keeping the last `iterations` run blocks.
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    cutoff = runs[-iterations]["ts"] if len(runs) >= iterations else 0
    per_op: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if event["ts"] < cutoff:
            continue
        op = event.get("args", {}).get("op_name", "?")
        per_op[op] += event["dur"] / 1000.0  # µs → ms
        nodes[op].add(event["name"])
    total = sum(per_op.values())
    table = {
        op: {"ms_per_run": round(ms / iterations, 3), "share": round(ms / total, 3), "nodes": len(nodes[op])}
        for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])
    }
    return {
        "batch_size": batch_size,
        "iterations": iterations,
        "total_ms_per_run": round(total / iterations, 3),
        "ops": table,
    }


def render_profile_table(profiles: dict[str, Any]) -> list[str]:
    """Markdown rows: op type, ms per run and node count for each form."""
    models = list(profiles)
    ops = sorted({op for p in profiles.values() for op in p["ops"]}, key=lambda op: -max(
        profiles[m]["ops"].get(op, {}).get("ms_per_run", 0.0) for m in models
    ))  # fmt: skip
    header = "| op type | " + " | ".join(f"{m} ms (nodes)" for m in models) + " |"
    lines = [header, "|---|" + "---|" * len(models)]
    for op in ops:
        cells = []
        for m in models:
            entry = profiles[m]["ops"].get(op)
            cells.append(f"{entry['ms_per_run']:.2f} ({entry['nodes']})" if entry else "–")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    totals = " | ".join(f"**{profiles[m]['total_ms_per_run']:.2f}**" for m in models)
    lines.append(f"| total | {totals} |")
    return lines
