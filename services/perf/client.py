"""Clients that send one NCHW batch to Triton and return the logits, behind one callable shape.

The transports, so the benchmark can show what the client path costs:

- `http`: a minimal KServe v2 client with the binary-tensor extension — one persistent keep-alive
  connection (`_Connection`), TCP_NODELAY, the array sent as a memoryview in the same `sendmsg` as the
  head (no copy, no JSON floats). Needs nothing but numpy, so the same code runs on a bare GPU host.
- `http-shm`: the same, but input and output live in POSIX shared memory registered with Triton's
  system-shared-memory extension: the request carries ~300 bytes of JSON instead of the tensor.
  Only valid when client and server share a host.
- `http-cudashm`: the input in CUDA shared memory on the GPU instead (GPU hosts, `deploylab_ort` models
  on a Triton that sees the GPU): the server's engine reads the batch on the device.
- `tritonclient-http`, `grpc`: NVIDIA's own clients (binary HTTP, gRPC), the reference a user of
  Triton would reach for.
- `classify`: the gateway's image path — one JPEG per request to `/v1/models/{model}/classify`
  (decode, resize, normalise and top-k happen in the gateway).

Every client is single-threaded: give each load-generator worker its own.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Sequence
from multiprocessing import shared_memory
from typing import Any, Literal, Protocol

import numpy as np

#: The tensor names of deploylab.services.modelzoo.repository, repeated so this module imports no
#: tritonclient or protobuf (it runs on bare GPU hosts); tests/unit/test_perf_client.py keeps the two in step.
INPUT_NAME = "input"
OUTPUT_NAME = "logits"

Transport = Literal["http", "http-shm", "http-cudashm", "tritonclient-http", "grpc", "classify"]
TRANSPORTS: tuple[Transport, ...] = (
    "http",
    "http-shm",
    "http-cudashm",
    "tritonclient-http",
    "grpc",
    "classify",
)
_HEADER_LENGTH = "Inference-Header-Content-Length"


class InferClient(Protocol):
    """Sends `batch` (N,3,H,W float32, or uint8 pixels for a uint8-input model) to `model`, returns
    logits (N, classes)."""

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class TritonRequestError(RuntimeError):
    """Triton answered an inference request with an error status."""


class _Connection:
    """One keep-alive HTTP/1.1 connection for a load generator, made to cost little CPU.

    The load generator shares the measured host's cores. `http.client` sent the head, the JSON header
    and the tensor in three writes and parsed every answer's head with `email.parser`: ≈ 0.4 ms of CPU
    per request, 6 % of a 2-core machine at 300 requests/s, taken from the server being measured. Here a
    request is one `sendmsg` and the answer's head is split by hand (Content-Length or chunked bodies).
    """

    def __init__(self, host: str, port: int, timeout_s: float = 60.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.sock: socket.socket | None = None
        self._buffer = bytearray()
        self._host_line = f"Host: {host}:{port}\r\n"

    def request(
        self, method: str, path: str, headers: dict[str, str], parts: Sequence[bytes | memoryview] = ()
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body); any failure closes the socket and raises OSError."""
        try:
            sock = self.sock or self.connect()
            _send_all(sock, self.encode(method, path, headers, parts))
            status, answer_headers, body = self._read_answer()
        except (OSError, ValueError, IndexError) as exc:
            self.close()
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"malformed HTTP answer: {exc}") from None
        if answer_headers.get("connection", "").lower() == "close":
            self.close()
        return status, answer_headers, body

    def encode(
        self, method: str, path: str, headers: dict[str, str], parts: Sequence[bytes | memoryview] = ()
    ) -> list[memoryview]:
        """The request on the wire: its head, then `parts` as they are (views, not copies)."""
        views = [memoryview(part).cast("B") for part in parts]
        head = (
            f"{method} {path} HTTP/1.1\r\n{self._host_line}"
            f"Content-Length: {sum(v.nbytes for v in views)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n"
        )
        return [memoryview(head.encode("latin-1")), *views]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buffer.clear()

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        return sock

    def _read_answer(self) -> tuple[int, dict[str, str], bytes]:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            size = int(headers["content-length"])
            while len(buffer) < size:
                self._fill()
            body = bytes(buffer[:size])
            del buffer[:size]
            return status, headers, body
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return status, headers, self._read_chunked()
        raise ValueError("answer has neither Content-Length nor chunked encoding")

    def _read_chunked(self) -> bytes:
        buffer, body = self._buffer, bytearray()
        while True:
            while (end := buffer.find(b"\r\n")) < 0:
                self._fill()
            size = int(bytes(buffer[:end]).split(b";")[0], 16)
            del buffer[: end + 2]
            while len(buffer) < size + 2:  # the chunk and its CRLF (for the last one: the final CRLF)
                self._fill()
            body += buffer[:size]
            del buffer[: size + 2]
            if size == 0:
                return bytes(body)

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self._buffer += chunk


