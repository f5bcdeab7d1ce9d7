"""Which deployments a comparison measures: the models of the set, plus the axes (precision, engine)."""

from __future__ import annotations

import pytest
from deploylab.loadtests.axes import AXES, parse_axes
from deploylab.loadtests.runs import resolve_targets
from deploylab.services.modelzoo.catalog import CATALOG, MODEL_SETS


def triton_names(names: list[str], model_set: str, axes: str) -> list[str]:
    return [t.triton_model for t in resolve_targets(names, model_set, parse_axes(axes))]


def test_none_measures_the_default_forms_of_the_set() -> None:
    expected = [CATALOG[m].triton_name(v) for m in MODEL_SETS["default"] for v in CATALOG[m].variant_names]
    assert triton_names([], "default", "none") == expected


def test_the_default_adds_every_axis_on_resnet50_only() -> None:
    names = triton_names([], "default", "anchor")
    extras = [n for n in names if n not in triton_names([], "default", "none")]
    spec = CATALOG["resnet50"]
    assert extras == [spec.triton_name(v.name) for v in spec.variants if v.opt_in and not v.needs_gpu]
    assert {"resnet50_int8", "resnet50_openvino", "resnet50_int8_openvino"} <= set(extras)


def test_gpu_only_precisions_join_only_a_comparison_on_gpu_instances() -> None:
    on_cpu = [t.triton_model for t in resolve_targets(["resnet18"], "default", parse_axes("precision"))]
    on_gpu = [
        t.triton_model for t in resolve_targets(["resnet18"], "default", parse_axes("precision"), "gpu")
    ]
    assert on_cpu == ["resnet18", "resnet18_int8"]
    assert on_gpu == ["resnet18", "resnet18_int8", "resnet18_fp16"]


def test_without_resnet50_the_first_named_model_is_the_anchor() -> None:
    names = triton_names(["mobilenet_v3_small", "resnet18"], "default", "anchor")
    assert "mobilenet_v3_small_int8" in names and not any(n.startswith("resnet18_") for n in names)


def test_precision_axis_adds_int8_to_every_model_and_nothing_of_another_axis() -> None:
    names = triton_names(["resnet18", "repvgg_a0"], "default", "precision")
    assert names[:4] == ["resnet18", "resnet18_int8", "repvgg_a0_train", "repvgg_a0_deploy"]
    assert "repvgg_a0_int8" in names
    for name in names:
        spec = CATALOG[name.split("_int8")[0]] if name.endswith("_int8") else None
        if spec is not None:
            variant = spec.variant("int8")
            assert all(not differs(variant) for axis, differs in AXES.items() if axis != "precision")


def test_a_triton_name_stays_single_whatever_the_axes() -> None:
    assert triton_names(["resnet50_int8"], "default", "precision,engine") == ["resnet50_int8"]


@pytest.mark.parametrize("text", ["", "speed", "precision,speed", " , "])
def test_unknown_axes_are_refused_with_the_known_ones(text: str) -> None:
    with pytest.raises(ValueError, match="anchor, none, precision, engine"):
        parse_axes(text)
