"""Textbook claims about the zoo as data, and the one runner that judges any of them on a run.

A claim is a `ClaimSpec`: the pair of deployments it compares, its exact facts and its measured
ratios, each with the explicit band the claim's words allow, and where the claim comes from. Adding a
claim is adding an entry to `CLAIMS`.

Every ratio reads the costlier side over the cheaper one (`Pair.slow` over `Pair.fast`; for
throughput the cheaper over the costlier), so above 1× the cheaper side is smaller or faster. Verdicts:

- *refuted*: an exact fact fails, or ratios were measured and none lies inside its band;
- *not measured*: no ratio was measured (and no exact fact fails);
- *confirmed*: every exact fact holds and every ratio lies inside its band, none of them missing;
- *partly confirmed*: otherwise: no exact fact fails, at least one ratio lies inside its band, and
  at least one lies outside it or was not measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from deploylab.services.modelzoo.catalog import resolve_triton_name

from .analysis import (
    Measured,
    inprocess_latency,
    inprocess_throughput,
    ratio,
    served_latency,
    served_throughput,
)
from .results import ModelFacts, RunResults

Verdict = Literal["confirmed", "partly confirmed", "refuted", "not measured"]
Kind = Literal["fact", "ratio"]  # fact: exact, failing refutes; ratio: measured, judged against its band
Unit = Literal["ratio", "absolute"]
Assessment = Literal["holds", "fails", "inside", "outside", "not measured"]

#: What each verdict means, for the report to print beside it.
VERDICT_RULES: dict[Verdict, str] = {
    "confirmed": "every exact fact holds and every measured ratio lies inside its band",
    "partly confirmed": "no exact fact fails and some ratios lie inside their bands, but others lie "
    "outside or were not measured",
    "refuted": "an exact fact fails, or no measured ratio lies inside its band",
    "not measured": "no ratio was measured in this run and no exact fact fails",
}
#: One line for the report above the claims: how to read their tables and verdicts.
VERDICT_RULE_NOTE = (
    "Each claim lists its exact facts and its measured ratios, each with the band the claim's words allow. "
    + "; ".join(f"{verdict}: {rule}" for verdict, rule in VERDICT_RULES.items())
    + "."
)


@dataclass(frozen=True)
class Band:
    """The range a claim accepts for one quantity, ends included; None leaves that end open."""

    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.low is None and self.high is None:
            raise ValueError("a band needs at least one end")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"band {self.low}–{self.high} is empty")

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self, unit: Unit = "ratio") -> str:
        """`0.80–1.25×`, `≥ 2.50×`, `≤ 1.0e-04`."""
        if self.low is not None and self.high is not None:
            low = f"{self.low:.2f}" if unit == "ratio" else format_value(self.low, unit)
            return f"{low}–{format_value(self.high, unit)}"
        if self.low is not None:
            return f"≥ {format_value(self.low, unit)}"
        return f"≤ {format_value(self.high, unit)}"


def around(value: float, tolerance: float) -> Band:
    """A published figure within a relative tolerance either way."""
    return Band(value * (1 - tolerance), value * (1 + tolerance))


def format_value(value: float | None, unit: Unit = "ratio") -> str:
    if value is None:
        return "–"
    return f"{value:.2f}×" if unit == "ratio" else f"{value:.1e}"


@dataclass(frozen=True)
class Pair:
    """A claim's two sides: `slow` is the one the textbook calls costlier, `fast` the cheaper one."""

    slow: str  # Triton model names
    fast: str
    slow_label: str  # how the claim names them
    fast_label: str


@dataclass(frozen=True)
class Expectation:
    """One quantity of a claim and the band the claim accepts for it."""

    quantity: str  # a key of QUANTITIES
    band: Band
    says: str  # the claim's words, or the published figure, that the band reads
    textbook: float | None = None  # the published figure the band is built around, where there is one


@dataclass(frozen=True)
class ClaimSpec:
    """A claim as data: what it compares, what it states exactly, what it predicts, and who says so."""

    key: str
    title: str
    statement: str  # the claim in the textbook's terms
    source: str  # where the claim and its numbers come from
    pair: Pair
    facts: tuple[Expectation, ...]  # exact: one failing refutes the claim
    ratios: tuple[Expectation, ...]  # measured: each judged against its band


# -- quantities: what can be measured of a pair ---------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """How to read one number of a pair off a run (None when the run lacks either side)."""

    measure: Callable[[RunResults, Pair], Measured | None]
    unit: Unit = "ratio"


MANIFESTS = "export manifests (counted on the built model)"


def _manifest_ratio(field: Callable[[ModelFacts], float], source: str) -> Quantity:
    def measure(results: RunResults, pair: Pair) -> Measured | None:
        slow, fast = results.facts_for(pair.slow), results.facts_for(pair.fast)
        value = ratio(field(slow), field(fast)) if slow and fast else None
        return Measured(value, source) if value is not None else None

    return Quantity(measure)


