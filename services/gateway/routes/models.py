"""`GET /v1/models`: what can be asked for — catalog, served state, facts, variants, routes."""

from __future__ import annotations

from dataclasses import asdict

from deploylab.services.modelzoo.catalog import CATALOG
from fastapi import APIRouter

from ..deps import ContextDep
from ..schemas import ModelInfo, ModelListResponse, RouteBackendInfo, RouteInfo, VariantInfo

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelListResponse, summary="Models, facts and routes")
async def list_models(context: ContextDep) -> ModelListResponse:
    manifests = context.manifests()
    states = context.model_states
    models = []
    for spec in CATALOG.values():
        variants = []
        for variant in spec.all_variant_names:
            name = spec.triton_name(variant)
            manifest = manifests.get(name)
            exported = manifest is not None or name in states
            planned = spec.variant(variant)
            if planned.opt_in and not exported:
                continue  # opt-in variants (int8, openvino, …) are listed once someone exported them
            variants.append(
                VariantInfo(
                    name=variant,
                    triton_model=name,
                    precision=manifest.precision if manifest else planned.precision,
                    engine=manifest.engine if manifest else planned.engine,
                    exported=exported,
                    served=states.get(name) == "READY",
                    params=manifest.params if manifest else planned.expected_params,
                    gmacs=manifest.gmacs if manifest else None,
                    onnx_bytes=manifest.onnx_bytes if manifest else None,
                    parity_max_abs_error=manifest.parity.max_abs_error if manifest else None,
                )
            )
        models.append(
            ModelInfo(
                name=spec.name,
                family=spec.family,
                default_variant=spec.default_variant,
                input_size=spec.input_size,
                preprocessing=asdict(spec.preprocessing),
                variants=variants,
            )
        )
    routing = context.routing
    routes = []
    for route in routing.routes.values():
        total = route.total_weight
        routes.append(
            RouteInfo(
                name=route.name,
                backends=[
                    RouteBackendInfo(
                        model=b.target.model, variant=b.target.variant, weight=round(b.weight / total, 6)
                    )
                    for b in route.backends
                ],
                shadow=RouteBackendInfo(
                    model=route.shadow.model, variant=route.shadow.variant, weight=route.shadow_fraction
                )
                if route.shadow
                else None,
            )
        )
    return ModelListResponse(models=models, routes=routes, sticky_header=routing.sticky_header)
