"""Every table of the report as data (title, note, columns, rows of strings); the writers only lay out.

Rows name the loop each number comes from, so a reader can't mistake a closed-loop latency at 16 users
for an open-loop one at a fixed arrival rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deploylab.services.measure.csv_files import all_points

from .analysis import (
    SERVED_PATHS,
    best_served,
    inprocess_batch1,
    inprocess_best,
    knee,
    ramps_of,
    ratio,
    served_models,
    single_user,
)
from .claims import Claim, format_value
from .decision import Decision, Ranked
from .results import LOOP_LABELS, MISMATCH_TOLERANCE, InProcessResult, PointResult, RunResults


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    note: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def millions(value: int | None) -> str:
    return "–" if value is None else f"{value / 1e6:.2f}M"


def times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def sci(value: float | None) -> str:
    return "–" if value is None else f"{value:.1e}"


def _rps(point: PointResult | None) -> float | None:
    return point.throughput_rps if point else None


def _img_s(result: InProcessResult | None) -> float | None:
    return result.throughput_img_s if result else None


def load_of(point: PointResult) -> str:
    if point.loop == "open":
        return f"{point.arrival_rate:g} req/s" if point.arrival_rate else "–"
    return f"{point.users} users" if point.users != 1 else "1 user"


def _table(key: str, title: str, note: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    return Table(key, title, note, tuple(columns), tuple(tuple(r) for r in rows))


def run_table(results: RunResults) -> Table:
    machine = results.machine
    libs = ", ".join(f"{k} {v}" for k, v in machine.libraries.items())
    rows = [
        ("run", f"{results.run_id} ({results.profile} profile, {results.status})"),
        ("started / duration", f"{results.started_at} / {num(results.duration_s, 0)} s"),
        (
            "CPU",
            f"{machine.cpu_model}: {machine.logical_cores} logical cores ({machine.usable_cores} usable); "
            f"{', '.join(machine.cpu_features) or 'no'} vector extensions",
        ),
        ("memory", f"{num(machine.memory_gb)} GiB"),
        ("GPU", ", ".join(machine.gpus) or "none"),
        ("OS / Python", f"{machine.os} / {machine.python}"),
        ("Locust", f"{results.settings.get('locust_workers', 0) or 'one local'} worker process(es)"),
        ("libraries", libs),
    ]
    return _table("run", "Run and machine", "Where and how these numbers were measured.", ("", ""), rows)


def facts_table(results: RunResults) -> Table:
    rows = []
    for m in results.models:
        serving = m.serving
        rows.append(
            (
                m.triton_model,
                m.family,
                millions(m.params),
                millions(m.reference_params),
                num(m.gmacs, 2),
                num(m.reference_gmacs, 2),
                num(m.onnx_mb, 1),
                sci(m.parity_max_abs_error),
                sci(m.reparam_max_abs_error),
                f"{serving.get('backend', '?')}, {serving.get('instance_count', '?')} inst, "
                f"max batch {serving.get('max_batch_size', '?')}",
            )
        )
    return _table(
        "facts",
        "Model facts",
        "Counted on the exported models beside the published numbers (torchvision model cards, RepVGG "
        "paper). Parity: max |torch − ONNX Runtime| on random batches; reparam: deploy vs train logits.",
        (
            "model",
            "family",
            "params",
            "published",
            "GMACs",
            "published",
            "ONNX MB",
            "parity",
            "reparam",
            "serving",
        ),
        rows,
    )


def latency_table(results: RunResults) -> Table:
    rows = []
    for p in sorted(
        results.points, key=lambda p: (served_models(results).index(p.triton_model), p.path, p.loop)
    ):
        rows.append(
            (
                p.triton_model,
                p.path,
                LOOP_LABELS[p.loop],
                load_of(p),
                num(p.throughput_rps),
                num(p.latency_ms.p50),
                num(p.latency_ms.p90),
                num(p.latency_ms.p95),
                num(p.latency_ms.p99),
                num(p.latency_ms.max),
                f"{p.failures}" + (f" (+{p.dropped_arrivals} dropped)" if p.dropped_arrivals else ""),
            )
        )
    return _table(
        "latency",
        "Latency percentiles",
        "Client-side response times (Locust), ms, over each measured window after a warm-up.",
        ("model", "path", "loop", "load", "req/s", "p50", "p90", "p95", "p99", "max", "failures"),
        rows,
    )


PIPELINED_NOTE = (
    " † pipelined instances (`export --pipeline`): Triton's compute for a batch is its staging and the wait "
    "for the previous batch, not the engine run, so Triton's columns understate; read the client and "
    "gateway numbers."
)


def server_table(results: RunResults) -> Table:
    pipelined = {m.triton_model for m in results.models if m.serving.get("pipeline")}
    rows = []
    for p in all_points(results):
        tr, gw = p.triton, p.gateway
        batches = " ".join(f"{b.batch_size}:{b.executions}" for b in tr.batches) if tr else "–"
        mark = "†" if p.triton_model in pipelined else ""
        rows.append(
            (
                p.triton_model,
                p.path,
                LOOP_LABELS[p.loop],
                load_of(p),
                num(tr.queue_ms, 2) + mark if tr else "–",
                num(tr.compute_infer_ms, 2) + mark if tr else "–",
                num(tr.avg_batch_size, 2) if tr else "–",
                batches,
                num(gw.preprocess_ms, 2) if gw else "–",
                num(gw.inference_ms, 2) if gw else "–",
                num(gw.request_ms, 2) if gw else "–",
            )
        )
    return _table(
        "server",
        "Server-side view",
        "Triton per request: queue and compute (a batched request is charged its batch's compute), average "
        "executed batch and executions per batch size (size:count). Gateway: mean preprocess, Triton round "
        "trip and whole request, ms. Ramp steps are read while users run (approximate)."
        + (PIPELINED_NOTE if pipelined else ""),
        (
            "model",
            "path",
            "loop",
            "load",
            "queue",
            "compute",
            "avg batch",
            "batches",
            "gw preprocess",
            "gw → Triton",
            "gw request",
        ),
        rows,
    )


def checks_table(results: RunResults) -> Table:
    rows = []
    entries: list[tuple[str, list]] = [(p.id, p.checks) for p in results.points]
    entries += [(r.id + " (whole ramp)", r.checks) for r in results.ramps]
    for point_id, checks in entries:
        by_source = {c.source: c for c in checks}
        gw, tr = by_source.get("gateway"), by_source.get("triton")
        locust = gw.locust if gw else tr.locust if tr else None
        worst = max((c.mismatch for c in checks), default=None)
        flagged = any(c.flagged for c in checks)
        rows.append(
            (
                point_id,
                num(locust),
                num(gw.server) if gw else "n/a",
                num(tr.server) if tr else "–",
                "–" if worst is None else f"{worst:.1%}",
                "MISMATCH" if flagged else "ok",
            )
        )
    return _table(
        "checks",
        "Cross-checks",
        f"Locust's count against the servers' counters over the same quiescent window: "
        f"deploylab_gateway_requests_total (all requests) and Triton's nv_inference_request_success "
        f"(Locust's successes). Over {MISMATCH_TOLERANCE:.0%} apart is flagged.",
        ("point", "Locust", "gateway", "Triton", "mismatch", "verdict"),
        rows,
    )


def inprocess_table(results: RunResults) -> Table:
    rows = [
        (
            r.model,
            r.engine,
            str(r.batch_size),
            r.layout,
            num(r.throughput_img_s),
            num(r.p50_ms, 2),
            num(r.p99_ms, 2),
            num(r.iterations),
        )
        for r in results.inprocess
    ]
    return _table(
        "inprocess",
        "In-process baselines",
        "The engine alone, same thread budget as the server, closed loop. Layout sessions×threads: "
        "1x2 is one session using both threads, 2x1 two single-thread sessions side by side.",
        ("model", "engine", "batch", "layout", "img/s", "p50 ms", "p99 ms", "calls"),
        rows,
    )


def paired_table(results: RunResults) -> Table:
    rows = []
    for p in results.paired:
        rows.append(
            (
                f"{p.slow} vs {p.fast}",
                f"{p.rounds} × {p.duration_s:g} s",
                " ".join(num(v) for v in p.slow_p50_ms),
                " ".join(num(v) for v in p.fast_p50_ms),
                times(p.latency_ratio),
                " ".join(num(v) for v in p.slow_img_s),
                " ".join(num(v) for v in p.fast_img_s),
                times(p.throughput_ratio),
            )
        )
    return _table(
        "paired",
        "Claim pairs, in-process and interleaved",
        "Each pair measured in alternating rounds (ONNX Runtime alone, same threads), so the machine's drift "
        "hits both sides of a round alike; ratios are medians of the per-round ratios. Latency: batch 1, "
        "one session of every thread; throughput: batch 1, single-thread sessions side by side.",
        (
            "pair (slow vs fast)",
            "rounds",
            "slow p50 ms",
            "fast p50 ms",
            "latency ratio",
            "slow img/s",
            "fast img/s",
            "throughput ratio",
        ),
        rows,
    )


def served_vs_inprocess_table(results: RunResults) -> Table:
    rows = []
    for model in served_models(results):
        engine_best = inprocess_best(results, model)
        torch_best = inprocess_best(results, model, "torch")
        ort_best = inprocess_best(results, model, "onnxruntime")
        for target, api in SERVED_PATHS:
            served = best_served(results, model, target, api)
            if served is None:
                continue
            rows.append(
                (
                    model,
                    f"{target} {api}",
                    f"{num(served.throughput_rps)} ({load_of(served)})",
                    f"{num(engine_best.throughput_img_s)} ({engine_best.engine}, b{engine_best.batch_size}, "
                    f"{engine_best.layout})"
                    if engine_best
                    else "–",
                    times(ratio(served.throughput_rps, _img_s(engine_best))),
                    times(ratio(_img_s(ort_best), _img_s(torch_best))),
                )
            )
    return _table(
        "served-vs-inprocess",
        "Served ÷ in-process",
        "Peak closed-loop throughput through each path (one image per request) against the engine's limit on "
        "the same cores. Below 1×: what serving costs; the client shares the cores too.",
        ("model", "path", "served req/s", "in-process best img/s", "served ÷ in-process", "ORT ÷ torch"),
        rows,
    )


def gateway_overhead_table(results: RunResults) -> Table:
    rows = []
    for model in served_models(results):
        direct = single_user(results, model, "triton", "v2")
        classify = single_user(results, model, "gateway", "classify")
        passthrough = single_user(results, model, "gateway", "v2")
        peak_direct = best_served(results, model, "triton", "v2")
        peak_classify = best_served(results, model, "gateway", "classify")
        if direct is None and classify is None:
            continue

        def p50(point: PointResult | None) -> float | None:
            return point.latency_ms.p50 if point else None

        def delta(a: float | None, b: float | None) -> str:
            return "–" if a is None or b is None else f"{a - b:+.1f}"

        rows.append(
            (
                model,
                num(p50(direct)),
                num(p50(passthrough)),
                num(p50(classify)),
                delta(p50(passthrough), p50(direct)),
                delta(p50(classify), p50(direct)),
                times(ratio(_rps(peak_classify), _rps(peak_direct))),
            )
        )
    return _table(
        "gateway-overhead",
        "Gateway overhead",
        "p50 ms at 1 user, closed loop. Triton direct and the gateway's v2 passthrough carry the same "
        "client-preprocessed tensor; classify sends a JPEG the gateway decodes and preprocesses. "
        "Last column: peak closed-loop throughput of classify through the gateway ÷ v2 straight to Triton.",
        ("model", "Triton v2", "gateway v2", "gateway classify", "passthrough Δ", "classify Δ", "peak ratio"),
        rows,
    )


def repvgg_table(results: RunResults) -> Table:
    rows = []
    for model in ("repvgg_a0_train", "repvgg_a0_deploy"):
        facts = results.facts_for(model)
        one = single_user(results, model, "gateway", "classify") or single_user(
            results, model, "triton", "v2"
        )
        peak = best_served(results, model)
        b1 = inprocess_batch1(results, model)
        best = inprocess_best(results, model)
        if facts is None and one is None:
            continue
        rows.append(
            (
                model,
                millions(facts.params) if facts else "–",
                num(facts.gmacs, 2) if facts else "–",
                num(facts.onnx_mb) if facts else "–",
                num(b1.p50_ms, 2) if b1 else "–",
                num(best.throughput_img_s) if best else "–",
                f"{num(one.latency_ms.p50)} ({one.path})" if one else "–",
                f"{num(peak.throughput_rps)} ({peak.path}, {load_of(peak)})" if peak else "–",
            )
        )
    return _table(
        "repvgg",
        "RepVGG-A0: train vs deploy form",
        "Same network before and after re-parameterization. In-process p50: ONNX Runtime batch 1; "
        "served p50: closed loop, 1 user; served peak: best closed-loop point.",
        (
            "model",
            "params",
            "GMACs",
            "ONNX MB",
            "in-process p50 ms",
            "in-process img/s",
            "served p50 ms",
            "served peak req/s",
        ),
        rows,
    )


def knee_text(step: PointResult | None) -> str:
    if step is None:
        return "–"
    return f"{step.users} users ({num(step.throughput_rps)} req/s, p95 {num(step.latency_ms.p95)} ms)"


def ramp_table(results: RunResults) -> Table:
    rows = []
    for model in served_models(results):
        for ramp in ramps_of(results, model):
            found = knee(ramp.steps)
            steps = ", ".join(
                f"{s.users}u {num(s.throughput_rps, 0)}/s p95 {num(s.latency_ms.p95, 0)}" for s in ramp.steps
            )
            rows.append(
                (
                    model,
                    f"{ramp.target} {ramp.api}",
                    steps,
                    knee_text(found),
                    "MISMATCH" if ramp.flags else "ok",
                )
            )
    return _table(
        "ramp",
        "Step ramp and knee",
        f"{LOOP_LABELS['ramp']}: each step's throughput and p95 (ms). Knee: the first step reaching 90% of "
        "the ramp's best throughput; beyond it more users add latency, not throughput. "
        "Cross-checked over the whole ramp.",
        ("model", "path", "steps (users, req/s, p95)", "knee", "check"),
        rows,
    )


def claim_table(claim: Claim) -> Table:
    """A claim's facts and ratios, each band beside the measured value (the statement sits above)."""
    rows = [
        (
            c.quantity,
            c.kind,
            c.says,
            c.band.describe(c.unit),
            format_value(c.measured, c.unit),
            c.assessment,
            c.source,
        )
        for c in claim.comparisons
    ]
    pair = claim.spec.pair
    return _table(
        f"claim-{claim.key}",
        claim.title,
        f"Ratios are {pair.slow_label} ÷ {pair.fast_label} (throughput: {pair.fast_label} ÷ "
        f"{pair.slow_label}), so above 1× means {pair.fast_label} is smaller or faster. A fact that fails "
        "refutes the claim; a ratio outside its band keeps it from confirmation.",
        ("quantity", "kind", "claim says", "band", "measured", "result", "measured how"),
        rows,
    )


