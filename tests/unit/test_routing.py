"""Routing table: validation on load, aliases, weighted sticky splits, variants, shadows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from deploylab.services.gateway.errors import InvalidInputError, ModelNotFoundError
from deploylab.services.gateway.routing import RoutingError, RoutingTable

TABLE = """
sticky_header: X-Key
routes:
  - name: classifier
    backends: [{model: resnet50}]
  - name: ab
    backends:
      - {model: resnet50, weight: 80}
      - {model: resnet18, weight: 20}
  - name: repvgg
    backends: [{model: repvgg_a0}]
    shadow: {model: repvgg_a0, variant: train, fraction: 1.0}
"""


@pytest.fixture
def table() -> RoutingTable:
    return RoutingTable.from_yaml(TABLE)


def test_alias_resolves_to_its_model(table: RoutingTable) -> None:
    resolution = table.resolve("classifier")
    assert (resolution.route, resolution.target.triton_model) == ("classifier", "resnet50")
    assert resolution.shadow is None


def test_catalog_names_and_triton_names_resolve_without_a_route(table: RoutingTable) -> None:
    assert table.resolve("repvgg_a0").target.triton_model == "repvgg_a0_deploy"  # default variant
    assert table.resolve("repvgg_a0", "train").target.triton_model == "repvgg_a0_train"
    assert table.resolve("repvgg_a0_train").target.variant == "train"


def test_variant_override_applies_to_the_chosen_route_target(table: RoutingTable) -> None:
    resolution = table.resolve("repvgg", "train")
    assert resolution.target.triton_model == "repvgg_a0_train"


def test_unknown_variant_is_a_400_listing_variants(table: RoutingTable) -> None:
    with pytest.raises(InvalidInputError) as info:
        table.resolve("resnet50", "deploy")
    # int8, openvino, int8_openvino, fp16: the opt-in deployments
    assert info.value.details["variants"] == ["default", "int8", "openvino", "int8_openvino", "fp16"]


@pytest.mark.parametrize("name", ["resnet51", "../../etc/passwd", "x" * 10_000, "résnet", "a b"])
def test_unknown_or_malformed_names_are_404_listing_known_names(table: RoutingTable, name: str) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        table.resolve(name)
    assert "classifier" in info.value.details["known"] and "resnet50" in info.value.details["known"]
    assert len(info.value.message) < 200  # a 10 kB name is not echoed back whole


def test_weighted_split_follows_the_weights(table: RoutingTable) -> None:
    counts = Counter(table.resolve("ab").target.model for _ in range(20_000))
    assert abs(counts["resnet50"] / 20_000 - 0.8) < 0.02


def test_sticky_key_pins_a_caller_and_keys_spread_by_weight(table: RoutingTable) -> None:
    for key in ("alice", "bob", "carol"):
        assert len({table.resolve("ab", sticky_key=key).target.model for _ in range(50)}) == 1
    counts = Counter(table.resolve("ab", sticky_key=f"user-{i}").target.model for i in range(5000))
    assert abs(counts["resnet50"] / 5000 - 0.8) < 0.03


def test_shadow_is_attached_at_its_fraction() -> None:
    table = RoutingTable.from_yaml(TABLE.replace("fraction: 1.0", "fraction: 0.25"))
    shadows = sum(table.resolve("repvgg").shadow is not None for _ in range(8000))
    assert abs(shadows / 8000 - 0.25) < 0.03
    assert RoutingTable.from_yaml(TABLE).resolve("repvgg").shadow.triton_model == "repvgg_a0_train"  # type: ignore[union-attr]


def test_targets_lists_every_backend_and_shadow(table: RoutingTable) -> None:
    assert {t.triton_model for t in table.targets()} == {
        "resnet50", "resnet18", "repvgg_a0_deploy", "repvgg_a0_train"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routes: [{name: x, backends: [{model: resnet51}]}]", "unknown model 'resnet51'"),
        ("routes: [{name: x, backends: [{model: resnet50, variant: deploy}]}]", "no variant 'deploy'"),
        ("routes: [{name: x, backends: []}]", "at least 1 item"),
        ("routes: [{name: x, backends: [{model: resnet50, weight: 0}]}]", "greater than 0"),
        (
            "routes: [{name: x, backends: [{model: resnet50}]}, {name: x, backends: [{model: vgg16}]}]",
            "duplicate route names: x",
        ),
        ("routes: [{name: '../x', backends: [{model: resnet50}]}]", "must match"),
        (
            "routes: [{name: x, backends: [{model: resnet50}], shadow: {model: vgg16, fraction: 2}}]",
            "less than or equal to 1",
        ),
        ("routes: [{name: x, backends: [{model: resnet50, wieght: 3}]}]", "Extra inputs"),
        ("routes: [oops", "not valid YAML"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_invalid_tables_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        RoutingTable.from_yaml(text)


def test_the_committed_routing_tables_are_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in (root / "config" / "routing.yaml", root / "tests" / "data" / "routing.yaml"):
        assert RoutingTable.from_file(path).routes
