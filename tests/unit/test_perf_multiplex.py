"""The one-thread load generator frames answers, keeps every client in its closed loop, and reports errors."""

from __future__ import annotations

import socket
import threading
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest
from deploylab.services.perf.client import _Connection
from deploylab.services.perf.multiplex import answer_length, run_multiplexed

BODY = bytes(range(256)) * 2352  # 602,112 bytes, one mobilenet image: larger than a socket buffer


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_BUSY = b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nX: y\r\n\r\n"
_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (_OK, (200, len(_OK))),
        (_OK + b"HTTP/1.1 200", (200, len(_OK))),  # the next answer's start stays in the buffer
        (_OK[:-1], None),
        (b"HTTP/1.1 200 OK\r\nContent-Len", None),
        (_BUSY, (503, len(_BUSY))),
        (_CHUNKED, (200, len(_CHUNKED))),
        (_CHUNKED[:-2], None),
        (_CHUNKED[:-9], None),
    ],
)
def test_answer_length_frames_complete_answers_only(answer: bytes, expected: tuple[int, int] | None) -> None:
    assert answer_length(bytearray(answer)) == expected


def test_answer_length_refuses_an_answer_it_cannot_frame() -> None:
    with pytest.raises(ValueError, match="neither Content-Length nor chunked"):
        answer_length(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody")


class _EchoServer:
    """A real loopback HTTP/1.1 server: one thread per connection, answers every request with `ok`,
    except that connection number `fail_connection` answers its `fail_after`-th request with 503."""

    def __init__(self, fail_connection: int | None = None, fail_after: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.fail_connection, self.fail_after = fail_connection, fail_after
        self.bodies_ok = 0
        self.bodies_bad = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        number = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()
            number += 1

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer, served = b"", 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += conn.recv(1 << 16)
                body, buffer = buffer[:length], buffer[length:]
                with self.lock:
                    if body == BODY:
                        self.bodies_ok += 1
                    else:
                        self.bodies_bad += 1
                served += 1
                if number == self.fail_connection and served == self.fail_after:
                    conn.sendall(b'HTTP/1.1 503 Busy\r\nContent-Length: 16\r\n\r\n{"error":"busy"}')
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self.listener.close()


class _Client:
    """The smallest client the multiplexer drives: a `_Connection`, a checked `infer`, its request bytes."""

    def __init__(self, port: int) -> None:
        self.connection = _Connection("127.0.0.1", port, timeout_s=5)
        self.checked = 0

    def infer(self, batch: np.ndarray) -> np.ndarray:
        status, _, data = self.connection.request("POST", "/infer", {}, [BODY])
        assert (status, data) == (200, b"ok")
        self.checked += 1
        return batch

    def request_parts(self, batch: np.ndarray) -> list[memoryview]:
        return self.connection.encode("POST", "/infer", {}, [BODY])

    def close(self) -> None:
        self.connection.close()


def test_every_client_runs_its_closed_loop_and_large_bodies_arrive_whole() -> None:
    server = _EchoServer()
    clients = [_Client(server.port) for _ in range(6)]
    ready = []
    try:
        start, outcomes = run_multiplexed(
            clients, np.zeros(1), 0.5, warmup_calls=2, on_ready=lambda: ready.append(1)
        )
    finally:
        for client in clients:
            client.close()
        server.close()
    assert ready == [1]
    assert [c.checked for c in clients] == [1, 0, 0, 0, 0, 0]  # one full check, the rest by status
    assert all(o.errors == 0 and len(o.latencies) >= 3 for o in outcomes)
    # A closed loop: each client's requests follow one another inside the window, so its latencies are
    # positive and add up to no more than the time from the window's start to its last answer.
    assert all(latency > 0 for o in outcomes for latency in o.latencies)
    assert all(sum(o.latencies) <= o.finished_at - start + 1e-3 for o in outcomes)
    requests = sum(len(o.latencies) for o in outcomes)
    assert server.bodies_bad == 0
    assert server.bodies_ok == requests + 6 * 2  # every timed request plus two warm-ups per client


def test_an_error_answer_stops_that_client_only_and_says_what_came_back() -> None:
    server = _EchoServer(fail_connection=2, fail_after=5)
    clients = [_Client(server.port) for _ in range(4)]
    try:
        _, outcomes = run_multiplexed(clients, np.zeros(1), 0.5, warmup_calls=2)
    finally:
        for client in clients:
            client.close()
        server.close()
    failed = [o for o in outcomes if o.errors]
    assert len(failed) == 1
    assert failed[0].first_error is not None and "HTTP 503" in failed[0].first_error
    assert len(failed[0].latencies) == 5 - 2 - 1  # two warm-ups, the timed ones, then the 503
    assert all(len(o.latencies) > 5 for o in outcomes if not o.errors)


def test_a_client_that_cannot_connect_is_one_error_not_a_crash() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    _, outcomes = run_multiplexed([_Client(port)], np.zeros(1), 0.2, warmup_calls=2)
    assert outcomes[0].errors == 1
    assert outcomes[0].first_error is not None and "ConnectionRefused" in outcomes[0].first_error


def test_a_client_that_could_not_be_built_is_reported_by_the_load_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deploylab.services.perf.load import LoadTarget, run_load

    # Note the names of the regions these clients create (real ones, in /dev/shm), so that the check
    # below looks at them only, not at what other processes on the machine create meanwhile.
    created: list[str] = []

    class Recorded(shared_memory.SharedMemory):
        def __init__(self, name: str | None = None, create: bool = False, size: int = 0) -> None:
            super().__init__(name, create, size)
            created.append(self.name)

    monkeypatch.setattr(shared_memory, "SharedMemory", Recorded)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    # The shared-memory client registers its regions while it is built: with no server, building fails.
    result = run_load(LoadTarget("http-shm", f"http://127.0.0.1:{port}", "m", input_size=8), 2, 0.2)
    assert (result.requests, result.errors) == (0, 2)
    assert result.first_error is not None and "ConnectionRefused" in result.first_error
    assert len(created) == 2, created  # each client's input region, created before its registration failed
    left = [name for name in created if (Path("/dev/shm") / name).exists()]
    assert not left, f"the failed clients left regions behind: {left}"
