"""One thread drives every connection of a closed-loop load: the load generator must cost little.

The load generator shares the measured machine's cores. With one Python thread per client, every
answer wakes a thread and hands the GIL over: ≈ 0.23 ms of CPU per request at 64 clients over shared
memory (0.33 ms with a 602 KB body), 3.5–5 % of a 2-core machine at 300 requests/s, taken from the
server being measured. Here each client's request is built once (its bytes never change within a
point), every socket sits in one epoll set, and an answer costs a `recv`, a head split and the next
`sendmsg`: 0.08 ms (0.19 ms with the body, most of it the kernel's copy).

The first client's first answer is checked in full by its own `infer()`; every other answer counts as
a success when it is a complete HTTP answer with status 200. Anything else (another status, a reset, a
malformed answer) is that client's error: it stops, as a threaded worker does.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from deploylab.services.measure.outcomes import Tally

#: Longest wait for the warm-up answers, and for those in flight when the window closes (then they
#: count as errors): a server that stops answering ends the point instead of hanging it.
DRAIN_TIMEOUT_S = 60.0


class PreparedClient(Protocol):
    """A client whose whole request can be built once and sent by someone else."""

    connection: _ConnectionLike

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def request_parts(self, batch: np.ndarray) -> list[memoryview]: ...

    def close(self) -> None: ...


class _ConnectionLike(Protocol):
    sock: socket.socket | None

    def connect(self) -> socket.socket: ...


class _Slot:
    """One client's connection and the request in flight on it."""

    def __init__(self, sock: socket.socket, request: list[memoryview]) -> None:
        self.sock = sock
        self.request = request
        self.pending: list[memoryview] = []
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.busy = False
        self.warmups_left = 0
        self.outcome = Tally()

    def start(self, now: float) -> None:
        self.pending = list(self.request)
        self.sent_at = now
        self.busy = True

    def flush(self) -> bool:
        """Send what the socket takes now; True when the whole request is out."""
        while self.pending:
            try:
                sent = self.sock.sendmsg(self.pending)
            except BlockingIOError:
                return False
            while self.pending and sent >= self.pending[0].nbytes:
                sent -= self.pending[0].nbytes
                self.pending.pop(0)
            if self.pending and sent:
                self.pending[0] = self.pending[0][sent:]
        return True

    def fail(self, message: str) -> None:
        self.outcome.fail(message)
        self.busy = False


def answer_length(buffer: bytearray | bytes) -> tuple[int, int] | None:
    """(status, bytes the whole answer takes) once `buffer` holds a complete HTTP/1.1 answer, else None.

    Bodies framed by Content-Length or chunked encoding; anything else raises ValueError.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    status = int(head[9:12])
    marker = head.find(b"\r\ncontent-length:")
    if marker >= 0:
        stop = head.find(b"\r\n", marker + 2)
        size = int(head[marker + 17 : stop if stop >= 0 else None])
        total = end + 4 + size
        return (status, total) if len(buffer) >= total else None
    if b"\r\ntransfer-encoding: chunked" not in head:
        raise ValueError("answer has neither Content-Length nor chunked encoding")
    position = end + 4
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        position = line_end + 2 + size + 2  # the chunk and its CRLF (after the last: the final CRLF)
        if len(buffer) < position:
            return None
        if size == 0:
            return status, position


def run_multiplexed(
    clients: Sequence[PreparedClient],
    batch: np.ndarray,
    duration_s: float,
    warmup_calls: int,
    on_ready: Callable[[], object] | None = None,
) -> tuple[float, list[Tally]]:
    """Closed loop over `clients` from one thread: (window start as time.time(), one Tally per client).

    Every client sends `warmup_calls` untimed requests first (the first client's first one through its
    own `infer()`, so an answer is fully checked, not only its status); then `on_ready` runs and the
    window opens for all at once. A request sent before the window closes is waited for and counted,
    as in the threaded loop.
    """
    slots: list[_Slot] = []
    selector = selectors.DefaultSelector()
    try:
        for index, client in enumerate(clients):
            slots.append(_prepare(client, batch, warmup_calls, check=index == 0))
        for slot in slots:
            if slot.outcome.first_error is None:
                selector.register(slot.sock, selectors.EVENT_READ, slot)
        # Warm-up: every slot sends its remaining untimed requests; the window waits for all of them.
        _loop(selector, slots, deadline=None, record=False)
        if on_ready is not None:
            on_ready()
        start_wall, start = time.time(), time.perf_counter()
        deadline = start + duration_s
        for slot in slots:
            if slot.outcome.first_error is None:
                _send_next(selector, slot, time.perf_counter())
        _loop(selector, slots, deadline=deadline, record=True)
        for slot in slots:
            slot.outcome.finished_at = start_wall + max(0.0, slot.outcome.finished_at - start)
        return start_wall, [slot.outcome for slot in slots]
    finally:
        selector.close()


def _prepare(client: PreparedClient, batch: np.ndarray, warmup_calls: int, check: bool) -> _Slot:
    """The client's request bytes and its connected socket; with `check`, after one `infer()`."""
    try:
        if check:
            client.infer(batch)
        request = client.request_parts(batch)
        sock = client.connection.sock or client.connection.connect()
    except Exception as exc:  # noqa: BLE001 - a client that cannot start is one error, not a crash
        slot = _Slot(socket.socket(), [])
        slot.sock.close()
        slot.fail(f"{type(exc).__name__}: {exc}")
        return slot
    sock.setblocking(False)
    slot = _Slot(sock, request)
    slot.warmups_left = max(0, warmup_calls - (1 if check else 0))
    return slot


