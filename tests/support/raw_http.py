"""HTTP/1.1 over a bare socket, for requests no well-behaved client library will send: slow drips,
half-sent heads, raw `..` segments, garbage request lines."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it is not JSON
    seconds: float
    closed: bool  # the server closed the connection after answering


def raw_request(
    port: int,
    head: bytes,
    chunks: tuple[bytes, ...] | list[bytes] = (),
    pause_s: float = 0.0,
    timeout_s: float = 15.0,
) -> RawAnswer:
    """Send `head`, then each chunk `pause_s` apart — stopping as soon as the server answers or hangs
    up, as a real client would — then read the answer."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(head)
            for chunk in chunks:
                readable, _, _ = select.select([sock], [], [], pause_s)
                if readable:
                    break  # the server has spoken (or closed): stop sending
                sock.sendall(chunk)
        except OSError:
            pass  # answered and closed while we were still sending: read what it said
        data, closed = b"", False
        try:
            while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
                part = sock.recv(65536)
                if not part:
                    closed = True
                    break
                data += part
            if not closed:
                sock.settimeout(0.5)
                closed = sock.recv(1) == b""
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    seconds = time.perf_counter() - started
    head_text, _, body = data.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = body.decode("latin-1")
    return RawAnswer(status, headers, parsed, seconds, closed)


def _expected_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value.strip())
    return len(data) + 1 if b"\r\n\r\n" not in data else len(data)
