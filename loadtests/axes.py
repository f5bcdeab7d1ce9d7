"""Which deployments a comparison measures: the models, and the axes of how each is served.

Every model of the set is measured in its default form (fp32 on ONNX Runtime; RepVGG in both of its
forms). Each axis adds the opt-in variants that differ from the default along it: `precision` the int8
forms (and fp16 where the instances are GPUs), `engine` the forms another engine runs (OpenVINO).
By default the axes are measured on one anchor model, so the report compares precisions and engines
without multiplying the sweep's length by them; `--axes precision,engine` measures them on every model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deploylab.services.modelzoo.catalog import ModelSpec, Variant

#: What sets a variant apart along each axis.
AXES: dict[str, Callable[[Variant], bool]] = {
    "precision": lambda variant: variant.precision != "fp32",
    "engine": lambda variant: variant.engine != "onnxruntime",
}
#: The model the default comparison measures every axis on, when it is compared (else the first model
#: named): the reference CNN of the catalog, whose compute-bound convolutions gain most from int8.
ANCHOR_MODEL = "resnet50"
#: `--axes` value of the default: every axis, on the anchor model only.
ANCHOR = "anchor"
NONE = "none"


def parse_axes(text: str) -> tuple[str, ...]:
    """`anchor` (default), `none`, or a comma-separated list of axes for every model."""
    words = tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
    if words in ((ANCHOR,), (NONE,)):
        return words
    unknown = [w for w in words if w not in AXES]
    if unknown or not words:
        known = ", ".join([ANCHOR, NONE, *AXES])
        raise ValueError(f"--axes takes {known} (comma-separated axes), got {text!r}")
    return words


def anchor_of(models: Sequence[str]) -> str | None:
    return ANCHOR_MODEL if ANCHOR_MODEL in models else next(iter(models), None)


def axis_variants(
    spec: ModelSpec, axes: Sequence[str], anchor: str | None, instance_kind: str = "cpu"
) -> list[str]:
    """The opt-in variants of `spec` that `axes` add to its default forms, in catalog order; variants
    served on GPU instances only (fp16) only when the comparison's instances are GPUs."""
    if tuple(axes) == (NONE,):
        return []
    if tuple(axes) == (ANCHOR,):
        if spec.name != anchor:
            return []
        axes = tuple(AXES)
    return [
        variant.name
        for variant in spec.variants
        if variant.opt_in
        and any(AXES[axis](variant) for axis in axes)
        and _on_axes(variant, axes)
        and (instance_kind == "gpu" or not variant.needs_gpu)
    ]


def _on_axes(variant: Variant, axes: Sequence[str]) -> bool:
    """A variant that differs along several axes (int8 on OpenVINO) needs all of them asked for."""
    return all(axis in axes for axis, differs in AXES.items() if differs(variant))