def _send_next(selector: selectors.BaseSelector, slot: _Slot, now: float) -> None:
    slot.start(now)
    try:
        done = slot.flush()
    except OSError as exc:
        slot.fail(f"{type(exc).__name__}: {exc}")
        selector.unregister(slot.sock)
        return
    events = selectors.EVENT_READ if done else selectors.EVENT_READ | selectors.EVENT_WRITE
    selector.modify(slot.sock, events, slot)


def _loop(selector: selectors.BaseSelector, slots: list[_Slot], deadline: float | None, record: bool) -> None:
    """Until no request is in flight: read answers and, while the window is open, send the next ones."""
    if not record:
        now = time.perf_counter()
        for slot in slots:
            if slot.outcome.first_error is None and slot.warmups_left > 0:
                slot.warmups_left -= 1
                _send_next(selector, slot, now)
    give_up = None if record else time.perf_counter() + DRAIN_TIMEOUT_S
    while any(slot.busy for slot in slots):
        now = time.perf_counter()
        if deadline is not None and now >= deadline and give_up is None:
            give_up = now + DRAIN_TIMEOUT_S
        if give_up is not None and now >= give_up:
            when = "after the window closed" if record else "while warming up"
            for slot in slots:
                if slot.busy:
                    slot.fail(f"no answer within {DRAIN_TIMEOUT_S:.0f} s {when}")
            return
        for key, events in selector.select(timeout=1.0):
            ready: _Slot = key.data
            if events & selectors.EVENT_WRITE:
                _on_writable(selector, ready)
            if events & selectors.EVENT_READ:
                _on_readable(selector, ready, deadline, record)


def _on_writable(selector: selectors.BaseSelector, slot: _Slot) -> None:
    try:
        if slot.flush():
            selector.modify(slot.sock, selectors.EVENT_READ, slot)
    except OSError as exc:
        slot.fail(f"{type(exc).__name__}: {exc}")
        selector.unregister(slot.sock)


def _on_readable(selector: selectors.BaseSelector, slot: _Slot, deadline: float | None, record: bool) -> None:
    try:
        chunk = slot.sock.recv(1 << 18)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        slot.buffer += chunk
        framed = answer_length(slot.buffer)
    except (OSError, ValueError) as exc:
        slot.fail(f"{type(exc).__name__}: {exc}")
        selector.unregister(slot.sock)
        return
    if framed is None:
        return
    status, size = framed
    now = time.perf_counter()
    answer = bytes(slot.buffer[:size]) if status != 200 else b""
    del slot.buffer[:size]
    slot.busy = False
    if status != 200:
        slot.fail(f"HTTP {status}: {answer[answer.find(b'{') :][:200]!r}")
        selector.unregister(slot.sock)
        return
    if record:
        slot.outcome.latencies.append(now - slot.sent_at)
        slot.outcome.finished_at = now
        if deadline is not None and now < deadline:
            _send_next(selector, slot, now)
    elif slot.warmups_left > 0:
        slot.warmups_left -= 1
        _send_next(selector, slot, now)
