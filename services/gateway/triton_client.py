"""The gateway's only door to Triton: one pooled aiohttp session speaking KServe v2 over HTTP.

Requests are encoded and decoded with tritonclient's own binary-tensor helpers (no JSON floats), and
v2 passthrough forwards the client's bytes untouched. Failures become gateway errors here, once:
refused connection → 503 quickly, no answer in time → 504, Triton's 4xx → the client's 400.

Retries only where safe: inference is a pure function of its input, so a request that failed
before any response byte arrived (refused connection, a pooled keep-alive socket the server had
closed) is retried once. Timeouts are never retried — that would double the load on a slow server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson
import tritonclient.http as tritonhttp
from deploylab.services.modelzoo.repository import INPUT_NAME, NUMPY_DTYPES, OUTPUT_NAME

from .errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    GatewayError,
    InvalidTensorError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
)
from .metrics import SHARED_MEMORY_SLOT_MISSES, TENSOR_TRANSPORT
from .triton_shm import SharedMemoryPool, Slot, is_local
from .triton_wire import WireChannel

log = logging.getLogger("deploylab.gateway.triton")

HEADER_LENGTH = "Inference-Header-Content-Length"
_RETRYABLE_CONNECTION_ERRORS = (
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
)


@dataclass(frozen=True)
class RawResponse:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class SlotLease:
    """A shared-memory slot checked out for one request (see `TritonClient.lease_slot`)."""

    slot: Slot
    #: True while Triton holds a request naming this slot and has not answered it.
    in_flight: bool = False


@dataclass(frozen=True)
class InferOutput:
    logits: np.ndarray
    model_version: str


@dataclass(frozen=True)
class SharedInferRequest:
    """One inference through shared memory, its tensor's bytes aside: the model, the input tensor's shape
    and datatype, the output's width, and how the request goes out (path, id, deadline)."""

    model: str
    shape: list[int]
    num_classes: int
    datatype: str = "FP32"
    path: str | None = None  # None: /v2/models/<model>/infer
    request_id: str | None = None
    timeout_s: float | None = None  # None: the client's request timeout

    @property
    def input_bytes(self) -> int:
        return math.prod(self.shape) * np.dtype(NUMPY_DTYPES[self.datatype]).itemsize

    @property
    def output_bytes(self) -> int:
        """The FP32 logits of every row."""
        return self.shape[0] * self.num_classes * 4


#: The header a Triton started with restricted protocol groups (compose, Kubernetes) expects the key in.
TRITON_KEY_HEADER = "deploylab-triton-key"