def _send_all(sock: socket.socket, views: list[memoryview]) -> None:
    """sendmsg until every byte is out (a socket with a timeout may take part of a large buffer)."""
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= views[0].nbytes:
            sent -= views[0].nbytes
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


class KServeHttpClient:
    """Binary-tensor KServe v2 over one keep-alive HTTP/1.1 connection (see module docstring)."""

    def __init__(self, url: str, model: str, timeout_s: float = 60.0) -> None:
        host, port = _host_port(url)
        self.model = model
        self.path = f"/v2/models/{model}/infer"
        self.connection = _Connection(host, port, timeout_s)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        header, body = self._request(_input_array(batch))
        status, response_header, payload = self._post(header, body)
        if status != 200:
            raise TritonRequestError(f"{self.model}: HTTP {status}: {_error_text(response_header)}")
        output = response_header["outputs"][0]
        if not payload and "data" in output:  # the server chose JSON numbers over the binary extension
            return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        expected = int(np.prod(output["shape"])) * 4
        if len(payload) != expected:
            got = f"{len(payload)} B of binary output"
            raise TritonRequestError(f"{self.model}: {got}, shape {output['shape']} needs {expected}")
        return np.frombuffer(payload, dtype=np.float32).reshape(output["shape"])

    def request_parts(self, batch: np.ndarray) -> list[memoryview]:
        """The whole HTTP request `infer(batch)` sends, for a load generator that sends it itself.

        The parts view `batch` (or, for shared memory, the region it was written to): keep it alive
        and unchanged while they are in use.
        """
        header, body = self._request(_input_array(batch))
        return self.connection.encode("POST", self.path, *self._framing(header, body))

    def _request(self, batch: np.ndarray) -> tuple[bytes, memoryview | None]:
        """(JSON inference header, binary body) for a contiguous float32 (or uint8) batch."""
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": INPUT_NAME,
                        "shape": list(batch.shape),
                        "datatype": _datatype(batch),
                        "parameters": {"binary_data_size": batch.nbytes},
                    }
                ],
                "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
            },
            separators=(",", ":"),
        ).encode()
        return header, memoryview(batch.data).cast("B")  # the array's own bytes: no copy

    @staticmethod
    def _framing(header: bytes, body: memoryview | None) -> tuple[dict[str, str], list[bytes | memoryview]]:
        headers = {_HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"}
        return headers, [header] if body is None else [header, body]

    def _post(self, header: bytes, body: memoryview | None) -> tuple[int, dict[str, Any], bytes]:
        headers, parts = self._framing(header, body)
        status, answer_headers, data = self.connection.request("POST", self.path, headers, parts)
        json_length = int(answer_headers.get(_HEADER_LENGTH.lower()) or len(data))
        parsed = json.loads(data[:json_length]) if json_length else {}
        return status, parsed, data[json_length:]

    def close(self) -> None:
        self.connection.close()


class KServeShmClient(KServeHttpClient):
    """Input and output in system shared memory; the HTTP request carries only the JSON header.

    Regions are sized for `max_batch` on first use and registered with Triton once; `close()`
    unregisters and unlinks them.
    """

    def __init__(self, url: str, model: str, sample_shape: tuple[int, ...], num_classes: int, max_batch: int):
        super().__init__(url, model)
        self.sample_shape = sample_shape
        self.num_classes = num_classes
        self.max_batch = max_batch
        tag = uuid.uuid4().hex[:12]
        self.in_name, self.out_name = f"dl_in_{tag}", f"dl_out_{tag}"
        self.in_shm: shared_memory.SharedMemory | None = None
        self.out_shm: shared_memory.SharedMemory | None = None
        in_bytes = max_batch * int(np.prod(sample_shape)) * 4
        out_bytes = max_batch * num_classes * 4
        try:
            self._open_input(in_bytes)
            self.out_shm = shared_memory.SharedMemory(name=self.out_name, create=True, size=out_bytes)
            self._register(
                "systemsharedmemory", self.out_name, {"key": f"/{self.out_name}", "byte_size": out_bytes}
            )
        except BaseException:
            self.close()  # unregisters what was registered, frees both regions
            raise

    def _open_input(self, size: int) -> None:
        self.in_shm = shared_memory.SharedMemory(name=self.in_name, create=True, size=size)
        self._register("systemsharedmemory", self.in_name, {"key": f"/{self.in_name}", "byte_size": size})

    def _write_input(self, batch: np.ndarray) -> None:
        assert self.in_shm is not None
        in_view: np.ndarray = np.ndarray(batch.shape, dtype=batch.dtype, buffer=self.in_shm.buf)
        in_view[...] = batch

    def _close_input(self) -> None:
        self._unregister("systemsharedmemory", self.in_name)
        if self.in_shm is not None:
            self.in_shm.close()
            self.in_shm.unlink()
            self.in_shm = None

    def _register(self, extension: str, name: str, region: dict[str, Any]) -> None:
        self._control(f"/v2/{extension}/region/{name}/register", {"offset": 0, **region})

    def _unregister(self, extension: str, name: str) -> None:
        try:
            self._control(f"/v2/{extension}/region/{name}/unregister")
        except (TritonRequestError, OSError):
            pass  # the server may already be gone, or the region was never registered

    def _control(self, path: str, payload: dict[str, Any] | None = None) -> None:
        json_type = {"Content-Type": "application/json"}
        body = json.dumps(payload).encode() if payload else b""
        status, _, text = self.connection.request("POST", path, json_type, [body])
        if status != 200:
            raise TritonRequestError(f"shared memory {path}: HTTP {status}: {text[:200]!r}")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        header, _ = self._request(batch)
        status, response_header, _ = self._post(header, None)
        if status != 200:
            raise TritonRequestError(f"{self.model}: HTTP {status}: {_error_text(response_header)}")
        # A copy: the region is reused by the next call.
        n = batch.shape[0]
        assert self.out_shm is not None
        return np.ndarray((n, self.num_classes), dtype=np.float32, buffer=self.out_shm.buf).copy()

    def _request(self, batch: np.ndarray) -> tuple[bytes, memoryview | None]:
        """Writes `batch` into the input region; the header names the regions, and there is no body."""
        n = batch.shape[0]
        if n > self.max_batch:
            raise ValueError(f"batch {n} exceeds the shared-memory region sized for {self.max_batch}")
        batch = _input_array(batch)
        self._write_input(batch)
        out_bytes = n * self.num_classes * 4
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": INPUT_NAME,
                        "shape": list(batch.shape),
                        "datatype": _datatype(batch),
                        "parameters": {
                            "shared_memory_region": self.in_name,
                            "shared_memory_byte_size": batch.nbytes,
                        },
                    }
                ],
                "outputs": [
                    {
                        "name": OUTPUT_NAME,
                        "parameters": {
                            "shared_memory_region": self.out_name,
                            "shared_memory_byte_size": out_bytes,
                        },
                    }
                ],
            },
            separators=(",", ":"),
        ).encode()
        return header, None

    def close(self) -> None:
        self._close_input()
        self._unregister("systemsharedmemory", self.out_name)
        super().close()
        if self.out_shm is not None:
            self.out_shm.close()
            self.out_shm.unlink()
            self.out_shm = None


