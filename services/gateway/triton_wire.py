"""A lean keep-alive HTTP/1.1 channel for the gateway's hot request: shared-memory inference.

With the tensor in shared memory (triton_shm.py) the request to Triton is a few hundred bytes of JSON
and the answer a few hundred more. For such exchanges aiohttp's per-request machinery (request and
response objects, header multidicts, URL handling, a writer task) costs ≈ 70 µs of CPU against ≈ 14 µs
for a pre-formatted request written to a pooled socket and parsed by httptools (the C parser uvicorn
already uses) — on 2 cores shared with Triton that CPU comes out of inference throughput
(docs/benchmarks.md, "Gateway: measured levers"). Everything else (passthrough, health, control)
stays on aiohttp.

Same promises as `TritonClient.request`: refused or unaccepted connections → 503 quickly, no answer
within the deadline → 504 and the socket is closed (a late answer can never be read by the next
request), one retry only when a reused keep-alive socket turned out to be closed before any byte of
the answer arrived.
"""

from __future__ import annotations

import asyncio

import httptools

from .errors import BackendTimeoutError, BackendUnavailableError

#: status, body, headers (names as Triton sent them)
Answer = tuple[int, bytes, dict[str, str]]


class _ClosedBeforeAnswer(ConnectionError):
    """The server closed the connection before sending any byte of the answer."""


class _Connection(asyncio.Protocol):
    """One socket to Triton; one exchange at a time (HTTP/1.1 without pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.answered_bytes = 0
        self._body: list[bytes] = []
        self._headers: dict[str, str] = {}

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP answer from Triton: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answered_bytes == 0:
            self._fail(_ClosedBeforeAnswer("Triton closed the connection"))
        else:
            self._fail(ConnectionError("Triton closed the connection mid-answer"))

    # -- httptools callbacks -----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), b"".join(self._body), self._headers))
        if not self.parser.should_keep_alive():
            self.close()

    # -- use ---------------------------------------------------------------------------------------
    def send(self, request: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._body, self._headers, self.answered_bytes = [], {}, 0
        self.waiter = loop.create_future()
        self.transport.write(request)
        return self.waiter

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class WireChannel:
    """Pooled connections to one Triton HTTP endpoint for small POSTs (at most `max_idle` kept)."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float, max_idle: int = 64) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._warming: asyncio.Task[None] | None = None
        self.address = f"{host}:{port}"
        self._host_header = self.address.encode()

    async def post(self, path: str, body: bytes, *, content_type: str, timeout_s: float, what: str) -> Answer:
        """(status, body, headers) of one POST; BackendUnavailableError / BackendTimeoutError otherwise."""
        request = b"".join((
            b"POST ", path.encode(), b" HTTP/1.1\r\nHost: ", self._host_header,
            b"\r\nContent-Type: ", content_type.encode(),
            b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n\r\n", body,
        ))  # fmt: skip
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            connection, reused = await self._acquire(loop)
            try:
                async with asyncio.timeout(timeout_s):
                    answer = await connection.send(request, loop)
            except TimeoutError:
                connection.close()  # its late answer must never reach the next request
                raise BackendTimeoutError(
                    f"Triton did not answer within {timeout_s:g}s{what}", details={"timeout_s": timeout_s}
                ) from None
            except _ClosedBeforeAnswer:
                connection.close()
                if reused and attempt == 1:
                    continue  # a keep-alive socket the server had closed: inference is pure, retry once
                raise BackendUnavailableError(f"Triton at {self.address} closed the connection") from None
            except ConnectionError as exc:
                connection.close()
                raise BackendUnavailableError(f"Triton request failed: {exc}") from None
            except BaseException:
                connection.close()  # cancelled (client went away): the socket's state is unknown
                raise
            self._release(connection)
            return answer
        raise AssertionError("unreachable")

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await loop.create_connection(_Connection, self.host, self.port)
        except TimeoutError:
            raise BackendUnavailableError(
                f"Triton at {self.address} did not accept a connection within {self.connect_timeout_s:g}s"
            ) from None
        except OSError as exc:
            raise BackendUnavailableError(
                f"Triton at {self.address} is unavailable: {exc.strerror or exc}"
            ) from None
        return connection, False  # asyncio and uvloop set TCP_NODELAY on TCP sockets

    def keep_warm(self, connect_timeout_s: float = 1.0) -> None:
        """Open one idle connection in the background when none is pooled.

        The first request after start-up, or after a timeout closed the pooled socket, would otherwise
        pay the TCP connect inside its own deadline — and the connect timeout, whose 503 means "Triton
        is not accepting", is meant for a Triton that is down, not for a busy host's slow connect.
        """
        if self._idle or (self._warming is not None and not self._warming.done()):
            return

        async def warm() -> None:
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(connect_timeout_s):
                    _, connection = await loop.create_connection(_Connection, self.host, self.port)
            except (OSError, TimeoutError):
                return  # the next request connects itself and reports what happens
            self._release(connection)

        self._warming = asyncio.get_running_loop().create_task(warm())

    def _release(self, connection: _Connection) -> None:
        if connection.closed or len(self._idle) >= self.max_idle:
            connection.close()
        else:
            self._idle.append(connection)

    def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        while self._idle:
            self._idle.pop().close()