class TritonClient:
    """Async client bound to one Triton HTTP endpoint (`host:port`)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 128,
        connect_timeout_s: float = 0.5,
        request_timeout_s: float = 10.0,
        shared_memory_slots: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.base_url = f"http://{url}"
        self.api_key = api_key
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self._session: aiohttp.ClientSession | None = None
        #: System shared memory to a Triton on this host (None: plain HTTP bodies).
        self.shm: SharedMemoryPool | None = (
            SharedMemoryPool(shared_memory_slots) if shared_memory_slots > 0 and is_local(url) else None
        )
        #: The lean channel for shared-memory inference requests (a few hundred bytes each way).
        self._wire: WireChannel | None = None
        if self.shm is not None:
            host, port = url.rsplit(":", 1)
            self._wire = WireChannel(host.strip("[]"), int(port), connect_timeout_s=connect_timeout_s)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.pool_size, keepalive_timeout=30, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
            auto_decompress=False,
            headers=self._default_headers(),
            skip_auto_headers=("User-Agent",),
        )

    def _default_headers(self) -> dict[str, str]:
        # Loopback: compression would only cost CPU, and passthrough relays bytes as they come.
        headers = {"Accept-Encoding": "identity"}
        if self.api_key is not None:  # a Triton whose model-repository API is restricted to this key
            headers[TRITON_KEY_HEADER] = self.api_key
        return headers

    async def close(self) -> None:
        if self.shm is not None and self._session is not None:
            names = [
                r.name for slot in self.shm.slots() if slot.registered for r in (slot.input, slot.output)
            ]
            for name in names + self.shm.retired:
                with contextlib.suppress(GatewayError):
                    await self._unregister(name)
        if self.shm is not None:
            self.shm.close()
        if self._wire is not None:
            self._wire.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("TritonClient.start() was not awaited")
        return self._session

    # -- transport -----------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
        model: str | None = None,
        control: bool = False,
    ) -> RawResponse:
        """One HTTP exchange with Triton, with the error mapping and the one safe retry.

        `control` requests (health, index, config, load) use their own, relaxed connect timeout:
        a tight inference budget must not make Triton look dead to the health probe.
        """
        limit = timeout_s if timeout_s is not None else self.request_timeout_s
        connect = max(self.connect_timeout_s, 1.0) if control else self.connect_timeout_s
        client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect)
        url = self.base_url + path
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(limit):
                    async with self.session.request(
                        method, url, data=body, headers=headers, timeout=client_timeout
                    ) as response:
                        payload = await response.read()
                        return RawResponse(response.status, payload, dict(response.headers))
            except aiohttp.ConnectionTimeoutError:
                raise BackendUnavailableError(
                    f"Triton at {self.base_url} did not accept a connection within {connect:g}s"
                ) from None
            except TimeoutError:
                raise BackendTimeoutError(
                    f"Triton did not answer within {limit:g}s" + (f" for model {model!r}" if model else ""),
                    details={"timeout_s": limit},
                ) from None
            except _RETRYABLE_CONNECTION_ERRORS as exc:
                if attempt == 2 or isinstance(exc, aiohttp.ClientConnectorError) and not _stale(exc):
                    raise BackendUnavailableError(
                        f"Triton at {self.base_url} is unavailable: {_reason(exc)}"
                    ) from None
                log.debug("retrying after connection error: %s", exc)
            except aiohttp.ClientError as exc:
                raise BackendUnavailableError(f"Triton request failed: {_reason(exc)}") from None
        raise AssertionError("unreachable")

    # -- inference -----------------------------------------------------------------------------
    async def infer(
        self, model: str, batch: np.ndarray, timeout_s: float | None = None, num_classes: int = 1000
    ) -> InferOutput:
        """Run `batch` (N, 3, H, W; float32, or uint8 pixels for a uint8-input model) through `model`;
        binary tensors both ways, the datatype the batch's dtype.

        The request carries the gateway's deadline (Triton's `timeout` parameter, in µs): a model whose
        queue policy honours it (the exporter's default) drops the request from its queue once the
        gateway has answered 504, instead of computing a result nobody waits for.
        """
        limit = timeout_s if timeout_s is not None else self.request_timeout_s
        datatype = array_datatype(batch)
        shared = await self.infer_shared(
            SharedInferRequest(model, list(batch.shape), num_classes, datatype, timeout_s=limit), batch
        )
        if shared is not None:
            return shared
        TENSOR_TRANSPORT.labels(model, "http").inc()
        tensor = tritonhttp.InferInput(INPUT_NAME, list(batch.shape), datatype)
        tensor.set_data_from_numpy(batch, binary_data=True)
        output = tritonhttp.InferRequestedOutput(OUTPUT_NAME, binary_data=True)
        body, json_size = tritonhttp.InferenceServerClient.generate_request_body(
            [tensor], outputs=[output], timeout=max(1, int(limit * 1e6))
        )
        headers = {"Content-Type": "application/octet-stream"}
        if json_size is not None:
            headers[HEADER_LENGTH] = str(json_size)
        response = await self.request(
            "POST",
            f"/v2/models/{model}/infer",
            body=body,
            headers=headers,
            timeout_s=limit,
            model=model,
        )
        if response.status != 200:
            raise triton_error(response, model)
        return parse_infer_response(response, model)

    async def infer_shared(
        self, request: SharedInferRequest, inputs: np.ndarray | memoryview
    ) -> InferOutput | None:
        """Infer through system shared memory; None when it is not available (use HTTP bodies).

        `inputs` is the request's tensor (an array, or the raw little-endian bytes of a v2 request),
        copied into a leased slot.
        """
        input_bytes = inputs.nbytes
        with self.lease_slot(input_bytes, request.output_bytes) as lease:
            if lease is None:
                return None
            data = (
                inputs
                if isinstance(inputs, memoryview)
                else memoryview(np.ascontiguousarray(inputs, dtype=NUMPY_DTYPES[request.datatype]))  # type: ignore[arg-type]
            )
            view = lease.slot.input.view()
            try:
                view[:input_bytes] = data.cast("B")
            finally:
                view.release()
            return await self.infer_leased(request, lease, 0)

    @contextlib.contextmanager
    def lease_slot(
        self, input_bytes: int, output_bytes: int, *, count_miss: bool = True
    ) -> Iterator[SlotLease | None]:
        """A shared-memory slot for one request, or None (no shared memory, or every slot busy).

        `count_miss=False` for a first try that is followed by another (the v2 route reads the body
        into a slot when one is free, and otherwise tries again once the body is in memory).

        The slot goes back to the pool when the block ends, unless a request using it is still
        unanswered (timeout, cancellation): Triton may yet read its input or write its output, so
        such a slot is discarded, never reused.
        """
        pool = self.shm
        slot = pool.checkout(input_bytes, output_bytes) if pool is not None else None
        if pool is None or slot is None:
            if pool is not None and count_miss:
                SHARED_MEMORY_SLOT_MISSES.inc()
            yield None
            return
        lease = SlotLease(slot)
        try:
            yield lease
        finally:
            if lease.in_flight:
                pool.discard(slot)
            else:
                pool.checkin(slot)

    async def infer_leased(
        self, request: SharedInferRequest, lease: SlotLease, offset: int
    ) -> InferOutput | None:
        """Infer the request's tensor, already in the lease's input region at `offset`; None: use HTTP."""
        pool, slot = self.shm, lease.slot
        if pool is None or not await self._ensure_registered(slot):
            return None
        model = request.model
        limit = request.timeout_s if request.timeout_s is not None else self.request_timeout_s
        payload: dict[str, Any] = {
            "inputs": [{
                "name": INPUT_NAME, "shape": request.shape, "datatype": request.datatype,
                "parameters": {"shared_memory_region": slot.input.name,
                               "shared_memory_offset": offset,
                               "shared_memory_byte_size": request.input_bytes},
            }],
            "outputs": [{
                "name": OUTPUT_NAME,
                "parameters": {"shared_memory_region": slot.output.name,
                               "shared_memory_byte_size": request.output_bytes},
            }],
            "parameters": {"timeout": max(1, int(limit * 1e6))},
        }  # fmt: skip
        if request.request_id is not None:
            payload["id"] = request.request_id
        body = orjson.dumps(payload)
        target = request.path or f"/v2/models/{model}/infer"
        TENSOR_TRANSPORT.labels(model, "shared_memory").inc()
        lease.in_flight = True
        response = await self._post_shared(target, body, limit, model)
        lease.in_flight = False
        if response.status != 200 and _lost_region(response):
            # Triton restarted and forgot our regions: register again, once.
            pool.forget_registrations()
            if not await self._ensure_registered(slot):
                return None
            lease.in_flight = True
            response = await self._post_shared(target, body, limit, model)
            lease.in_flight = False
        if response.status != 200:
            raise triton_error(response, model)
        answer = orjson.loads(response.body)
        logits = np.frombuffer(slot.output.read(request.output_bytes), dtype=np.float32)
        rows = logits.reshape(request.shape[0], request.num_classes)
        return InferOutput(rows, str(answer.get("model_version", "")))

    async def _post_shared(self, path: str, body: bytes, timeout_s: float, model: str) -> RawResponse:
        """A shared-memory inference request: a few hundred bytes each way, over the lean channel."""
        if self._wire is None:
            return await self.request("POST", path, body=body, headers={"Content-Type": "application/json"},
                                      timeout_s=timeout_s, model=model)  # fmt: skip
        status, payload, headers = await self._wire.post(
            path, body, content_type="application/json", timeout_s=timeout_s, what=f" for model {model!r}"
        )
        return RawResponse(status, payload, headers)

    async def _ensure_registered(self, slot: Slot) -> bool:
        """Register the slot's regions; on failure turn shared memory off for good (HTTP still works)."""
        pool = self.shm
        if pool is None:
            return False
        if slot.registered:
            return True
        while pool.retired:
            with contextlib.suppress(GatewayError):
                await self._unregister(pool.retired.pop())
        for region in (slot.input, slot.output):
            await self._unregister(region.name)  # a stale registration of the same name (restart)
            body = orjson.dumps({"key": region.key, "offset": 0, "byte_size": region.size})
            response = await self.request(
                "POST", f"/v2/systemsharedmemory/region/{region.name}/register", body=body, control=True
            )
            if response.status != 200:
                log.warning(
                    "Triton cannot map the gateway's shared memory (%s); sending tensors over HTTP",
                    response.body[:200].decode(errors="replace"),
                )
                self.shm = None
                pool.close()
                return False
        slot.registered = True
        return True

    async def _unregister(self, name: str) -> None:
        await self.request("POST", f"/v2/systemsharedmemory/region/{name}/unregister", body=b"", control=True)

    async def forward(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], model: str | None
    ) -> RawResponse:
        """Pass a v2 request through unchanged (the caller validated it)."""
        return await self.request(method, path, body=body, headers=headers, model=model)

    # -- health and control --------------------------------------------------------------------
    async def server_readiness(self, timeout_s: float = 1.0) -> bool | None:
        """True ready, False not ready or unreachable, None: no answer in time (busy or hung)."""
        try:
            response = await self.request("GET", "/v2/health/ready", timeout_s=timeout_s, control=True)
        except BackendTimeoutError:
            return None
        except GatewayError:
            return False
        if response.status == 200 and self._wire is not None and self.shm is not None:
            self._wire.keep_warm()
        return response.status == 200

    async def repository_index(self, timeout_s: float = 2.0) -> dict[str, str]:
        """Triton model name → state (READY, UNAVAILABLE, LOADING, …) for every model it knows."""
        response = await self.request(
            "POST", "/v2/repository/index", body=b"{}", timeout_s=timeout_s, control=True
        )
        if response.status != 200:
            raise triton_error(response, None)
        index: dict[str, str] = {}
        for entry in json.loads(response.body):
            state = entry.get("state", "")
            # Several versions may be listed; a READY version wins.
            if index.get(entry["name"]) != "READY":
                index[entry["name"]] = state or "NOT_LOADED"
        return index

    async def model_config(self, model: str, timeout_s: float = 2.0) -> dict[str, Any]:
        return await self._model_json(model, "config", timeout_s)

    async def model_statistics(self, model: str, timeout_s: float = 2.0) -> dict[str, Any]:
        """Triton's cumulative inference statistics for `model` (per batch size, per stage)."""
        return await self._model_json(model, "stats", timeout_s)

    async def load_model(self, model: str) -> None:
        await self._repository_action(model, "load", timeout_s=120.0)

    async def unload_model(self, model: str) -> None:
        await self._repository_action(model, "unload", timeout_s=60.0)

    async def _model_json(self, model: str, resource: str, timeout_s: float) -> dict[str, Any]:
        path = f"/v2/models/{model}/{resource}"
        response = await self.request("GET", path, timeout_s=timeout_s, control=True)
        if response.status != 200:
            raise triton_error(response, model)
        return json.loads(response.body)  # type: ignore[no-any-return]

    async def _repository_action(self, model: str, action: str, timeout_s: float) -> None:
        path = f"/v2/repository/models/{model}/{action}"
        response = await self.request(
            "POST", path, body=b"{}", timeout_s=timeout_s, model=model, control=True
        )
        if response.status != 200:
            raise triton_error(response, model)


