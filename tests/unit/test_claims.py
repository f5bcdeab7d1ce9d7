"""The claims logic on synthetic runs: each verdict says what was measured, including contradictions."""

from __future__ import annotations

import pytest

from services.modelzoo.catalog import resolve_triton_name
from services.report.claims import assess_speed, check_claims, describe_speedup, verdict_of
from services.report.results import (
    InProcessResult,
    LatencyMs,
    MachineInfo,
    ModelFacts,
    PairedBaseline,
    PointResult,
    RunResults,
)

DEFAULT_SET = (
    "resnet50",
    "vgg16",
    "mobilenet_v3_large",
    "convnext_tiny",
    "repvgg_a0_train",
    "repvgg_a0_deploy",
)


def facts(triton_model: str, params_scale: float = 1.0) -> ModelFacts:
    spec, variant = resolve_triton_name(triton_model)
    params = round(spec.variant(variant).expected_params * params_scale)
    return ModelFacts(
        triton_model=triton_model,
        model=spec.name,
        variant=variant,
        family=spec.family,
        params=params,
        gmacs=spec.reference_gmacs or 1.4,
        onnx_mb=params * 4 / 1e6,
        parity_max_abs_error=1e-6,
        reparam_max_abs_error=3e-8 if variant == "deploy" else None,
        reference_params=spec.variant(variant).expected_params,
        reference_gmacs=spec.reference_gmacs,
    )


def served(triton_model: str, users: int, p50_ms: float, rps: float) -> PointResult:
    spec, variant = resolve_triton_name(triton_model)
    return PointResult(
        id=f"{triton_model}/gateway-classify/closed-u{users}",
        model=spec.name,
        variant=variant,
        triton_model=triton_model,
        target="gateway",
        api="classify",
        loop="closed",
        users=users,
        warmup_s=1,
        window_s=10,
        requests=round(rps * 10),
        failures=0,
        throughput_rps=rps,
        latency_ms=LatencyMs(p50=p50_ms, p90=p50_ms, p95=p50_ms, p99=p50_ms, max=p50_ms),
    )


def inprocess(triton_model: str, p50_ms: float, img_s: float) -> list[InProcessResult]:
    common = {"model": triton_model, "engine": "onnxruntime", "batch_size": 1, "iterations": 100}
    return [
        InProcessResult(
            **common,
            threads=2,
            sessions=1,
            layout="1x2",
            throughput_img_s=1000 / p50_ms,
            p50_ms=p50_ms,
            p90_ms=p50_ms,
            p99_ms=p50_ms,
        ),
        InProcessResult(
            **common,
            threads=1,
            sessions=2,
            layout="2x1",
            throughput_img_s=img_s,
            p50_ms=2 * p50_ms,
            p90_ms=2 * p50_ms,
            p99_ms=2 * p50_ms,
        ),
    ]


def run(cost_ms: dict[str, float], params_scale: float = 1.0) -> RunResults:
    """A run where each model's latency is `cost_ms` and its throughput follows from it."""
    results = RunResults(
        run_id="synthetic",
        profile="test",
        started_at="2026-01-01T00:00:00+00:00",
        machine=MachineInfo(cpu_model="test CPU", logical_cores=2),
    )
    for model, ms in cost_ms.items():
        results.models.append(facts(model, params_scale))
        results.points.append(served(model, 1, ms + 5.0, 1000 / (ms + 5.0)))
        results.points.append(served(model, 8, 8 * ms, 1000 / ms * 1.2))
        results.inprocess.extend(inprocess(model, ms, 1000 / ms * 1.4))
    return results


def claim(results: RunResults, key: str):  # noqa: ANN201 - the Claim type reads better inline
    return next(c for c in check_claims(results) if c.key == key)


BASE = {"resnet50": 40.0, "mobilenet_v3_large": 8.0, "convnext_tiny": 48.0, "repvgg_a0_train": 20.0}


def test_vgg_claim_is_confirmed_when_vgg_is_as_slow_as_its_compute() -> None:
    result = claim(run({**BASE, "vgg16": 40.0 * 3.78, "repvgg_a0_deploy": 15.0}), "vgg16-vs-resnet50")
    assert result.verdict == "confirmed"
    assert {c.quantity: c.assessment for c in result.comparisons}["parameters"] == "matches"
    latency = next(c for c in result.comparisons if c.quantity == "latency ratio, in-process")
    assert latency.textbook == pytest.approx(15.47 / 4.09)
    assert latency.measured == pytest.approx(3.78)
    assert "ResNet-50 vs VGG-16" in result.summary and "3.78× faster" in result.summary


def test_vgg_claim_is_partly_confirmed_when_slower_but_less_than_the_flops_say() -> None:
    result = claim(run({**BASE, "vgg16": 40.0 * 1.8}), "vgg16-vs-resnet50")
    assert result.verdict == "partly confirmed"
    speed = [c for c in result.comparisons if c.kind == "speed"]
    assert {c.assessment for c in speed if "in-process" in c.quantity} == {"holds, size differs"}


def test_mobilenet_faster_by_far_less_than_its_flops_is_partly_confirmed() -> None:
    result = claim(run({**BASE, "vgg16": 150.0}), "mobilenet-vs-resnet50")
    assert result.verdict == "partly confirmed"
    latency = next(c for c in result.comparisons if c.quantity == "latency ratio, in-process")
    assert latency.measured == pytest.approx(5.0) and latency.assessment == "holds, size differs"


