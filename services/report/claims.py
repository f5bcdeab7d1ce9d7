"""Textbook claims about the zoo, checked against this run: the published number beside the measured one.

Each claim compares two models (or two forms of one) as ratios. Static facts (parameters, GMACs, file
size) must match the published ratio within 5%. Speed is judged by direction first (is the model
the claim calls faster actually faster?) and then by magnitude against what the compute ratio
predicts, within a factor of 1.5 either way. The verdict says what was measured, including when it
contradicts the textbook: on a CPU, FLOPs are a poor proxy for time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.modelzoo.catalog import resolve_triton_name

from .analysis import (
    Measured,
    inprocess_latency,
    inprocess_throughput,
    ratio,
    served_latency,
    served_throughput,
)
from .results import ModelFacts, RunResults

Verdict = Literal["confirmed", "partly confirmed", "inconclusive", "not confirmed", "not measured"]
Kind = Literal["fact", "bound", "speed"]  # bound: measured must not exceed the textbook value
Assessment = Literal["matches", "off", "holds", "holds, size differs", "contradicted", "not measured"]

#: A static fact "matches" when its ratio is within this fraction of the published ratio.
FACT_TOLERANCE = 0.05
#: A speed ratio "matches" the compute prediction within this factor either way.
SPEED_BAND = 1.5
#: Below this, a "faster" claim is not measurably faster.
MEANINGFUL_SPEEDUP = 1.05
#: "Identical outputs" for fused float32 convolutions: the exporter's parity tolerance.
REPARAM_TOLERANCE = 1e-4
#: Published ratios closer to 1 than this make the claim one of similarity, not of direction.
SIMILARITY_RATIO = 1.25


@dataclass(frozen=True)
class Comparison:
    """One quantity of a claim: the published ratio, the measured one, and how they compare."""

    quantity: str
    textbook: float | None
    measured: float | None
    source: str
    kind: Kind

    @property
    def assessment(self) -> Assessment:
        if self.measured is None:
            return "not measured"
        if self.kind == "bound":
            return "matches" if self.textbook is None or self.measured <= self.textbook else "off"
        if self.kind == "fact":
            if self.textbook is None:
                return "matches"
            return "matches" if abs(self.measured / self.textbook - 1) <= FACT_TOLERANCE else "off"
        return assess_speed(self.textbook, self.measured)


def assess_speed(textbook: float | None, measured: float) -> Assessment:
    """Direction (is the claimed-faster side faster?) and size (as the compute ratio predicts?)."""
    within_band = textbook is not None and 1 / SPEED_BAND <= measured / textbook <= SPEED_BAND
    if textbook is not None and textbook < SIMILARITY_RATIO:
        return "holds" if within_band else "contradicted"
    if measured <= MEANINGFUL_SPEEDUP:
        return "contradicted"
    if textbook is None or within_band:
        return "holds"
    return "holds, size differs"


@dataclass(frozen=True)
class Claim:
    key: str
    title: str
    statement: str
    comparisons: tuple[Comparison, ...]
    verdict: Verdict
    summary: str


def verdict_of(comparisons: tuple[Comparison, ...]) -> Verdict:
    speed = [c for c in comparisons if c.kind == "speed" and c.measured is not None]
    facts = [c for c in comparisons if c.kind != "speed" and c.measured is not None]
    if not speed:
        return "not measured"
    holding = [c for c in speed if c.assessment in ("holds", "holds, size differs")]
    if not holding:
        return "not confirmed"
    if len(holding) < len(speed):
        return "inconclusive"  # the measurements disagree with each other
    exact = all(c.assessment == "holds" for c in speed) and all(c.assessment == "matches" for c in facts)
    return "confirmed" if exact else "partly confirmed"


# -- building comparisons ---------------------------------------------------------------------


def _fact(
    quantity: str, numerator: float | None, denominator: float | None, textbook: float | None, source: str
) -> Comparison:
    return Comparison(quantity, textbook, ratio(numerator, denominator), source, "fact")


def _speed(
    quantity: str,
    slow: Measured | None,
    fast: Measured | None,
    textbook: float | None,
    higher_is_better: bool,
) -> Comparison:
    """How many times faster the claimed-faster model is (latency: slow/fast; throughput: fast/slow)."""
    if slow is None or fast is None:
        return Comparison(quantity, textbook, None, "not measured in this run", "speed")
    measured = ratio(fast.value, slow.value) if higher_is_better else ratio(slow.value, fast.value)
    source = fast.source if fast.source == slow.source else f"{slow.source} / {fast.source}"
    return Comparison(quantity, textbook, measured, source, "speed")


@dataclass(frozen=True)
class Pair:
    """A claim's two sides: `slow` is the one the textbook calls costlier, `fast` the cheaper one."""

    slow: str  # Triton model names
    fast: str


