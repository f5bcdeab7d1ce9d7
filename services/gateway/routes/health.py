"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from ..deps import ContextDep
from ..schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, summary="Liveness: the process answers")
async def healthz() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get(
    "/readyz",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "not ready (details in the body)"}},
    summary="Readiness: Triton ready and every routed model loaded",
)
async def readyz(context: ContextDep) -> Response:
    states = context.model_states
    loaded = {name: states.get(name) == "READY" for name in context.required_models()}
    ready = (
        context.triton_ready
        and not context.draining
        and all(loaded.values())
        and bool(context.served_models())
    )
    body = HealthResponse(
        status="ready" if ready else ("draining" if context.draining else "not ready"),
        triton="ready" if context.triton_ready else "unavailable",
        models=loaded or dict.fromkeys(context.served_models(), True),
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