def _reparam_error(results: RunResults, pair: Pair) -> Measured | None:
    fused = results.facts_for(pair.fast)  # the re-parameterized form is the pair's cheaper side
    if fused is None or fused.reparam_max_abs_error is None:
        return None
    return Measured(
        fused.reparam_max_abs_error,
        "export: train vs fused deploy form on one random batch (the test suite repeats it with "
        "randomized BN statistics); absolute",
    )


def _speed_ratio(slow: Measured | None, fast: Measured | None, higher_is_better: bool) -> Measured | None:
    """How many times faster the claimed-faster side is (latency: slow/fast; throughput: fast/slow)."""
    if slow is None or fast is None:
        return None
    value = ratio(fast.value, slow.value) if higher_is_better else ratio(slow.value, fast.value)
    if value is None:
        return None
    source = fast.source if fast.source == slow.source else f"{slow.source} / {fast.source}"
    return Measured(value, source)


def _inprocess(latency: bool) -> Quantity:
    """The in-process ratio: interleaved pair measurement when the run has one, else separate baselines.

    Interleaving makes the ratio robust to the machine's drift between two models' baselines.
    """

    def measure(results: RunResults, pair: Pair) -> Measured | None:
        paired = results.paired_for(pair.slow, pair.fast)
        if paired is not None:
            how = f"in-process {paired.engine}, {paired.rounds} interleaved rounds, median ratio"
            if latency:
                return Measured(paired.latency_ratio, f"p50 at batch 1, {how}")
            return Measured(paired.throughput_ratio, f"img/s at batch 1, {how}")
        get = inprocess_latency if latency else inprocess_throughput
        return _speed_ratio(get(results, pair.slow), get(results, pair.fast), higher_is_better=not latency)

    return Quantity(measure)


def _served(latency: bool) -> Quantity:
    def measure(results: RunResults, pair: Pair) -> Measured | None:
        get = served_latency if latency else served_throughput
        return _speed_ratio(get(results, pair.slow), get(results, pair.fast), higher_is_better=not latency)

    return Quantity(measure)


SPEED_QUANTITIES = (
    "latency ratio, in-process",
    "latency ratio, served",
    "throughput ratio, in-process",
    "throughput ratio, served",
)

QUANTITIES: dict[str, Quantity] = {
    "parameters": _manifest_ratio(lambda m: float(m.params), MANIFESTS),
    "GMACs at 224²": _manifest_ratio(lambda m: m.gmacs, MANIFESTS),
    "ONNX file size": _manifest_ratio(lambda m: m.onnx_mb, "ONNX files in the model repository"),
    "max |Δ logits| deploy vs train": Quantity(_reparam_error, unit="absolute"),
    "latency ratio, in-process": _inprocess(latency=True),
    "latency ratio, served": _served(latency=True),
    "throughput ratio, in-process": _inprocess(latency=False),
    "throughput ratio, served": _served(latency=False),
}


# -- bands: what the claims' words allow -----------------------------------------------------------

#: "several times slower / faster": clearly more than "twice", the least a reader takes "several" for.
SEVERAL_TIMES = Band(low=2.5)
#: "about the same speed": within a quarter either way (1/1.25 = 0.8, symmetric on a log scale).
ABOUT_THE_SAME = Band(0.8, 1.25)
#: "faster": by more than the 5% that interleaved in-process rounds still wander on a shared machine.
FASTER = Band(low=1.05)
#: Parameter counts are exact (the exporter refuses a model whose count differs from the catalog's):
#: 1% lets through no real difference in architecture.
PARAMS_TOLERANCE = 0.01
#: MAC counters differ from the model cards in what they count (activations, normalisation).
GMACS_TOLERANCE = 0.05
#: An ONNX file holds the graph and its names beside the fp32 weights, so it tracks parameters loosely.
ONNX_TOLERANCE = 0.05
#: "Identical outputs" for fused float32 convolutions: the exporter's parity tolerance.
REPARAM_TOLERANCE = 1e-4


def published(triton_model: str) -> tuple[float, float | None]:
    """(parameters, GMACs) the literature gives for a Triton model (GMACs None where it gives none)."""
    spec, variant = resolve_triton_name(triton_model)
    return float(spec.variant(variant).expected_params), spec.reference_gmacs


def _published_ratio(pair: Pair, gmacs: bool) -> float:
    (slow_params, slow_gmacs), (fast_params, fast_gmacs) = published(pair.slow), published(pair.fast)
    value = ratio(slow_gmacs, fast_gmacs) if gmacs else ratio(slow_params, fast_params)
    if value is None:
        raise ValueError(f"the catalog gives no published {'GMACs' if gmacs else 'parameters'} for {pair}")
    return value


