"""uvicorn's httptools protocol with a deadline and a size cap on the request head.

uvicorn bounds idle keep-alive connections but not a request *head* arriving slowly: a client that
connects and says nothing, or sends one header line every few seconds (slowloris), holds a connection
and a file descriptor forever, and a 10 MB header line is buffered whole. Here the head must be
complete within `head_timeout_s` of its first byte (or of the connection, for a silent client) and
fit in `max_head_bytes`; otherwise the client gets a JSON 408 or 431 and the connection is closed.
Malformed HTTP gets the gateway's JSON error shape too, instead of uvicorn's plain-text 400.
Body pace and size are the body middleware's job (middleware.py).

Writes made in one event-loop iteration leave in one send (`CoalescingTransport`): uvicorn writes a
response's head and its body separately, two system calls and two segments the client wakes up for.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .errors import error_body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    head_timeout_s: float = 10.0
    max_head_bytes: int = 64 * 1024

    configured = False

    _head_timer: asyncio.TimerHandle | None = None
    _head_pending = False
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not GuardedHttpToolsProtocol.configured:  # a worker process: limits from the environment
            from .settings import get_settings

            settings = get_settings()
            configure_protocol(settings.head_timeout_s, settings.max_head_bytes)
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_pending:  # the head is still incomplete after these bytes
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
                self._refuse(431, "headers_too_large", f"request head over {self.max_head_bytes:,} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._head_pending:
            self._start_head()

    def on_headers_complete(self) -> None:
        self._stop_head()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:  # arrived complete in one read: too large all the same
            self._refuse(431, "headers_too_large", f"request head over {self.max_head_bytes:,} bytes")
            raise httptools.HttpParserError("request head too large")  # stop parsing this connection
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self.transport.is_closing():  # not after our own refusal
            self._refuse(400, "invalid_request", msg)

    # -- internals ---------------------------------------------------------------------------------
    def _start_head(self) -> None:
        self._stop_head()
        self._head_pending, self._head_bytes = True, 0
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _stop_head(self) -> None:
        self._head_pending = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_pending and not self.transport.is_closing():
            self._refuse(408, "request_timeout", f"request head not received within {self.head_timeout_s:g}s")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._stop_head()
        payload = orjson.dumps(error_body(status, code, message))
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(payload)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            payload,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()


class CoalescingTransport:
    """A transport whose writes within one loop iteration are joined and sent once, at its end.

    Everything else (close, flow control, extra info) is the wrapped transport's; `close` sends what
    is pending first, so a response followed by a close still arrives whole.
    """

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def configure_protocol(head_timeout_s: float, max_head_bytes: int) -> type[GuardedHttpToolsProtocol]:
    """Set the limits (class-wide: uvicorn instantiates the class per connection) and return it.

    Worker processes (several workers) configure themselves from the environment on first use.
    """
    GuardedHttpToolsProtocol.configured = True
    GuardedHttpToolsProtocol.head_timeout_s = head_timeout_s
    GuardedHttpToolsProtocol.max_head_bytes = max_head_bytes
    return GuardedHttpToolsProtocol
