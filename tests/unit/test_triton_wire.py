"""The lean channel to Triton: framing, keep-alive, the one safe retry, deadlines, refused ports.

Its peer here is a small real HTTP server on loopback, so each promise is checked on real sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from deploylab.services.gateway.errors import BackendTimeoutError, BackendUnavailableError
from deploylab.services.gateway.triton_wire import WireChannel
from deploylab.services.measure.ports import free_ports

Handler = Callable[[int, bytes], Awaitable[bytes | None]]
#: An answer this late, or a timeout this long, is one the error paths below must not wait for.
LATE_S = 6.0


class Server:
    """Answers each request with `handler(n, body)`: bytes to write, or None to close the socket."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests = 0
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                self.requests += 1
                answer = await self.handler(self.requests, body)
                if answer is None:
                    writer.close()
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def ok(body: bytes, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        extra,
        len(body),
        body,
    )


async def post(
    channel: WireChannel, body: bytes = b"{}", *, timeout_s: float = 2.0, what: str = ""
) -> tuple[int, bytes, dict[str, str]]:
    path = "/v2/models/m/infer"
    return await channel.post(path, body, content_type="application/json", timeout_s=timeout_s, what=what)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_answers_are_framed_and_the_connection_is_reused() -> None:
    async def scenario() -> None:
        async def echo(n: int, body: bytes) -> bytes:
            return ok(b'{"n": %d, "got": %d}' % (n, len(body)))

        async with Server(echo) as server:
            channel = WireChannel("127.0.0.1", server.port, connect_timeout_s=1.0)
            for n in (1, 2, 3):
                status, body, headers = await channel.post(
                    "/v2/models/m/infer",
                    b"x" * (100 * n),
                    content_type="application/json",
                    timeout_s=2,
                    what="",
                )
                assert (status, body) == (200, b'{"n": %d, "got": %d}' % (n, 100 * n))
                assert headers["Content-Type"] == "application/json"
            assert server.connections == 1
            channel.close()

    run(scenario())


def test_a_keep_alive_socket_closed_by_the_server_is_retried_once() -> None:
    async def scenario() -> None:
        async def first_closes(n: int, body: bytes) -> bytes | None:
            return ok(b"{}") if n != 2 else None  # the server drops the reused socket on request 2

        async with Server(first_closes) as server:
            channel = WireChannel("127.0.0.1", server.port, connect_timeout_s=1.0)
            await post(channel)
            status, _, _ = await channel.post(
                "/p", b"{}", content_type="application/json", timeout_s=2, what=""
            )
            assert status == 200 and server.requests == 3 and server.connections == 2
            channel.close()

    run(scenario())


def test_a_fresh_connection_closed_before_the_answer_is_503_not_retried() -> None:
    async def scenario() -> None:
        async def always_close(n: int, body: bytes) -> None:
            return None

        async with Server(always_close) as server:
            channel = WireChannel("127.0.0.1", server.port, connect_timeout_s=1.0)
            with pytest.raises(BackendUnavailableError, match="closed the connection"):
                await post(channel)
            assert server.requests == 1

    run(scenario())


def test_no_answer_in_time_is_504_and_the_late_answer_never_reaches_the_next_request() -> None:
    async def scenario() -> None:
        async def slow_first(n: int, body: bytes) -> bytes:
            if n == 1:
                await asyncio.sleep(LATE_S)
            return ok(b'{"n": %d}' % n)

        async with Server(slow_first) as server:
            channel = WireChannel("127.0.0.1", server.port, connect_timeout_s=1.0)
            started = time.monotonic()
            with pytest.raises(BackendTimeoutError, match=r"within 0.1s for model 'm'"):
                await channel.post(
                    "/p", b"{}", content_type="application/json", timeout_s=0.1, what=" for model 'm'"
                )
            # An error-path bound, generous: the 504 comes long before the late answer would.
            assert time.monotonic() - started < LATE_S / 2
            _, body, _ = await channel.post(
                "/p", b"{}", content_type="application/json", timeout_s=2, what=""
            )
            assert body == b'{"n": 2}'
            channel.close()

    run(scenario())


def test_a_refused_port_is_503_at_once() -> None:
    async def scenario() -> None:
        (port,) = free_ports(1)
        channel = WireChannel("127.0.0.1", port, connect_timeout_s=LATE_S)
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="is unavailable"):
            await post(channel, timeout_s=LATE_S)
        # An error-path bound, generous: a refusal is answered, not waited out until a timeout.
        assert time.monotonic() - started < LATE_S / 2

    run(scenario())


def test_malformed_http_is_503_and_connection_close_is_honoured() -> None:
    async def scenario() -> None:
        async def answers(n: int, body: bytes) -> bytes:
            return ok(b"{}", close=True) if n == 1 else b"NOT HTTP AT ALL\r\n\r\n"

        async with Server(answers) as server:
            channel = WireChannel("127.0.0.1", server.port, connect_timeout_s=1.0)
            status, _, _ = await channel.post(
                "/p", b"{}", content_type="application/json", timeout_s=2, what=""
            )
            assert status == 200
            with pytest.raises(BackendUnavailableError, match="malformed HTTP answer"):
                await post(channel)
            assert server.connections == 2  # "Connection: close" was not reused

    run(scenario())


def test_keep_warm_pools_a_connection_before_the_first_request() -> None:
    async def scenario() -> None:
        async def answer(n: int, body: bytes) -> bytes:
            return ok(b"{}")

        async with Server(answer) as server:
            channel = WireChannel("127.0.0.1", server.port, connect_timeout_s=1.0)
            channel.keep_warm()
            channel.keep_warm()  # one is enough
            deadline = time.monotonic() + LATE_S  # a wait, not a speed check: it ends on the connection
            while not server.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            assert server.connections == 1
            await post(channel, timeout_s=1.0)
            assert server.connections == 1, "the request should have used the warm connection"
            channel.close()

    run(scenario())