def accuracy_table(record: dict[str, Any]) -> Table:
    """Top-1 / top-5 per deployment on the user's images (`deploylab accuracy --run`, compare --images)."""
    rows = tuple(
        (
            str(r["model"]),
            str(r["variant"]),
            str(r["precision"]),
            str(r["engine"]) + ("" if r.get("device", "cpu") == "cpu" else f" on {r['device']}"),
            str(r["images"]),
            f"{100 * float(r['top1']):.1f}%",
            f"{100 * float(r['top5']):.1f}%",
        )
        for r in record.get("results", [])
    )
    return Table(
        key="accuracy",
        title="Accuracy on your images",
        note=f"Images: {record.get('images', '?')}, through the gateway's preprocessing and each "
        "deployment's exported model. Random-init weights (the default) score near 0.1% top-1: export "
        "with --weights for real ones.",
        columns=("model", "variant", "precision", "engine", "images", "top-1", "top-5"),
        rows=rows,
    )


def _fidelity(item: Ranked) -> str:
    agreement = item.deployment.fidelity
    if item.deployment.precision == "fp32":
        return "reference (fp32)"
    return "not measured" if agreement is None else f"{100 * agreement:.0f}% top-1 agreement"


def _holds(item: Ranked) -> str:
    if item.capacity is None:
        best = f" (lowest p99 {num(item.lowest_p99_ms, 0)} ms)" if item.lowest_p99_ms else ""
        return f"never within the SLO{best}"
    return f"{num(item.rate)} req/s"


