"""Model names as the load front-ends accept them, resolved one way.

A user names either a Triton model (`resnet50`, `repvgg_a0_train`: one served model) or a catalog
model (`repvgg_a0`). Two questions, two rules:
- *which one model?* (`served_model`): a Triton name stays itself; a catalog name means its default
  variant (RepVGG's deploy form), the one `deploylab export` serves by default;
- *which models?* (`served_models`): a Triton name stays itself; a catalog name means every variant,
  so a comparison of RepVGG measures both of its forms.
"""

from __future__ import annotations

from typing import TypeAlias

from deploylab.services.modelzoo.catalog import (
    CATALOG,
    ServedForm,
    UnknownModelError,
    get_spec,
    resolve_triton_name,
)

#: One served form of a catalog model.
ServedModel: TypeAlias = ServedForm


def served_model(name: str) -> ServedModel:
    """The one model `name` means: a Triton name as is, a catalog name's default variant.

    Unknown names raise UnknownModelError listing the catalog's names.
    """
    try:
        spec, variant = resolve_triton_name(name)
    except UnknownModelError:
        spec = get_spec(name)
        variant = spec.default_variant
    return ServedModel(spec, variant)


def served_models(name: str) -> list[ServedModel]:
    """Every model `name` means: a catalog name's variants (in catalog order), else the Triton name."""
    if name in CATALOG:
        spec = CATALOG[name]
        return [ServedModel(spec, variant) for variant in spec.variant_names]
    spec, variant = resolve_triton_name(name)  # unknown names raise with the known list
    return [ServedModel(spec, variant)]
