"""Cheap, paced refusals: an over-bound inference request is answered 429 before FastAPI sees it.

A refusal must cost a small fraction of a served request, or a retry storm turns the CPU that serves
requests into CPU that refuses them. So the decision is taken in pure ASGI, from the path alone,
before the body is read: no routing of the request through FastAPI, no dependency injection, no
body. And refusals are paced: at most `rate_per_s` leave at once per second; the rest wait their
turn (a timer, no CPU) for up to `max_delay_s`. A client that ignores Retry-After and retries at
once can then make at most one attempt per paced refusal, whatever its concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_body, is_v2_path
from .middleware import declared_length

if TYPE_CHECKING:
    from .context import GatewayContext

#: A refused request with a larger body closes its connection instead of draining the body.
UNREAD_BODY_LIMIT = 64 * 1024


def inference_name(path: str) -> str | None:
    """The model or route name of an inference path (classify, v2 infer), else None."""
    parts = path.split("/")
    # ['', 'v1', 'models', NAME, 'classify'] / ['', 'v2', 'models', NAME, ('versions', V,) 'infer']
    if len(parts) < 5 or parts[2] != "models":
        return None
    if parts[1] == "v1" and len(parts) == 5 and parts[4] == "classify":
        return parts[3]
    versioned = len(parts) == 7 and parts[4] == "versions"
    if parts[1] == "v2" and parts[-1] == "infer" and (len(parts) == 5 or versioned):
        return parts[3]
    return None


class RefusalPacer:
    """Spaces refusals at least 1/rate apart; a refusal never waits longer than max_delay_s."""

    def __init__(self, rate_per_s: float, max_delay_s: float, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate_per_s
        self.max_delay_s = max_delay_s
        self.clock = clock
        self._next = 0.0

    def delay(self) -> float:
        """Seconds this refusal waits before it is sent (and books its turn)."""
        now = self.clock()
        turn = max(now, self._next)
        if turn - now >= self.max_delay_s:
            return self.max_delay_s  # the schedule is full: wait the longest, book nothing
        self._next = turn + self.interval
        return turn - now


class AdmissionMiddleware:
    """Refuse POSTs to a model at its admission bound; everything else passes through untouched."""

    def __init__(
        self, app: ASGIApp, context: Callable[[], GatewayContext | None], pacer: RefusalPacer
    ) -> None:
        self.app = app
        self.context = context
        self.pacer = pacer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            name = inference_name(scope["path"])
            context = self.context() if name is not None else None
            if context is not None and name is not None and await self._refused(context, name, scope, send):
                return
        await self.app(scope, receive, send)

    async def _refused(self, context: GatewayContext, name: str, scope: Scope, send: Send) -> bool:
        query: bytes = scope.get("query_string", b"")
        variant = None
        if b"variant=" in query:
            variant = parse_qs(query.decode("latin-1")).get("variant", [None])[0]
        target = context.routing.fixed_target(name, variant)
        if target is None or not context.limiter.at_bound(target.triton_model):
            return False
        refusal = context.limiter.refuse(target.triton_model)
        state = scope.setdefault("state", {})
        state.update(model=target.model, variant=target.variant, error_code=refusal.code)
        delay = self.pacer.delay()
        if delay > 0:
            await asyncio.sleep(delay)
        body = orjson.dumps(
            error_body(429, refusal.code, refusal.message, refusal.details, v2=is_v2_path(scope["path"]))
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", refusal.headers["Retry-After"].encode()),
        ]
        if (declared_length(scope) or 0) > UNREAD_BODY_LIMIT:
            headers.append((b"connection", b"close"))  # cheaper than receiving a body only to drop it
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
