"""The perf clients speak the exporter's tensor names and parse URLs the way callers write them."""

from __future__ import annotations

import pytest
from deploylab.services.modelzoo import repository
from deploylab.services.perf import client
from deploylab.services.perf.client import _host_port, make_client


def test_tensor_names_match_the_model_repository() -> None:
    assert (client.INPUT_NAME, client.OUTPUT_NAME) == (repository.INPUT_NAME, repository.OUTPUT_NAME)


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://127.0.0.1:8123", ("127.0.0.1", 8123)), ("localhost:9000/", ("localhost", 9000))],
)
def test_urls_with_or_without_scheme_resolve(url: str, expected: tuple[str, int]) -> None:
    assert _host_port(url) == expected


def test_unknown_transport_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="http-shm"):
        make_client("carrier-pigeon", "http://127.0.0.1:1", "m")  # type: ignore[arg-type]


class _Server:
    """A real HTTP/1.1 server on loopback that answers each request with the next canned answer."""

    def __init__(self, answers: list[bytes | None]) -> None:
        import socket
        import threading

        self.answers = answers
        self.bodies: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            conn, _ = self.listener.accept()
            self.connections += 1
            with conn:
                buffer = b""
                while self.answers:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buffer += chunk
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = next(
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                    while len(buffer) < length:
                        buffer += conn.recv(65536)
                    self.bodies.append(buffer[:length])
                    buffer = buffer[length:]
                    answer = self.answers.pop(0)
                    if answer is None:
                        break  # close without answering
                    conn.sendall(answer)
                    if b"Connection: close" in answer:
                        break


def test_the_load_generator_connection_frames_answers_and_keeps_the_socket() -> None:
    from deploylab.services.perf.client import _Connection

    body = bytes(range(256)) * 2352  # 602,112 bytes: sent with the head in one sendmsg loop
    server = _Server(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ]
    )
    connection = _Connection("127.0.0.1", server.port, timeout_s=5)
    assert connection.request("POST", "/a", {"X-Y": "1"}, [b"{}", memoryview(body)]) == (
        200,
        {"content-length": "5", "x-a": "b"},
        b"hello",
    )
    assert connection.request("POST", "/b", {}, [b"x"])[2] == b"abcde"
    status, headers, data = connection.request("POST", "/c", {}, [])
    assert (status, data, connection.sock) == (503, b"no", None)  # "Connection: close" honoured
    assert connection.request("POST", "/d", {}, [b"again"])[0] == 200  # reconnects
    assert server.bodies[0] == b"{}" + body and server.bodies[3] == b"again"
    assert server.connections == 2
    connection.close()


def test_the_load_generator_connection_reports_a_dropped_or_garbled_answer() -> None:
    from deploylab.services.perf.client import _Connection

    server = _Server([None, b"NONSENSE\r\n\r\n"])
    connection = _Connection("127.0.0.1", server.port, timeout_s=5)
    with pytest.raises(ConnectionResetError):
        connection.request("POST", "/a", {}, [b"1"])
    with pytest.raises(ConnectionError, match="malformed HTTP answer"):
        connection.request("POST", "/b", {}, [b"2"])
    assert connection.sock is None


def test_the_cuda_shared_memory_transport_refuses_clearly_on_a_host_without_a_gpu() -> None:
    import glob
    from pathlib import Path

    if Path("/proc/driver/nvidia").exists():
        pytest.skip("an NVIDIA driver is here: the transport gets as far as the server")
    regions_before = set(glob.glob("/dev/shm/dl_*"))
    # CUDA's Python bindings come with torch here, so the refusal is CUDA's: no device to map
    with pytest.raises(RuntimeError, match=r"http-cudashm transport needs .*CUDA"):
        make_client("http-cudashm", "http://127.0.0.1:9", "resnet50")
    assert set(glob.glob("/dev/shm/dl_*")) == regions_before  # nothing left behind by the failed start