class KServeCudaShmClient(KServeShmClient):
    """The input in CUDA shared memory on GPU `device` (the output stays in system shared memory).

    What a client on the GPU host does to spare the server its host-to-device copy: it writes each batch
    into a device buffer that Triton maps through CUDA IPC, and the `deploylab_ort` backend runs its CUDA
    instances on it in place. Needs a GPU, a Triton that sees it (not the GPU-blind server that
    Python-backend models need on the pip wheel) and NVIDIA's CUDA Python bindings (`cuda-bindings`).
    """

    def __init__(
        self,
        url: str,
        model: str,
        sample_shape: tuple[int, ...],
        num_classes: int,
        max_batch: int,
        device: int = 0,
    ):
        self.device = device
        self.cudashm: Any = None  # tritonclient's helpers, loaded once when the region is made
        self.cuda_region: Any = None
        super().__init__(url, model, sample_shape, num_classes, max_batch)

    def _open_input(self, size: int) -> None:
        cudashm = self.cudashm = cuda_shared_memory()
        try:
            self.cuda_region = cudashm.create_shared_memory_region(self.in_name, size, self.device)
        except cudashm.CudaSharedMemoryException as exc:
            raise RuntimeError(
                f"the http-cudashm transport needs a usable CUDA device {self.device} on this host: {exc}"
            ) from None
        handle = cudashm.get_raw_handle(self.cuda_region)
        region = {"raw_handle": {"b64": handle.decode()}, "device_id": self.device, "byte_size": size}
        self._register("cudasharedmemory", self.in_name, region)

    def _write_input(self, batch: np.ndarray) -> None:
        self.cudashm.set_shared_memory_region(self.cuda_region, [batch])

    def _close_input(self) -> None:
        self._unregister("cudasharedmemory", self.in_name)
        if self.cuda_region is not None:
            self.cudashm.destroy_shared_memory_region(self.cuda_region)
            self.cuda_region = None


