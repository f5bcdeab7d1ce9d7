"""The facts of every swept model, read from the export manifests and set beside the published numbers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from deploylab.services.measure.names import served_model
from deploylab.services.measure.results import ModelFacts
from deploylab.services.modelzoo.manifest import Manifest, read_repository


def facts_from_manifest(manifest: Manifest) -> ModelFacts:
    served = served_model(manifest.model)
    spec, variant = served.spec, served.variant
    return ModelFacts(
        triton_model=manifest.model,
        model=spec.name,
        variant=variant,
        family=manifest.family,
        params=manifest.params,
        gmacs=manifest.gmacs,
        onnx_mb=round(manifest.onnx_bytes / 1e6, 2),
        parity_max_abs_error=manifest.parity.max_abs_error,
        reparam_max_abs_error=manifest.parity.reparam_max_abs_error,
        reference_params=spec.variant(variant).expected_params,
        reference_gmacs=spec.reference_gmacs,
        reference=spec.reference,
        serving=dict(manifest.serving),
        precision=manifest.precision,
        engine=manifest.engine,
        fidelity_top1_agreement=held_out_agreement(manifest),
    )


def held_out_agreement(manifest: Manifest) -> float | None:
    """Top-1 agreement with fp32 on the held-out photos, as the export measured it."""
    fidelity = (manifest.quantization or {}).get("fidelity_vs_fp32")
    held_out = fidelity.get("held_out") if isinstance(fidelity, dict) else None
    value = held_out.get("top1_agreement") if isinstance(held_out, dict) else None
    return float(value) if isinstance(value, int | float) else None


def collect_facts(repository: Path, triton_models: Iterable[str]) -> list[ModelFacts]:
    """Facts for the given Triton models; a model without a manifest is an error (export it first)."""
    manifests = read_repository(repository)
    wanted = list(triton_models)
    missing = [m for m in wanted if m not in manifests]
    if missing:
        raise FileNotFoundError(
            f"no export manifest for {', '.join(missing)} in {repository}: run `deploylab export` first"
        )
    return [facts_from_manifest(manifests[m]) for m in wanted]