def array_datatype(batch: np.ndarray) -> str:
    """The v2 datatype of an input batch: UINT8 for uint8 pixels, FP32 for anything else."""
    return "UINT8" if batch.dtype == np.uint8 else "FP32"


def parse_infer_response(response: RawResponse, model: str) -> InferOutput:
    """Logits and model version from a successful infer answer (JSON or binary outputs)."""
    header_length = response.headers.get(HEADER_LENGTH)
    try:
        result = tritonhttp.InferenceServerClient.parse_response_body(
            response.body, header_length=int(header_length) if header_length else None
        )
    except Exception as exc:  # tritonclient raises several types for malformed bodies
        raise BackendError(f"unreadable answer from Triton for {model!r}: {_reason(exc)}") from None
    logits = result.as_numpy(OUTPUT_NAME)
    if logits is None:
        raise BackendError(f"Triton's answer for {model!r} has no {OUTPUT_NAME!r} output")
    return InferOutput(logits, str(result.get_response().get("model_version", "")))


def _lost_region(response: RawResponse) -> bool:
    text = response.body[:300].decode(errors="replace").lower()
    return "shared memory region" in text and ("unable to find" in text or "not found" in text)


def triton_error(response: RawResponse, model: str | None) -> GatewayError:
    """Map a non-200 Triton answer to the gateway error the client should see."""
    try:
        message = str(json.loads(response.body).get("error", "")) or response.body[:300].decode()
    except (ValueError, AttributeError, UnicodeDecodeError):
        message = response.body[:300].decode(errors="replace")
    lowered = message.lower()
    label = f"model {model!r}: " if model else ""
    if "unknown model" in lowered and " version " in lowered:
        return ModelNotFoundError(f"{label}no such version in Triton ({message})")
    if "unknown model" in lowered or "no available versions" in lowered:
        # The gateway 404s names it does not know before calling Triton: here the model exists
        # but is not loaded right now (unloaded, reloading, Triton restarted).
        return ModelNotReadyError(f"{label}not loaded in Triton ({message})")
    if "exceeds maximum queue size" in lowered:
        return OverloadedError(f"{label}Triton's queue is full ({message})")
    if "timeout" in lowered and "queue" in lowered or "request timeout expired" in lowered:
        return BackendTimeoutError(f"{label}timed out in Triton's queue ({message})")
    if "not ready" in lowered or "unavailable" in lowered or response.status == 503:
        return ModelNotReadyError(f"{label}not ready in Triton ({message})")
    if 400 <= response.status < 500:
        return InvalidTensorError(f"{label}Triton refused the request: {message}")
    return BackendError(f"{label}Triton error {response.status}: {message}")


def _stale(exc: aiohttp.ClientConnectorError) -> bool:
    """A reset on a reused socket (not a refused connect) is worth one retry."""
    return isinstance(exc.os_error, ConnectionResetError)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