def decision_table(decision: Decision) -> Table:
    """The headline: every deployment, cheapest first, in the few columns a decision needs; GPU memory
    where a deployment held some."""
    goal = decision.objective
    on_gpu = any(item.gpu_memory_mib is not None for item in decision.ranked)
    rows = [
        (
            str(rank),
            item.deployment.triton_model,
            f"{item.deployment.precision}, {item.deployment.engine}",
            _holds(item),
            num(item.replicas),
            num(item.cpu_s_per_1k, 1),
            num(item.memory_mib, 0),
            *([gpu_memory(item)] if on_gpu else []),
            _fidelity(item),
        )
        for rank, item in enumerate(decision.ranked, start=1)
    ]
    return _table(
        "decision",
        f"Decision: p99 ≤ {goal.slo_p99_ms:g} ms at {goal.target_rps:g} req/s",
        "One replica is the stack measured here (gateway + Triton on this machine). Holds: the highest "
        "rate it served with p99 within the SLO and under 1% failures, on the client path. Replicas: "
        "for the target rate. CPU: seconds the serving processes spent per 1,000 requests at that rate. "
        "Fidelity: against the same model's fp32 form, on held-out photos; models differ in accuracy "
        "themselves."
        + (
            " GPU MiB: device memory one replica's processes hold at that rate, of what the GPUs have "
            "(NVML; \"all processes\" where the driver lists PIDs of another namespace)."
            if on_gpu
            else ""
        ),
        (
            "#",
            "deployment",
            "precision, engine",
            "holds",
            "replicas",
            "CPU s / 1k req",
            "MiB / replica",
            *(["GPU MiB / replica"] if on_gpu else []),
            "fidelity",
        ),
        rows,
    )


