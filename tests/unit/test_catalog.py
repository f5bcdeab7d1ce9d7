"""Catalog facts against the published model cards (torchvision) and the RepVGG paper."""

from __future__ import annotations

import pytest
from deploylab.services.modelzoo.catalog import (
    CATALOG,
    ENGINES,
    MODEL_SETS,
    UnknownModelError,
    UnknownVariantError,
    get_spec,
    imagenet_labels,
    resolve_model_set,
    resolve_triton_name,
)
from deploylab.services.modelzoo.facts import measure_facts

# Straight from the model cards, independent of the catalog's own numbers.
MODEL_CARDS = {
    "resnet18": (11_689_512, 1.81),
    "resnet50": (25_557_032, 4.09),
    "vgg16": (138_357_544, 15.47),
    "mobilenet_v3_large": (5_483_032, 0.22),
    "mobilenet_v3_small": (2_542_856, 0.06),
    "convnext_tiny": (28_589_128, 4.46),
}
REPVGG_PAPER = {"repvgg_a0": (9_108_968, 8_309_384), "repvgg_a1": (14_092_264, 12_789_864)}


@pytest.mark.parametrize("name", sorted(MODEL_CARDS))
def test_torchvision_params_match_model_card_exactly_and_gmacs_within_one_percent(name: str) -> None:
    params, gmacs = MODEL_CARDS[name]
    facts = measure_facts(get_spec(name))
    assert facts.params == params
    # Cards round to 2 decimals: 0.06 stands for 0.0565; allow the rounding as well as 1 %.
    assert abs(facts.gmacs - gmacs) <= max(0.01 * gmacs, 0.005 + 1e-9)


@pytest.mark.parametrize("name", sorted(REPVGG_PAPER))
def test_repvgg_train_and_deploy_params_match_the_paper(name: str) -> None:
    train, deploy = REPVGG_PAPER[name]
    assert measure_facts(get_spec(name), "train").params == train
    assert measure_facts(get_spec(name), "deploy").params == deploy


def test_deploy_form_costs_fewer_macs_than_train_form() -> None:
    spec = get_spec("repvgg_a0")
    assert measure_facts(spec, "deploy").gmacs < measure_facts(spec, "train").gmacs


def test_catalog_covers_the_required_models_and_variants() -> None:
    required = {
        "resnet18",
        "resnet50",
        "vgg16",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "convnext_tiny",
        "repvgg_a0",
        "repvgg_a1",
    }
    assert required <= set(CATALOG)
    for name in ("repvgg_a0", "repvgg_a1"):
        assert get_spec(name).variant_names == ("train", "deploy")
        assert get_spec(name).default_variant == "deploy"
    assert get_spec("resnet50").variant_names == ("default",)


def test_expected_params_in_catalog_equal_the_published_numbers() -> None:
    for name, (params, _) in MODEL_CARDS.items():
        assert get_spec(name).variant().expected_params == params
    for name, (train, deploy) in REPVGG_PAPER.items():
        spec = get_spec(name)
        assert (spec.variant("train").expected_params, spec.variant("deploy").expected_params) == (
            train,
            deploy,
        )


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet50", "vgg16", "mobilenet_v3_large", "mobilenet_v3_small", "convnext_tiny"]
)
def test_preprocessing_matches_torchvision_weights_transforms(name: str) -> None:
    import torchvision

    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    transform = weights.transforms()
    pre = get_spec(name).preprocessing
    assert [pre.resize] == list(transform.resize_size)
    assert [pre.crop] == list(transform.crop_size)
    assert pre.interpolation == transform.interpolation.value
    assert list(pre.mean) == pytest.approx(list(transform.mean))
    assert list(pre.std) == pytest.approx(list(transform.std))


@pytest.mark.parametrize("name", ["repvgg_a0", "repvgg_a1"])
def test_preprocessing_matches_timm_eval_transform(name: str) -> None:
    import math

    import timm
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=timm.create_model(name, pretrained=False))
    pre = get_spec(name).preprocessing
    assert pre.crop == config["input_size"][1]
    assert pre.resize == math.floor(pre.crop / config["crop_pct"])
    assert pre.interpolation == config["interpolation"]
    assert pre.mean == pytest.approx(config["mean"])
    assert pre.std == pytest.approx(config["std"])


def test_labels_are_the_thousand_imagenet_classes() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[999] == "toilet tissue"


def test_triton_names_round_trip() -> None:
    assert get_spec("repvgg_a0").triton_name() == "repvgg_a0_deploy"
    assert get_spec("repvgg_a0").triton_name("train") == "repvgg_a0_train"
    assert get_spec("resnet50").triton_name() == "resnet50"
    spec, variant = resolve_triton_name("repvgg_a1_train")
    assert (spec.name, variant) == ("repvgg_a1", "train")


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_model_has_opt_in_int8_openvino_and_fp16_deployments_of_its_served_form(name: str) -> None:
    spec = get_spec(name)
    served = spec.variant()
    deployments = {
        "int8": ("int8", "onnxruntime", "any"),
        "openvino": ("fp32", "openvino", "any"),
        "int8_openvino": ("int8", "openvino", "any"),
        "fp16": ("fp16", "onnxruntime", "gpu"),
    }
    assert spec.all_variant_names == (*spec.variant_names, *deployments)
    for variant, (precision, engine, device) in deployments.items():
        chosen = spec.variant(variant)
        assert chosen.opt_in and (chosen.precision, chosen.engine, chosen.device) == (
            precision,
            engine,
            device,
        )
        # RepVGG's deployments are of its deploy form: re-parameterized, deploy's parameter count.
        assert (chosen.reparameterize, chosen.expected_params) == (
            served.reparameterize,
            served.expected_params,
        )
        assert resolve_triton_name(spec.triton_name(variant)) == (spec, variant)
    assert all(spec.variant(v).engine == "onnxruntime" for v in spec.variant_names)
    assert not any(spec.variant(v).needs_gpu for v in spec.variant_names)
    assert set(ENGINES) == {"onnxruntime", "openvino"}


def test_deployment_triton_names_extend_the_served_name() -> None:
    assert get_spec("resnet50").triton_name("openvino") == "resnet50_openvino"
    assert get_spec("resnet50").triton_name("int8_openvino") == "resnet50_int8_openvino"
    assert get_spec("repvgg_a0").triton_name("openvino") == "repvgg_a0_openvino"
    assert get_spec("repvgg_a0").triton_name("int8_openvino") == "repvgg_a0_int8_openvino"
    assert get_spec("resnet50").triton_name("fp16") == "resnet50_fp16"
    assert get_spec("repvgg_a0").triton_name("fp16") == "repvgg_a0_fp16"


def test_unknown_model_error_lists_the_known_models() -> None:
    with pytest.raises(UnknownModelError) as info:
        get_spec("resnet51")
    message = str(info.value)
    assert "resnet51" in message and "resnet50" in message and "vgg16" in message


def test_unknown_variant_error_lists_the_variants() -> None:
    with pytest.raises(UnknownVariantError, match="train, deploy"):
        get_spec("repvgg_a0").variant("fused")


def test_model_sets_resolve_to_catalog_specs() -> None:
    assert [s.name for s in resolve_model_set([], "default")] == list(MODEL_SETS["default"])
    assert [s.name for s in resolve_model_set(["vgg16", "vgg16"], None)] == ["vgg16"]
    with pytest.raises(UnknownModelError):
        resolve_model_set([], "everything")
