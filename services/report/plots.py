"""The report's figures (matplotlib, rendered to PNG bytes so the HTML can embed them).

Every figure says in its caption which loop its points come from. A figure without data is left out
rather than drawn empty.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: figures only ever go to files

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
from matplotlib.figure import Figure  # noqa: E402

from .analysis import best_served, closed_points, inprocess_best, ramps_of, served_models  # noqa: E402
from .results import LOOP_LABELS, RunResults  # noqa: E402

DPI = 110


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    caption: str
    png: bytes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def throughput_latency(results: RunResults) -> Plot | None:
    figure, axis = plt.subplots(figsize=(8, 5))
    drawn = False
    for index, model in enumerate(served_models(results)):
        color = f"C{index % 10}"
        for (target, api), style in ((("gateway", "classify"), "-o"), (("triton", "v2"), "--s")):
            points = [p for p in closed_points(results, model, target, api) if p.latency_ms.p95 is not None]
            if not points:
                continue
            drawn = True
            xs = [p.throughput_rps for p in points]
            ys = [p.latency_ms.p95 or 0.0 for p in points]
            axis.plot(xs, ys, style, color=color, label=f"{model} ({target} {api})", markersize=4)
            for p, x, y in zip(points, xs, ys, strict=True):
                axis.annotate(str(p.users), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    if not drawn:
        plt.close(figure)
        return None
    axis.set_xlabel("throughput (req/s)")
    axis.set_ylabel("p95 latency (ms)")
    axis.set_xscale("log")  # the zoo spans two orders of magnitude
    axis.set_yscale("log")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return Plot(
        "throughput-latency",
        "Throughput vs latency",
        f"{LOOP_LABELS['closed']}: each marker is one point, labelled with its users. "
        "Solid: classify through the gateway; dashed: v2 straight to Triton. Up and to the left is worse.",
        _png(figure),
    )


def ramp_curves(results: RunResults) -> Plot | None:
    ramps = [r for model in served_models(results) for r in ramps_of(results, model)]
    if not ramps:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for index, ramp in enumerate(ramps):
        users = [s.users for s in ramp.steps]
        left.plot(
            users,
            [s.throughput_rps for s in ramp.steps],
            "-o",
            color=f"C{index % 10}",
            label=ramp.triton_model,
            markersize=4,
        )
        right.plot(
            users,
            [s.latency_ms.p95 or 0.0 for s in ramp.steps],
            "-o",
            color=f"C{index % 10}",
            label=ramp.triton_model,
            markersize=4,
        )
    for axis, label in ((left, "throughput (req/s)"), (right, "p95 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("concurrent users")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    left.legend(fontsize=7)
    return Plot(
        "ramp",
        "Step ramp",
        f"{LOOP_LABELS['ramp']}: throughput flattens at the knee while latency keeps growing.",
        _png(figure),
    )


def served_vs_inprocess(results: RunResults) -> Plot | None:
    models = served_models(results)
    series: dict[str, list[float]] = {
        "in-process ONNX Runtime": [],
        "in-process torch": [],
        "served: gateway classify": [],
        "served: Triton v2": [],
    }
    for model in models:
        ort, torch_best = (
            inprocess_best(results, model, "onnxruntime"),
            inprocess_best(results, model, "torch"),
        )
        gw, direct = (
            best_served(results, model, "gateway", "classify"),
            best_served(results, model, "triton", "v2"),
        )
        series["in-process ONNX Runtime"].append(ort.throughput_img_s if ort else 0.0)
        series["in-process torch"].append(torch_best.throughput_img_s if torch_best else 0.0)
        series["served: gateway classify"].append(gw.throughput_rps if gw else 0.0)
        series["served: Triton v2"].append(direct.throughput_rps if direct else 0.0)
    if not models or not any(v for values in series.values() for v in values):
        return None
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(models)), 4.5))
    width = 0.8 / len(series)
    for offset, (label, values) in enumerate(series.items()):
        axis.bar([i + offset * width for i in range(len(models))], values, width, label=label)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(models))])
    axis.set_xticklabels(models, rotation=20, ha="right", fontsize=8)
    axis.set_ylabel("images/s")
    axis.set_yscale("log")
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=7)
    return Plot(
        "served-vs-inprocess",
        "Served vs in-process throughput",
        f"Best in-process throughput (any batch size and layout, same threads) beside the best served "
        f"throughput ({LOOP_LABELS['closed']}, one image per request).",
        _png(figure),
    )


def triton_time(results: RunResults) -> Plot | None:
    rows = []
    for model in served_models(results):
        point = best_served(results, model, "gateway", "classify") or best_served(results, model)
        if point is not None and point.triton is not None and point.triton.compute_infer_ms is not None:
            rows.append((model, point))
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4))
    labels = [model for model, _ in rows]
    queue = [p.triton.queue_ms or 0.0 for _, p in rows if p.triton]
    compute = [p.triton.compute_infer_ms or 0.0 for _, p in rows if p.triton]
    axis.bar(labels, queue, label="queue")
    axis.bar(labels, compute, bottom=queue, label="compute (whole batch)")
    for index, (_, point) in enumerate(rows):
        batch = point.triton.avg_batch_size if point.triton else None
        top = queue[index] + compute[index]
        axis.annotate(
            f"{point.users}u, batch {batch or 0:.1f}", (index, top), ha="center", va="bottom", fontsize=7
        )
    axis.set_ylabel("ms per request (Triton)")
    axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    axis.legend(fontsize=7)
    return Plot(
        "triton-time",
        "Where a request's time goes inside Triton",
        f"At each model's peak-throughput point ({LOOP_LABELS['closed']}): queue vs compute per request, "
        "with the average executed batch size.",
        _png(figure),
    )


PLOTS: tuple[Callable[[RunResults], Plot | None], ...] = (
    throughput_latency,
    ramp_curves,
    served_vs_inprocess,
    triton_time,
)


def build_plots(results: RunResults) -> list[Plot]:
    return [plot for build in PLOTS if (plot := build(results)) is not None]
