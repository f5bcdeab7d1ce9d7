"""Admin endpoints (routing reload, model load/unload): off unless an API key is configured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request

from ..context import GatewayContext
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
    return await _change_model(model, request, context, context.client.load_model, "loaded")


@router.post("/models/{model}/unload", summary="Unload a model from Triton", responses=_ERRORS)  # type: ignore[arg-type]
async def unload_model(model: str, request: Request, _: AdminDep, context: ContextDep) -> dict[str, str]:
    return await _change_model(model, request, context, context.client.unload_model, "unloaded")


async def _change_model(
    model: str,
    request: Request,
    context: GatewayContext,
    change: Callable[[str], Awaitable[None]],
    status: str,
) -> dict[str, str]:
    """Apply `change` to the Triton model `model` resolves to, then probe: readiness follows at once."""
    target = context.routing.resolve(model).target
    request.state.model, request.state.variant = target.model, target.variant
    await change(target.triton_model)
    await context.probe()
    return {"status": status, "model": target.triton_model}
