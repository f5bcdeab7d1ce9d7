"""Wire the gateway: settings → context (lifespan) → middleware → routers. No logic lives here."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from deploylab.services import __version__
from deploylab.services.common.allocator import tune_this_process
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .context import GatewayContext
from .drain import DRAIN, Drain
from .errors import register_exception_handlers
from .middleware import BodyLimitMiddleware, DrainMiddleware, MetricsMiddleware
from .routes import admin, classify, health, models, v2
from .routing import RoutingError, RoutingTable
from .settings import GatewaySettings, get_settings
from .shedding import AdmissionMiddleware, RefusalPacer

log = logging.getLogger("deploylab.gateway")

DESCRIPTION = """
The deploylab gateway: classify images with any served CNN, or speak KServe v2 straight to Triton.
Requests name a **route** (alias, weighted split, shadow — see `config/routing.yaml`) or a **model**.
Errors are always `{"error": {"code", "message", "status", "details"}}`.
"""


def create_app(settings: GatewaySettings | None = None, drain: Drain = DRAIN) -> FastAPI:
    """The ASGI app (uvicorn calls this as a factory in every worker); `drain`: this process's state."""
    settings = settings or get_settings()
    routing = load_routing(settings)
    tune_this_process()  # 600 KB bodies: keep their blocks in the heap (services/common/allocator.py)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = GatewayContext(settings, routing, drain)
        app.state.context = context
        await context.start()
        _install_sighup(context)
        _settle_garbage_collector()
        log.info(
            "gateway ready: Triton %s (%s), %d routes",
            settings.triton_url,
            "ready" if context.triton_ready else "not ready",
            len(routing.routes),
        )
        try:
            yield
        finally:
            await context.stop()

    app = FastAPI(
        title="deploylab gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.retry_after_s = settings.retry_after_s
    register_exception_handlers(app)
    for router in (classify.router, v2.router, models.router, health.router, admin.router):
        app.include_router(router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        read_timeout_s=settings.body_read_timeout_s,
        deadline_s=settings.body_deadline_s,
    )
    app.add_middleware(
        AdmissionMiddleware,
        context=lambda: getattr(app.state, "context", None),
        pacer=RefusalPacer(settings.shed_rate_per_s, settings.shed_max_delay_s),
    )
    app.add_middleware(DrainMiddleware, drain=drain, retry_after_s=settings.retry_after_s)
    app.add_middleware(MetricsMiddleware)  # outermost: sees every status, 413s and 503s included
    return app


def load_routing(settings: GatewaySettings) -> RoutingTable:
    """The routing table at start-up; an invalid or missing file stops the gateway with the reason."""
    if not settings.routing_file.exists():
        log.warning("no routing file at %s: serving catalog names only", settings.routing_file)
        return RoutingTable.from_yaml("routes: []", "<empty>")
    try:
        return RoutingTable.from_file(settings.routing_file)
    except RoutingError as exc:
        raise SystemExit(f"error: invalid routing table: {exc}") from None


#: Allocations between young-generation collections (CPython's default: 700).
GC_GEN0_THRESHOLD = 20_000


def _settle_garbage_collector() -> None:
    """Freeze what start-up built and collect the young generation less often.

    A request allocates hundreds of short-lived containers (ASGI messages, coroutines, dicts), so
    with CPython's default the cyclic collector ran about once per request and walked the objects
    of every request in flight: 5–7 % of the gateway's CPU at saturation (perf). Almost all of them
    are freed by reference counting anyway. Frozen start-up objects (FastAPI, pydantic, numpy) are
    never walked again.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _install_sighup(context: GatewayContext) -> None:
    """SIGHUP reloads the routing table (single-worker mode; workers also watch the file)."""

    def reload() -> None:
        try:
            context.reload_routing()
        except RoutingError as exc:
            log.error("SIGHUP: routing table rejected, keeping the previous one: %s", exc)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
