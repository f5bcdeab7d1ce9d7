"""FastAPI dependencies as Annotated aliases: handlers declare what they need, tests override it.

# NOTE: every dependency is `async def` although none awaits: FastAPI runs a plain `def` dependency
# in its thread pool, a thread hand-off on every request (measured: the largest single cost of the
# v2 passthrough's overhead at batch 1).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from .context import GatewayContext
from .errors import NotFoundError, UnauthorizedError
from .settings import GatewaySettings


async def get_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.context
    return context


async def get_settings_from_context(request: Request) -> GatewaySettings:
    context: GatewayContext = request.app.state.context
    return context.settings


ContextDep = Annotated[GatewayContext, Depends(get_context)]
SettingsDep = Annotated[GatewaySettings, Depends(get_settings_from_context)]


async def require_admin(
    context: ContextDep,
    x_api_key: Annotated[str | None, Header(description="admin API key")] = None,
) -> None:
    """Admin endpoints exist only when a key is configured, and compare keys in constant time."""
    import hmac

    configured = context.settings.admin_api_key
    if configured is None:
        raise NotFoundError("admin endpoints are disabled (no DEPLOYLAB_GATEWAY_ADMIN_API_KEY set)")
    if x_api_key is None or not hmac.compare_digest(
        x_api_key.encode(), configured.get_secret_value().encode()
    ):
        raise UnauthorizedError("missing or wrong X-API-Key")


AdminDep = Annotated[None, Depends(require_admin)]