@dataclass(frozen=True)
class PublishedFact:
    """An exact fact a claim checks against the catalog: which published ratio, how close, in what words."""

    gmacs: bool  # the ratio of published GMACs, else of published parameters
    tolerance: float  # relative, either way
    says: str  # formatted with the published ratio as `value`


#: The exact facts every claim can take from the catalog, by quantity (a key of QUANTITIES).
PUBLISHED_FACTS: dict[str, PublishedFact] = {
    "parameters": PublishedFact(False, PARAMS_TOLERANCE, "{value:.2f}× the parameters (catalog counts)"),
    "GMACs at 224²": PublishedFact(True, GMACS_TOLERANCE, "{value:.2f}× the compute (model cards)"),
    # fp32 weights on disk: the ONNX size ratio follows the published parameter ratio.
    "ONNX file size": PublishedFact(
        False, ONNX_TOLERANCE, "fp32 weights follow the parameters: {value:.2f}×"
    ),
}


def published_fact(pair: Pair, quantity: str) -> Expectation:
    """The pair's published ratio of `quantity` (a key of PUBLISHED_FACTS), as an exact fact."""
    fact = PUBLISHED_FACTS[quantity]
    value = _published_ratio(pair, gmacs=fact.gmacs)
    return Expectation(quantity, around(value, fact.tolerance), fact.says.format(value=value), value)


def published_facts(pair: Pair) -> tuple[Expectation, ...]:
    """Every fact of PUBLISHED_FACTS for the pair, in that order."""
    return tuple(published_fact(pair, quantity) for quantity in PUBLISHED_FACTS)


def speed(band: Band, says: str) -> tuple[Expectation, ...]:
    """The same band for latency and throughput, in-process and served."""
    return tuple(Expectation(quantity, band, says) for quantity in SPEED_QUANTITIES)


# -- the catalog -----------------------------------------------------------------------------------

_CARDS = "torchvision model cards (IMAGENET1K_V1)"
VGG_RESNET = Pair("vgg16", "resnet50", "VGG-16", "ResNet-50")
RESNET_MOBILENET = Pair("resnet50", "mobilenet_v3_large", "ResNet-50", "MobileNetV3-Large")
REPVGG_TRAIN_DEPLOY = Pair("repvgg_a0_train", "repvgg_a0_deploy", "the train form", "the deploy form")
CONVNEXT_RESNET = Pair("convnext_tiny", "resnet50", "ConvNeXt-T", "ResNet-50")

CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        key="vgg16-vs-resnet50",
        title="VGG-16 vs ResNet-50",
        statement="VGG-16 has ~138M parameters and 15.5 GMACs, ResNet-50 25.6M and 4.1: 5.4× the weights and "
        "3.8× the compute, so it is several times slower for the same ImageNet accuracy class.",
        source="Simonyan & Zisserman 2015 (arXiv:1409.1556); He et al. 2016 (arXiv:1512.03385), which "
        f"compares its depth against VGG's FLOPs; sizes from the {_CARDS}",
        pair=VGG_RESNET,
        facts=published_facts(VGG_RESNET),
        ratios=speed(SEVERAL_TIMES, '"several times slower"'),
    ),
    ClaimSpec(
        key="mobilenet-vs-resnet50",
        title="MobileNetV3-Large vs ResNet-50",
        statement="MobileNetV3-Large is the latency choice: 0.22 vs 4.09 GMACs (18.6× less compute) and 4.7× "
        "fewer parameters than ResNet-50, so it runs several times faster.",
        source=f"Howard et al. 2019, Searching for MobileNetV3 (arXiv:1905.02244); sizes from the {_CARDS}",
        pair=RESNET_MOBILENET,
        facts=published_facts(RESNET_MOBILENET),
        ratios=speed(SEVERAL_TIMES, '"several times faster"'),
    ),
    ClaimSpec(
        key="repvgg-deploy-vs-train",
        title="RepVGG-A0: deploy (re-parameterized) vs train form",
        statement="Re-parameterization folds each block's 3x3, 1x1 and identity branches into one 3x3 conv: "
        "identical outputs, 9.11M → 8.31M parameters, and a faster single-branch network at inference.",
        source="Ding et al. 2021, RepVGG (arXiv:2101.03697); parameter counts from timm repvgg_a0.rvgg_in1k",
        pair=REPVGG_TRAIN_DEPLOY,
        facts=(
            published_fact(REPVGG_TRAIN_DEPLOY, "parameters"),
            # The paper gives no A0 train-form GMACs; folding branches away can only remove work.
            Expectation(
                "GMACs at 224²", Band(low=1.0), "no more MACs: the 1x1 and identity branches fold away"
            ),
            published_fact(REPVGG_TRAIN_DEPLOY, "ONNX file size"),
            Expectation(
                "max |Δ logits| deploy vs train",
                Band(high=REPARAM_TOLERANCE),
                '"identical outputs" (float32)',
            ),
        ),
        ratios=speed(FASTER, '"a faster single-branch network"'),
    ),
    ClaimSpec(
        key="convnext-vs-resnet50",
        title="ConvNeXt-T vs ResNet-50",
        statement="ConvNeXt-T is a modernized ResNet-50 at similar cost: 4.46 vs 4.09 GMACs (1.09×) and "
        "28.6M vs 25.6M parameters, so it should run at about ResNet-50's speed.",
        source=f"Liu et al. 2022, A ConvNet for the 2020s (arXiv:2201.03545); sizes from the {_CARDS}",
        pair=CONVNEXT_RESNET,
        facts=published_facts(CONVNEXT_RESNET),
        ratios=speed(ABOUT_THE_SAME, '"about ResNet-50\'s speed"'),
    ),
)