def cuda_shared_memory() -> Any:
    """tritonclient's CUDA shared-memory helpers, or a RuntimeError that says what to install."""
    try:
        from tritonclient.utils import cuda_shared_memory as module
    except (ImportError, RuntimeError) as exc:  # tritonclient raises RuntimeError when cuda-python is missing
        raise RuntimeError(
            "the http-cudashm transport needs NVIDIA's CUDA Python bindings (cuda-bindings, which CUDA "
            f"builds of torch bring): {exc}"
        ) from None
    return module


class ClassifyClient:
    """POSTs one JPEG to the gateway's classify endpoint over a keep-alive connection.

    The batch argument only fixes how many images a call stands for (always 1 here): the image path
    is measured from real encoded bytes, which is what callers send.
    """

    HEADERS = {"Content-Type": "image/jpeg"}

    def __init__(self, url: str, model: str, jpeg: bytes, top_k: int = 5, timeout_s: float = 60.0) -> None:
        host, port = _host_port(url)
        self.model = model
        self.path = f"/v1/models/{model}/classify?top_k={top_k}"
        self.jpeg = jpeg
        self.connection = _Connection(host, port, timeout_s)

    def request_parts(self, batch: np.ndarray) -> list[memoryview]:
        """The whole HTTP request `infer` sends (see KServeHttpClient.request_parts)."""
        return self.connection.encode("POST", self.path, self.HEADERS, [self.jpeg])

    def infer(self, batch: np.ndarray) -> np.ndarray:
        status, _, data = self.connection.request("POST", self.path, self.HEADERS, [self.jpeg])
        if status != 200:
            raise TritonRequestError(f"classify {self.model}: HTTP {status}: {data[:200]!r}")
        results = json.loads(data)["results"]
        return np.array([[hit["score"] for hit in result["top_k"]] for result in results], dtype=np.float32)

    def close(self) -> None:
        self.connection.close()


class _TritonClientAdapter:
    """NVIDIA's tritonclient (http with binary tensors, or grpc) behind the `InferClient` shape."""

    def __init__(self, url: str, model: str, protocol: Literal["http", "grpc"]) -> None:
        self.model = model
        self.protocol = protocol
        if protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module  # type: ignore[no-redef]
        self.module: Any = module
        self.client: Any = module.InferenceServerClient(url.removeprefix("http://"))
        self.outputs: list[Any] = (
            [module.InferRequestedOutput(OUTPUT_NAME, binary_data=True)]
            if protocol == "http"
            else [module.InferRequestedOutput(OUTPUT_NAME)]
        )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        tensor = self.module.InferInput(INPUT_NAME, list(batch.shape), _datatype(batch))
        if self.protocol == "http":
            tensor.set_data_from_numpy(batch, binary_data=True)
        else:
            tensor.set_data_from_numpy(batch)
        result = self.client.infer(self.model, [tensor], outputs=self.outputs)
        return result.as_numpy(OUTPUT_NAME)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.client.close()


def make_client(
    transport: Transport,
    url: str,
    model: str,
    *,
    grpc_url: str | None = None,
    sample_shape: tuple[int, ...] = (3, 224, 224),
    num_classes: int = 1000,
    max_batch: int = 64,
) -> InferClient:
    """A fresh client for one worker. `url` is Triton's HTTP base URL; gRPC needs `grpc_url`."""
    if transport == "http":
        return KServeHttpClient(url, model)
    if transport == "http-shm":
        return KServeShmClient(url, model, sample_shape, num_classes, max_batch)
    if transport == "http-cudashm":
        return KServeCudaShmClient(url, model, sample_shape, num_classes, max_batch)
    if transport == "tritonclient-http":
        return _TritonClientAdapter(url, model, "http")
    if transport == "classify":
        # Imported here: only the classify transport needs the photos (and scikit-image, Pillow).
        from deploylab.services.measure.images import sample_jpeg

        return ClassifyClient(url, model, sample_jpeg())
    if transport == "grpc":
        if grpc_url is None:
            raise ValueError("the grpc transport needs grpc_url (host:port)")
        return _TritonClientAdapter(grpc_url, model, "grpc")
    raise ValueError(f"unknown transport {transport!r}; choose from {', '.join(TRANSPORTS)}")


ClientFactory = Callable[[], InferClient]


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected http://host:port, got {url!r}")
    return host, int(port)


def _error_text(header: dict[str, Any]) -> str:
    return str(header.get("error", header))[:300]


def _input_array(batch: np.ndarray) -> np.ndarray:
    """`batch` contiguous: uint8 pixels stay uint8 (a uint8-input model's), anything else float32."""
    return np.ascontiguousarray(batch, dtype=np.uint8 if batch.dtype == np.uint8 else np.float32)


def _datatype(batch: np.ndarray) -> str:
    """The v2 datatype of an input batch: UINT8 for uint8 pixels, FP32 otherwise."""
    return "UINT8" if batch.dtype == np.uint8 else "FP32"