VGG_RESNET = Pair("vgg16", "resnet50")
RESNET_MOBILENET = Pair("resnet50", "mobilenet_v3_large")
REPVGG_TRAIN_DEPLOY = Pair("repvgg_a0_train", "repvgg_a0_deploy")
CONVNEXT_RESNET = Pair("convnext_tiny", "resnet50")
#: (slow, fast) Triton model names of every claim, for measurements that serve the claims.
CLAIM_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (p.slow, p.fast) for p in (VGG_RESNET, RESNET_MOBILENET, REPVGG_TRAIN_DEPLOY, CONVNEXT_RESNET)
)


def _facts(results: RunResults, model: str) -> ModelFacts | None:
    return results.facts_for(model)


def published(triton_model: str) -> tuple[float, float | None]:
    """(parameters, GMACs) the literature gives for a Triton model (GMACs None where it gives none)."""
    spec, variant = resolve_triton_name(triton_model)
    return float(spec.variant(variant).expected_params), spec.reference_gmacs


def static_comparisons(results: RunResults, pair: Pair, with_gmacs: bool = True) -> list[Comparison]:
    slow, fast = _facts(results, pair.slow), _facts(results, pair.fast)
    (slow_params, slow_gmacs), (fast_params, fast_gmacs) = published(pair.slow), published(pair.fast)
    source = "export manifests (counted on the built model)"
    rows = [
        _fact(
            "parameters",
            float(slow.params) if slow else None,
            float(fast.params) if fast else None,
            ratio(slow_params, fast_params),
            source,
        )
    ]
    if with_gmacs:
        rows.append(
            _fact(
                "GMACs at 224²",
                slow.gmacs if slow else None,
                fast.gmacs if fast else None,
                ratio(slow_gmacs, fast_gmacs),
                source,
            )
        )
    # fp32 weights: file size should follow the parameter count.
    rows.append(
        _fact(
            "ONNX file size",
            slow.onnx_mb if slow else None,
            fast.onnx_mb if fast else None,
            ratio(slow_params, fast_params),
            "ONNX files in the model repository (fp32: follows parameters)",
        )
    )
    return rows


def paired_comparisons(results: RunResults, pair: Pair, predicted: float | None) -> list[Comparison] | None:
    """In-process ratios from the interleaved measurement of this pair, when the run has one."""
    paired = results.paired_for(pair.slow, pair.fast)
    if paired is None:
        return None
    how = f"in-process {paired.engine}, {paired.rounds} interleaved rounds, median ratio"
    return [
        Comparison(
            "latency ratio, in-process", predicted, paired.latency_ratio, f"p50 at batch 1, {how}", "speed"
        ),
        Comparison(
            "throughput ratio, in-process",
            predicted,
            paired.throughput_ratio,
            f"img/s at batch 1, {how}",
            "speed",
        ),
    ]


def speed_comparisons(results: RunResults, pair: Pair, predicted: float | None) -> list[Comparison]:
    """Latency and throughput ratios, in-process (engine alone) and served (through the stack).

    In-process ratios come from the interleaved pair measurement when there is one (robust to the
    machine's drift), else from each model's own baselines.
    """
    paired = paired_comparisons(results, pair, predicted)
    rows = [
        _speed(
            "latency ratio, in-process",
            inprocess_latency(results, pair.slow),
            inprocess_latency(results, pair.fast),
            predicted,
            higher_is_better=False,
        ),
        _speed(
            "latency ratio, served",
            served_latency(results, pair.slow),
            served_latency(results, pair.fast),
            predicted,
            higher_is_better=False,
        ),
        _speed(
            "throughput ratio, in-process",
            inprocess_throughput(results, pair.slow),
            inprocess_throughput(results, pair.fast),
            predicted,
            higher_is_better=True,
        ),
        _speed(
            "throughput ratio, served",
            served_throughput(results, pair.slow),
            served_throughput(results, pair.fast),
            predicted,
            higher_is_better=True,
        ),
    ]
    if paired is not None:
        rows[0], rows[2] = paired
    return rows


def _gmacs_ratio(slow: str, fast: str) -> float | None:
    return ratio(published(slow)[1], published(fast)[1])


def describe_speedup(measured: float) -> str:
    """`2.10× faster` / `1.18× slower`: a ratio below 1 read the way people say it."""
    return f"{measured:.2f}× faster" if measured >= 1 else f"{1 / measured:.2f}× slower"