def deployments_table(decision: Decision) -> Table:
    """The decision's evidence: where each capacity comes from and what one replica uses there."""
    rows = []
    for item in decision.ranked:
        point = item.capacity
        rows.append(
            (
                item.deployment.triton_model,
                item.deployment.layout,
                item.path,
                f"{point.loop}, {load_of(point)}" if point else "–",
                num(point.latency_ms.p99, 0) if point else "–",
                num(item.cores, 2),
                num(item.gib_s_per_1k, 2),
            )
        )
    return _table(
        "deployments",
        "Deployments: where each capacity was measured",
        "The point behind each capacity (closed loop, ramp step or open loop), its p99, the cores the "
        "serving processes kept busy there, and memory held for the time 1,000 requests take. Memory is "
        "the gateway, Triton and the model's own backend instances (a native backend's models share "
        "Triton's process and are charged together). Empty cells: the run did not measure the serving "
        "processes (servers started elsewhere).",
        ("deployment", "serving layout", "path", "capacity point", "p99 ms", "cores", "GiB·s / 1k req"),
        rows,
    )


def decision_lines(decision: Decision) -> list[str]:
    """The decision in sentences: what to deploy, how many, and the full-fidelity alternative."""
    goal = decision.objective
    chosen = decision.chosen
    if chosen is None:
        return [
            f"No measured deployment holds p99 ≤ {goal.slo_p99_ms:g} ms on this machine: relax the SLO "
            "(deploylab report RUN --slo-p99-ms X), or measure faster deployments (--axes)."
        ]
    lines = [_choice("Deploy", chosen, goal.target_rps)]
    exact = decision.chosen_at_full_fidelity
    if exact is not None and exact is not chosen:
        lines.append(_choice("At full fidelity (fp32)", exact, goal.target_rps))
    return lines


