"""The claims runner on synthetic runs: each verdict follows the rule, including contradictions."""

from __future__ import annotations

import pytest
from deploylab.services.modelzoo.catalog import resolve_triton_name
from deploylab.services.report.claims import (
    ABOUT_THE_SAME,
    CLAIM_PAIRS,
    CLAIMS,
    FASTER,
    QUANTITIES,
    SEVERAL_TIMES,
    SPEED_QUANTITIES,
    VERDICT_RULES,
    Band,
    Claim,
    ClaimSpec,
    Comparison,
    Kind,
    Pair,
    check_claims,
    describe_speedup,
    published_fact,
    speed,
    verdict_of,
)
from deploylab.services.report.results import (
    INTERLEAVED_PAIRS,
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


def claim(results: RunResults, key: str) -> Claim:
    return next(c for c in check_claims(results) if c.key == key)


def paired(slow: str, fast: str, ratio: float) -> PairedBaseline:
    """An interleaved in-process measurement whose latency and throughput ratios are both `ratio`."""
    return PairedBaseline(
        slow=slow,
        fast=fast,
        engine="onnxruntime",
        rounds=3,
        duration_s=1.0,
        latency_ratio=ratio,
        throughput_ratio=ratio,
        slow_p50_ms=[10.0 * ratio] * 3,
        fast_p50_ms=[10.0] * 3,
        slow_img_s=[100.0] * 3,
        fast_img_s=[100.0 * ratio] * 3,
    )


def assessments(result: Claim) -> dict[str, str]:
    return {c.quantity: c.assessment for c in result.comparisons}


def ratio_assessments(result: Claim) -> set[str]:
    return {c.assessment for c in result.comparisons if c.kind == "ratio"}


BASE = {"resnet50": 40.0, "mobilenet_v3_large": 8.0, "convnext_tiny": 48.0, "repvgg_a0_train": 20.0}


def test_vgg_several_times_slower_is_confirmed() -> None:
    result = claim(run({**BASE, "vgg16": 40.0 * 3.78, "repvgg_a0_deploy": 15.0}), "vgg16-vs-resnet50")
    assert result.verdict == "confirmed"
    assert assessments(result)["parameters"] == "holds"
    latency = next(c for c in result.comparisons if c.quantity == "latency ratio, in-process")
    assert latency.band == SEVERAL_TIMES and latency.says == '"several times slower"'
    assert latency.measured == pytest.approx(3.78) and latency.assessment == "inside"
    assert "ResNet-50 vs VGG-16" in result.summary and "3.78× faster" in result.summary


def test_vgg_only_1_06_times_slower_refutes_several_times_slower() -> None:
    result = claim(run({**BASE, "vgg16": 40.0 * 1.06}), "vgg16-vs-resnet50")
    assert result.verdict == "refuted"
    assert ratio_assessments(result) == {"outside"}


def test_vgg_slower_but_not_several_times_is_refuted() -> None:
    result = claim(run({**BASE, "vgg16": 40.0 * 1.8}), "vgg16-vs-resnet50")
    assert result.verdict == "refuted"


def test_vgg_several_times_slower_served_but_1_06_in_process_is_only_partly_confirmed() -> None:
    results = run({**BASE, "vgg16": 40.0 * 3.78})
    results.paired.append(paired("vgg16", "resnet50", 1.06))
    result = claim(results, "vgg16-vs-resnet50")
    assert result.verdict == "partly confirmed"
    found = assessments(result)
    assert found["latency ratio, in-process"] == found["throughput ratio, in-process"] == "outside"
    assert found["latency ratio, served"] == found["throughput ratio, served"] == "inside"


def test_mobilenet_several_times_faster_is_confirmed_even_far_below_its_compute_ratio() -> None:
    result = claim(run({**BASE, "vgg16": 150.0}), "mobilenet-vs-resnet50")
    assert result.verdict == "confirmed"
    latency = next(c for c in result.comparisons if c.quantity == "latency ratio, in-process")
    assert latency.measured == pytest.approx(5.0) and latency.assessment == "inside"


@pytest.mark.parametrize(("convnext_ms", "verdict"), [(48.0, "confirmed"), (40.0 * 1.33, "refuted")])
def test_convnext_claim_is_one_of_about_the_same_speed(convnext_ms: float, verdict: str) -> None:
    result = claim(run({**BASE, "convnext_tiny": convnext_ms}), "convnext-vs-resnet50")
    assert all(c.band == ABOUT_THE_SAME for c in result.comparisons if c.kind == "ratio")
    assert result.verdict == verdict


def test_convnext_1_33_times_slower_in_process_is_not_confirmed() -> None:
    results = run(BASE)  # served: 1.18×, inside 0.80–1.25×
    results.paired.append(paired("convnext_tiny", "resnet50", 1.33))
    result = claim(results, "convnext-vs-resnet50")
    assert result.verdict == "partly confirmed"
    assert assessments(result)["latency ratio, in-process"] == "outside"


def test_repvgg_deploy_no_faster_than_train_is_refuted_and_says_so() -> None:
    result = claim(run({**BASE, "vgg16": 150.0, "repvgg_a0_deploy": 20.0}), "repvgg-deploy-vs-train")
    assert result.verdict == "refuted"
    found = assessments(result)
    assert found["parameters"] == found["max |Δ logits| deploy vs train"] == "holds"
    assert found["latency ratio, in-process"] == "outside"
    assert "1.00× faster" in result.summary


def test_repvgg_deploy_slower_than_train_reads_as_slower() -> None:
    result = claim(run({**BASE, "repvgg_a0_deploy": 25.0}), "repvgg-deploy-vs-train")
    assert result.verdict == "refuted"
    assert "1.25× slower" in result.summary


def test_repvgg_deploy_clearly_faster_is_confirmed() -> None:
    result = claim(run({**BASE, "repvgg_a0_deploy": 14.0}), "repvgg-deploy-vs-train")
    assert result.verdict == "confirmed"
    assert all(c.band == FASTER for c in result.comparisons if c.kind == "ratio")


def test_a_failed_reparameterization_fact_refutes_the_claim_however_fast_the_deploy_form() -> None:
    results = run({**BASE, "repvgg_a0_deploy": 14.0})
    deploy = results.facts_for("repvgg_a0_deploy")
    assert deploy is not None
    deploy.reparam_max_abs_error = 1e-3  # the fused form no longer computes the same function
    result = claim(results, "repvgg-deploy-vs-train")
    assert assessments(result)["max |Δ logits| deploy vs train"] == "fails"
    assert ratio_assessments(result) == {"inside"}
    assert result.verdict == "refuted"


def test_parameters_that_disagree_with_the_published_numbers_refute_the_claim() -> None:
    results = run({**BASE, "vgg16": 40.0 * 3.78})
    results.models = [
        facts(m.triton_model, 1.2 if m.triton_model == "vgg16" else 1.0) for m in results.models
    ]
    result = claim(results, "vgg16-vs-resnet50")
    assert assessments(result)["parameters"] == "fails"
    assert ratio_assessments(result) == {"inside"}
    assert result.verdict == "refuted"


def test_equal_speed_everywhere_refutes_every_claim_of_a_speed_difference() -> None:
    verdicts = {c.key: c.verdict for c in check_claims(run(dict.fromkeys(DEFAULT_SET, 10.0)))}
    assert verdicts == {
        "vgg16-vs-resnet50": "refuted",
        "mobilenet-vs-resnet50": "refuted",
        "repvgg-deploy-vs-train": "refuted",
        "convnext-vs-resnet50": "confirmed",  # that claim is one of about the same speed
    }


def test_served_and_in_process_disagreeing_is_partly_confirmed() -> None:
    results = run({**BASE, "repvgg_a0_deploy": 14.0})
    for point in results.points:  # served: the deploy form now answers slower than the train form
        if point.triton_model == "repvgg_a0_deploy":
            point.latency_ms.p50 = 60.0
            point.throughput_rps = 5.0
    result = claim(results, "repvgg-deploy-vs-train")
    assert result.verdict == "partly confirmed"
    assert assessments(result)["latency ratio, served"] == "outside"


def test_claims_without_both_models_are_not_measured() -> None:
    verdicts = {c.key: c.verdict for c in check_claims(run({"mobilenet_v3_large": 8.0}))}
    assert verdicts == dict.fromkeys(verdicts, "not measured")
    assert len(verdicts) == len(CLAIMS)


def test_missing_ratios_keep_a_claim_from_confirmation() -> None:
    results = run({**BASE, "vgg16": 40.0 * 3.78})
    results.inprocess = []  # served ratios only, all inside the band
    result = claim(results, "vgg16-vs-resnet50")
    assert assessments(result)["latency ratio, in-process"] == "not measured"
    assert assessments(result)["latency ratio, served"] == "inside"
    assert result.verdict == "partly confirmed"


def test_missing_facts_keep_a_claim_from_confirmation() -> None:
    results = run({**BASE, "repvgg_a0_deploy": 14.0})
    deploy = results.facts_for("repvgg_a0_deploy")
    assert deploy is not None
    deploy.reparam_max_abs_error = None  # the export recorded no re-parameterization check
    result = claim(results, "repvgg-deploy-vs-train")
    assert assessments(result)["max |Δ logits| deploy vs train"] == "not measured"
    assert result.verdict == "partly confirmed"


def comparison(kind: Kind, measured: float | None) -> Comparison:
    return Comparison("q", Band(1.0, 2.0), "says", None, measured, "test", kind)


@pytest.mark.parametrize(
    ("facts", "ratios", "verdict"),
    [
        ((1.5,), (1.5, 1.5), "confirmed"),
        ((1.5,), (1.5, 3.0), "partly confirmed"),
        ((1.5,), (1.5, None), "partly confirmed"),
        ((None,), (1.5, 1.5), "partly confirmed"),
        ((1.5,), (3.0, 3.0), "refuted"),
        ((1.5,), (3.0, None), "refuted"),
        ((3.0,), (1.5, 1.5), "refuted"),
        ((3.0,), (None, None), "refuted"),
        ((1.5,), (None, None), "not measured"),
        ((), (), "not measured"),
    ],
)
def test_verdict_rule(
    facts: tuple[float | None, ...], ratios: tuple[float | None, ...], verdict: str
) -> None:
    comparisons = [comparison("fact", v) for v in facts] + [comparison("ratio", v) for v in ratios]
    assert verdict_of(comparisons) == verdict
    assert verdict in VERDICT_RULES


def test_bands_include_their_ends_and_describe_themselves() -> None:
    assert ABOUT_THE_SAME.contains(0.8) and ABOUT_THE_SAME.contains(1.25)
    assert not ABOUT_THE_SAME.contains(1.33) and not ABOUT_THE_SAME.contains(0.79)
    assert SEVERAL_TIMES.contains(2.5) and not SEVERAL_TIMES.contains(1.06)
    assert ABOUT_THE_SAME.describe() == "0.80–1.25×"
    assert SEVERAL_TIMES.describe() == "≥ 2.50×"
    assert Band(high=1e-4).describe("absolute") == "≤ 1.0e-04"
    with pytest.raises(ValueError, match="at least one end"):
        Band()
    with pytest.raises(ValueError, match="empty"):
        Band(2.0, 1.0)


def test_every_catalog_claim_has_explicit_bands_and_a_source() -> None:
    assert len({spec.key for spec in CLAIMS}) == len(CLAIMS)
    for spec in CLAIMS:
        assert spec.source.strip() and spec.statement.strip(), spec.key
        assert spec.facts and spec.ratios, spec.key
        assert {e.quantity for e in spec.ratios} == set(SPEED_QUANTITIES), spec.key
        for expectation in spec.facts + spec.ratios:
            assert expectation.quantity in QUANTITIES, (spec.key, expectation.quantity)
            assert isinstance(expectation.band, Band), (spec.key, expectation.quantity)
            assert expectation.says.strip(), (spec.key, expectation.quantity)
            if expectation.textbook is not None:
                assert expectation.band.contains(expectation.textbook), (spec.key, expectation.quantity)


def test_claim_pairs_are_the_catalog_pairs() -> None:
    assert CLAIM_PAIRS == tuple((spec.pair.slow, spec.pair.fast) for spec in CLAIMS)
    assert ("repvgg_a0_train", "repvgg_a0_deploy") in CLAIM_PAIRS


def test_every_claim_pair_is_one_the_sweep_measures_interleaved() -> None:
    assert set(CLAIM_PAIRS) <= set(INTERLEAVED_PAIRS)


def test_a_claim_added_as_an_entry_is_judged_by_the_same_runner() -> None:
    pair = Pair("resnet50", "resnet18", "ResNet-50", "ResNet-18")
    spec = ClaimSpec(
        key="resnet18-vs-resnet50",
        title="ResNet-18 vs ResNet-50",
        statement="ResNet-18 does 2.3× less compute, so it runs about twice as fast.",
        source="He et al. 2016 (arXiv:1512.03385)",
        pair=pair,
        facts=(published_fact(pair, "parameters"), published_fact(pair, "GMACs at 224²")),
        ratios=speed(Band(1.6, 2.5), '"about twice as fast"'),
    )
    (twice,) = check_claims(run({"resnet50": 40.0, "resnet18": 20.0}), [spec])
    (same,) = check_claims(run({"resnet50": 40.0, "resnet18": 40.0}), [spec])
    assert twice.key == spec.key and twice.verdict == "confirmed"
    assert same.verdict == "refuted"


def test_speedups_below_one_read_as_slower() -> None:
    assert describe_speedup(2.0) == "2.00× faster"
    assert describe_speedup(0.5) == "2.00× slower"


def test_interleaved_pair_measurement_replaces_the_separate_baselines() -> None:
    results = run({**BASE, "vgg16": 40.0, "repvgg_a0_deploy": 15.0})  # separate baselines: no difference
    results.paired.append(paired("vgg16", "resnet50", 3.6))
    comparisons = {c.quantity: c for c in claim(results, "vgg16-vs-resnet50").comparisons}
    assert comparisons["latency ratio, in-process"].measured == 3.6
    assert comparisons["throughput ratio, in-process"].measured == 3.6
    assert "interleaved" in comparisons["latency ratio, in-process"].source
    assert comparisons["latency ratio, served"].measured == pytest.approx(1.0)  # served points unchanged