def _speed_summary(
    comparisons: list[Comparison], slow_name: str, fast_name: str, predicted: float | None
) -> str:
    measured = [c for c in comparisons if c.kind == "speed" and c.measured is not None]
    if not measured:
        return f"no latency or throughput of both {slow_name} and {fast_name} in this run"
    parts = [
        f"{c.quantity.removesuffix(' ratio').replace(' ratio,', ',')}: {describe_speedup(c.measured or 1.0)}"
        for c in measured
    ]
    expectation = f" (the compute ratio predicts {predicted:.2f}×)" if predicted else ""
    return f"{fast_name} vs {slow_name}: " + "; ".join(parts) + expectation


def _claim(key: str, title: str, statement: str, comparisons: list[Comparison], summary: str) -> Claim:
    frozen = tuple(comparisons)
    return Claim(key, title, statement, frozen, verdict_of(frozen), summary)


def vgg_vs_resnet(results: RunResults) -> Claim:
    pair = VGG_RESNET
    predicted = _gmacs_ratio(pair.slow, pair.fast)
    comparisons = static_comparisons(results, pair) + speed_comparisons(results, pair, predicted)
    return _claim(
        "vgg16-vs-resnet50",
        "VGG-16 vs ResNet-50",
        "VGG-16 has ~138M parameters and 15.5 GMACs, ResNet-50 25.6M and 4.1: 5.4× the weights and 3.8× the "
        "compute, so it is several times slower for the same ImageNet accuracy class.",
        comparisons,
        _speed_summary(comparisons, "VGG-16", "ResNet-50", predicted),
    )


def mobilenet_vs_resnet(results: RunResults) -> Claim:
    pair = RESNET_MOBILENET
    predicted = _gmacs_ratio(pair.slow, pair.fast)
    comparisons = static_comparisons(results, pair) + speed_comparisons(results, pair, predicted)
    return _claim(
        "mobilenet-vs-resnet50",
        "MobileNetV3-Large vs ResNet-50",
        "MobileNetV3-Large is the latency choice: 0.22 vs 4.09 GMACs (18.6× less compute) and 4.7× fewer "
        "parameters than ResNet-50.",
        comparisons,
        _speed_summary(comparisons, "ResNet-50", "MobileNetV3-Large", predicted),
    )


def repvgg_deploy_vs_train(results: RunResults) -> Claim:
    pair = REPVGG_TRAIN_DEPLOY
    deploy = _facts(results, "repvgg_a0_deploy")
    comparisons = static_comparisons(results, pair, with_gmacs=False)
    train = _facts(results, "repvgg_a0_train")
    comparisons.insert(
        1,
        _fact(
            "GMACs at 224²",
            train.gmacs if train else None,
            deploy.gmacs if deploy else None,
            None,
            "export manifests (the paper gives no A0 train-form GMACs)",
        ),
    )
    comparisons.append(
        Comparison(
            "max |Δ logits| deploy vs train",
            REPARAM_TOLERANCE,
            deploy.reparam_max_abs_error if deploy else None,
            "export: train vs fused deploy form on one random batch (the test suite repeats it with "
            "randomized BN statistics); absolute, must stay within float tolerance",
            "bound",
        )
    )
    comparisons += speed_comparisons(results, pair, None)
    return _claim(
        "repvgg-deploy-vs-train",
        "RepVGG-A0: deploy (re-parameterized) vs train form",
        "Re-parameterization folds each block's 3x3, 1x1 and identity branches into one 3x3 conv: identical "
        "outputs, 9.11M → 8.31M parameters, and a faster single-branch network at inference.",
        comparisons,
        _speed_summary(comparisons, "the train form", "the deploy form", None),
    )


def convnext_vs_resnet(results: RunResults) -> Claim:
    pair = CONVNEXT_RESNET
    predicted = _gmacs_ratio(pair.slow, pair.fast)
    comparisons = static_comparisons(results, pair) + speed_comparisons(results, pair, predicted)
    return _claim(
        "convnext-vs-resnet50",
        "ConvNeXt-T vs ResNet-50",
        "ConvNeXt-T is a modernized ResNet-50 at similar cost: 4.46 vs 4.09 GMACs (1.09×) and 28.6M vs 25.6M "
        "parameters, so it should run at about ResNet-50's speed.",
        comparisons,
        _speed_summary(comparisons, "ConvNeXt-T", "ResNet-50", predicted),
    )


CLAIMS: tuple[Callable[[RunResults], Claim], ...] = (
    vgg_vs_resnet,
    mobilenet_vs_resnet,
    repvgg_deploy_vs_train,
    convnext_vs_resnet,
)


def check_claims(results: RunResults) -> list[Claim]:
    """Every claim, judged on this run (claims whose models were not swept say `not measured`)."""
    return [build(results) for build in CLAIMS]