#: (slow, fast) Triton model names of every claim. The sweep measures the pairs it declares
#: (`INTERLEAVED_PAIRS`, beside the results schema); a unit test holds every claim's pair among them.
CLAIM_PAIRS: tuple[tuple[str, str], ...] = tuple((c.pair.slow, c.pair.fast) for c in CLAIMS)


# -- the runner ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One quantity of a claim on this run: its band, the measured value, and whether it lies inside."""

    quantity: str
    band: Band
    says: str
    textbook: float | None
    measured: float | None
    source: str
    kind: Kind
    unit: Unit = "ratio"

    @property
    def assessment(self) -> Assessment:
        if self.measured is None:
            return "not measured"
        inside = self.band.contains(self.measured)
        if self.kind == "fact":
            return "holds" if inside else "fails"
        return "inside" if inside else "outside"


@dataclass(frozen=True)
class Claim:
    spec: ClaimSpec
    comparisons: tuple[Comparison, ...]
    verdict: Verdict
    summary: str

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def statement(self) -> str:
        return self.spec.statement

    @property
    def source(self) -> str:
        return self.spec.source


def verdict_of(comparisons: Sequence[Comparison]) -> Verdict:
    """The rule in the module docstring: a failed fact refutes; confirmed needs everything inside."""
    facts = [c.assessment for c in comparisons if c.kind == "fact"]
    ratios = [c.assessment for c in comparisons if c.kind == "ratio"]
    measured = [a for a in ratios if a != "not measured"]
    if "fails" in facts or (measured and "inside" not in measured):
        return "refuted"
    if not measured:
        return "not measured"
    if all(a == "holds" for a in facts) and all(a == "inside" for a in ratios):
        return "confirmed"
    return "partly confirmed"


def _compare(results: RunResults, spec: ClaimSpec, expectation: Expectation, kind: Kind) -> Comparison:
    quantity = QUANTITIES[expectation.quantity]
    reading = quantity.measure(results, spec.pair)
    return Comparison(
        expectation.quantity,
        expectation.band,
        expectation.says,
        expectation.textbook,
        reading.value if reading else None,
        reading.source if reading else "not measured in this run",
        kind,
        quantity.unit,
    )


def describe_speedup(measured: float) -> str:
    """`2.10× faster` / `1.18× slower`: a ratio below 1 read the way people say it."""
    return f"{measured:.2f}× faster" if measured >= 1 else f"{1 / measured:.2f}× slower"


def _summary(comparisons: Sequence[Comparison], pair: Pair) -> str:
    measured = [c for c in comparisons if c.quantity in SPEED_QUANTITIES and c.measured is not None]
    if not measured:
        return f"no latency or throughput of both {pair.slow_label} and {pair.fast_label} in this run"
    parts = [
        f"{c.quantity.removesuffix(' ratio').replace(' ratio,', ',')}: {describe_speedup(c.measured or 1.0)}"
        for c in measured
    ]
    return f"{pair.fast_label} vs {pair.slow_label}: " + "; ".join(parts)


def evaluate(spec: ClaimSpec, results: RunResults) -> Claim:
    """One claim judged on one run: every fact and ratio beside its band, and the verdict."""
    comparisons = tuple(_compare(results, spec, e, "fact") for e in spec.facts) + tuple(
        _compare(results, spec, e, "ratio") for e in spec.ratios
    )
    return Claim(spec, comparisons, verdict_of(comparisons), _summary(comparisons, spec.pair))


def check_claims(results: RunResults, claims: Sequence[ClaimSpec] = CLAIMS) -> list[Claim]:
    """Every claim, judged on this run (claims whose models were not swept say `not measured`)."""
    return [evaluate(spec, results) for spec in claims]