def test_repvgg_deploy_no_faster_than_train_is_not_confirmed_and_says_so() -> None:
    result = claim(run({**BASE, "vgg16": 150.0, "repvgg_a0_deploy": 20.0}), "repvgg-deploy-vs-train")
    assert result.verdict == "not confirmed"
    assessments = {c.quantity: c.assessment for c in result.comparisons}
    assert assessments["parameters"] == "matches"
    assert assessments["max |Δ logits| deploy vs train"] == "matches"
    assert assessments["latency ratio, in-process"] == "contradicted"
    assert "1.00× faster" in result.summary


def test_repvgg_deploy_slower_than_train_reads_as_slower() -> None:
    result = claim(run({**BASE, "repvgg_a0_deploy": 25.0}), "repvgg-deploy-vs-train")
    assert result.verdict == "not confirmed"
    assert "1.25× slower" in result.summary


def test_repvgg_deploy_clearly_faster_is_confirmed() -> None:
    result = claim(run({**BASE, "repvgg_a0_deploy": 14.0}), "repvgg-deploy-vs-train")
    assert result.verdict == "confirmed"


@pytest.mark.parametrize(("convnext_ms", "verdict"), [(48.0, "confirmed"), (100.0, "not confirmed")])
def test_convnext_claim_is_one_of_similar_cost(convnext_ms: float, verdict: str) -> None:
    result = claim(run({**BASE, "convnext_tiny": convnext_ms}), "convnext-vs-resnet50")
    assert result.verdict == verdict


def test_claims_without_both_models_are_not_measured() -> None:
    verdicts = {c.key: c.verdict for c in check_claims(run({"mobilenet_v3_large": 8.0}))}
    assert verdicts == dict.fromkeys(verdicts, "not measured")
    assert len(verdicts) == 4


def test_facts_that_disagree_with_the_published_numbers_keep_a_claim_from_full_confirmation() -> None:
    results = run({**BASE, "vgg16": 40.0 * 3.78})
    results.models = [
        facts(m.triton_model, 1.2 if m.triton_model == "vgg16" else 1.0) for m in results.models
    ]
    result = claim(results, "vgg16-vs-resnet50")
    assert {c.quantity: c.assessment for c in result.comparisons}["parameters"] == "off"
    assert result.verdict == "partly confirmed"


@pytest.mark.parametrize(
    ("textbook", "measured", "assessment"),
    [
        (3.78, 3.0, "holds"),
        (3.78, 2.0, "holds, size differs"),
        (3.78, 1.02, "contradicted"),
        (3.78, 0.5, "contradicted"),
        (None, 1.2, "holds"),
        (None, 1.0, "contradicted"),
        (1.09, 0.9, "holds"),
        (1.09, 2.0, "contradicted"),
    ],
)
def test_assess_speed(textbook: float | None, measured: float, assessment: str) -> None:
    assert assess_speed(textbook, measured) == assessment


def test_verdict_needs_speed_data_and_reads_ratios_below_one_as_slower() -> None:
    assert verdict_of(()) == "not measured"
    assert describe_speedup(2.0) == "2.00× faster"
    assert describe_speedup(0.5) == "2.00× slower"


def test_equal_speed_everywhere_contradicts_every_claim_of_a_speed_difference() -> None:
    verdicts = {c.key: c.verdict for c in check_claims(run(dict.fromkeys(DEFAULT_SET, 10.0)))}
    assert verdicts == {
        "vgg16-vs-resnet50": "not confirmed",
        "mobilenet-vs-resnet50": "not confirmed",
        "repvgg-deploy-vs-train": "not confirmed",
        "convnext-vs-resnet50": "confirmed",  # that claim is one of similar cost
    }


def test_served_and_in_process_disagreeing_in_direction_is_inconclusive() -> None:
    results = run({**BASE, "repvgg_a0_deploy": 14.0})
    for point in results.points:  # served: the deploy form now answers slower than the train form
        if point.triton_model == "repvgg_a0_deploy":
            point.latency_ms.p50 = 60.0
            point.throughput_rps = 5.0
    result = claim(results, "repvgg-deploy-vs-train")
    assert result.verdict == "inconclusive"
    assert {c.quantity: c.assessment for c in result.comparisons}["latency ratio, served"] == "contradicted"


def test_interleaved_pair_measurement_replaces_the_separate_baselines() -> None:
    results = run({**BASE, "vgg16": 40.0, "repvgg_a0_deploy": 15.0})  # separate baselines: no difference
    results.paired.append(
        PairedBaseline(
            slow="vgg16",
            fast="resnet50",
            engine="onnxruntime",
            rounds=3,
            duration_s=1.0,
            latency_ratio=3.6,
            throughput_ratio=3.5,
            slow_p50_ms=[144.0] * 3,
            fast_p50_ms=[40.0] * 3,
            slow_img_s=[7.0] * 3,
            fast_img_s=[24.5] * 3,
        )
    )
    comparisons = {c.quantity: c for c in claim(results, "vgg16-vs-resnet50").comparisons}
    assert comparisons["latency ratio, in-process"].measured == 3.6
    assert comparisons["throughput ratio, in-process"].measured == 3.5
    assert "interleaved" in comparisons["latency ratio, in-process"].source
    assert comparisons["latency ratio, served"].measured == pytest.approx(1.0)  # served points unchanged