def gpu_memory(item: Ranked, unit: str = "") -> str:
    """`1,728 of 81,559` (the replica's GPU memory of the GPUs' total, then `unit`), or a dash."""
    cost = item.cost
    if cost is None or cost.gpu_memory_mib is None:
        return "–"
    total = f" of {num(cost.gpu_total_mib, 0)}" if cost.gpu_total_mib else ""
    scope = " (all processes)" if cost.gpu_memory_scope == "devices" else ""
    return f"{num(cost.gpu_memory_mib, 0)}{total}{unit}{scope}"


def _choice(lead: str, item: Ranked, target_rps: float) -> str:
    cpu = f", {num(item.cpu_s_per_1k, 1)} CPU s per 1,000 requests" if item.cpu_s_per_1k is not None else ""
    if item.gpu_memory_mib is not None:
        cpu += f", {gpu_memory(item, ' MiB')} of GPU memory"
    fidelity = "" if item.deployment.fidelity is None else f"; fidelity {_fidelity(item)}"
    return (
        f"{lead}: {item.deployment.triton_model} ({item.deployment.precision}, {item.deployment.engine}) "
        f"— {item.replicas} replica(s) for {target_rps:g} req/s, each holding {num(item.rate)} req/s "
        f"within the SLO{cpu}{fidelity}."
    )


def build_tables(results: RunResults) -> list[Table]:
    return [
        run_table(results),
        facts_table(results),
        latency_table(results),
        server_table(results),
        checks_table(results),
        inprocess_table(results),
        paired_table(results),
        served_vs_inprocess_table(results),
        gateway_overhead_table(results),
        repvgg_table(results),
        ramp_table(results),
    ]
