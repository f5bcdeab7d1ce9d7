"""Comparison: model vs model side by side, and RepVGG's training form vs its re-parameterized form."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from . import queries as q
from .panels import (
    Panel,
    Section,
    label_variable,
    new_dashboard,
    table_panel,
    timeseries_panel,
    with_sections,
)

UID = "deploylab-comparison"
REPVGG = 'model=~"repvgg.*"'
BY_MODEL_VARIANT = "{{model}}/{{variant}}"
SHADOWS = "deploylab_gateway_shadow_requests_total"


def train_over_deploy(rule: str) -> str:
    """Train-form value over deploy-form value per RepVGG size (repvgg_a0, …): above 1, re-param pays."""
    train = f'label_replace({rule}{{model=~"repvgg.*_train"}}, "base", "$1", "model", "(.*)_train")'
    deploy = f'label_replace({rule}{{model=~"repvgg.*_deploy"}}, "base", "$1", "model", "(.*)_deploy")'
    return f"{train} / on (base) {deploy}"


def shadow_agreement() -> str:
    """Share of shadow comparisons whose top-1 agreed with the primary (0, not empty, when none did)."""
    by = "sum by (model, shadow_model)"
    agree = f'{by} (rate({SHADOWS}{{outcome="agree"}}[{q.RATE_WINDOW}]))'
    compared = f'{by} (rate({SHADOWS}{{outcome=~"agree|disagree"}}[{q.RATE_WINDOW}]))'
    return f"({agree} or {compared} * 0) / {compared}"


def _side_by_side(sel: str) -> list[Panel]:
    def latency(quantile: str) -> str:
        return f"sum by (model, variant) ({q.quantile(q.LATENCY_QUANTILE, quantile, sel)})"

    return [
        table_panel("Models now (1 min window)", "One row per model and variant: the latest value of each "
                    "recording rule.", [
                        ("req/s", "reqps", f"{q.REQUESTS_RATE}{{{sel}}}"),
                        ("p50", "s", latency("0.5")),
                        ("p95", "s", latency("0.95")),
                        ("p99", "s", latency("0.99")),
                        ("errors", "percentunit", f"{q.ERROR_RATIO}{{{sel}}}"),
                    ]),
        timeseries_panel("p99 by model and variant", "Tail latency, model against model.", "s",
                         (q.quantile(q.LATENCY_QUANTILE, "0.99", sel), BY_MODEL_VARIANT),
                         threshold=q.P99_SLO_SECONDS),
        timeseries_panel("Requests/s by model and variant", "Throughput, model against model.", "reqps",
                         (f"{q.REQUESTS_RATE}{{{sel}}}", BY_MODEL_VARIANT)),
        timeseries_panel("Triton compute per request", "Engine cost per request by Triton model (compute "
                         "input + infer + output), free of gateway and network time.", "s",
                         (q.TRITON_COMPUTE_TIME, "{{model}}"), span=24),
    ]


def _repvgg() -> list[Panel]:
    outcomes = f"sum by (shadow_model, outcome) (rate({SHADOWS}[{q.RATE_WINDOW}]))"
    return [
        timeseries_panel("RepVGG latency (gateway p50, p99)", "Same network, same outputs: multi-branch "
                         "train form vs single-branch deploy form.", "s",
                         (q.quantile(q.LATENCY_QUANTILE, "0.5", REPVGG), BY_MODEL_VARIANT + " p50"),
                         (q.quantile(q.LATENCY_QUANTILE, "0.99", REPVGG), BY_MODEL_VARIANT + " p99"), span=8),
        timeseries_panel("RepVGG Triton compute per request", "Engine time only, per Triton model.", "s",
                         (f"{q.TRITON_COMPUTE_TIME}{{{REPVGG}}}", "{{model}}"), span=8),
        timeseries_panel("Train / deploy compute time", "How many times slower the training form computes "
                         "than the deploy form (needs traffic to both, e.g. the deploy route with a train "
                         "shadow).", "none", (train_over_deploy(q.TRITON_COMPUTE_TIME), "{{base}}"),
                         span=8, threshold=1.0),
        timeseries_panel("Shadow top-1 agreement", "Share of shadowed requests whose shadow top-1 matched "
                         "the primary's (re-parameterization is exact: expect 100%).", "percentunit",
                         (shadow_agreement(), "{{model}} vs {{shadow_model}}")),
        timeseries_panel("Shadow outcomes/s", "agree, disagree, error, dropped (shadow queue full) per "
                         "second.", "reqps", (outcomes, "{{shadow_model}} {{outcome}}"), stacked=True),
    ]


def build() -> Dashboard:
    sel = q.MODEL_VARIANT
    board = (
        new_dashboard(UID, "deploylab / Comparison", "Models and variants side by side: latency, throughput, "
                      "errors; RepVGG train vs deploy form; shadow agreement.")
        .with_variable(label_variable("model", "Model", q.REQUESTS_RATE, "model"))
        .with_variable(label_variable("variant", "Variant", q.REQUESTS_RATE, "variant"))
    )
    sections: list[Section] = [
        ("Side by side", _side_by_side(sel)),
        ("RepVGG: training form vs re-parameterized deploy form", _repvgg()),
    ]
    return with_sections(board, sections)
