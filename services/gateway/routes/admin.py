"""Admin endpoints (routing reload, model load/unload): off unless an API key is configured."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import AdminDep, ContextDep
from ..errors import InvalidInputError
from ..routing import RoutingError
from ..schemas import ErrorResponse

router = APIRouter(prefix="/admin", tags=["admin"])

_ERRORS = {
    401: {"model": ErrorResponse, "description": "missing or wrong X-API-Key"},
    404: {"model": ErrorResponse, "description": "admin disabled (no key configured) or unknown model"},
}


@router.post(
    "/routing/reload",
    summary="Reload the routing table from its file (keeps the old one if the new one is invalid)",
    responses={**_ERRORS, 400: {"model": ErrorResponse, "description": "invalid table, old kept"}},  # type: ignore[dict-item]
)
async def reload_routing(_: AdminDep, context: ContextDep) -> dict[str, object]:
    try:
        table = context.reload_routing()
    except RoutingError as exc:
        raise InvalidInputError(
            f"routing table not applied, the previous one stays in use: {exc}",
            details={"source": str(context.settings.routing_file)},
        ) from None
    return {"status": "applied", "source": table.source, "routes": sorted(table.routes)}


@router.post("/models/{model}/load", summary="Load a model in Triton", responses=_ERRORS)  # type: ignore[arg-type]
async def load_model(model: str, request: Request, _: AdminDep, context: ContextDep) -> dict[str, str]:
    target = context.routing.resolve(model).target
    request.state.model, request.state.variant = target.model, target.variant
    await context.client.load_model(target.triton_model)
    await context.probe()
    return {"status": "loaded", "model": target.triton_model}


@router.post("/models/{model}/unload", summary="Unload a model from Triton", responses=_ERRORS)  # type: ignore[arg-type]
async def unload_model(model: str, request: Request, _: AdminDep, context: ContextDep) -> dict[str, str]:
    target = context.routing.resolve(model).target
    request.state.model, request.state.variant = target.model, target.variant
    await context.client.unload_model(target.triton_model)
    await context.probe()
    return {"status": "unloaded", "model": target.triton_model}
