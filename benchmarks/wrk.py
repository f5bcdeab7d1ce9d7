"""wrk, the independent load generator: the same closed-loop point as the bench's own client, from C.

A number the project's own client measures could carry that client's bias (its CPU on the same two
cores, its HTTP stack); wrk (Debian package `wrk`, `make bench` installs it) measures the same point
with none of the project's code on the client side. One connection per wrk thread, so its Lua script
(wrk/admission.lua) can honour Retry-After per connection like a real client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from deploylab.services.measure.names import served_model
from deploylab.services.perf.client import KServeHttpClient

RESULT_PREFIX = "WRK_RESULT "


class WrkMissingError(RuntimeError):
    """wrk is not installed."""


@dataclass(frozen=True)
class HttpRequest:
    """One plain-HTTP request, split the way wrk takes it: path, headers, body."""

    path: str
    headers: dict[str, str]
    body: bytes

    @classmethod
    def parse(cls, raw: bytes) -> HttpRequest:
        """From the bytes of a whole HTTP/1.1 request (what the project's clients send)."""
        head, _, body = raw.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines)
        return cls(request_line.split(" ")[1], headers, body)


@dataclass(frozen=True)
class WrkResult:
    """What wrk counted: answers by status, every accepted latency (s), socket errors, seconds run."""

    statuses: Counter[int]
    accepted_s: list[float]
    socket_errors: int
    duration_s: float


def request_for(url: str, model: str) -> HttpRequest:
    """A batch-1 binary v2 request for `model`: a random tensor of its input size, as bytes wrk can send."""
    size = served_model(model).spec.input_size
    batch = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
    client = KServeHttpClient(url, model)
    try:
        raw = b"".join(bytes(part) for part in client.request_parts(batch))
    finally:
        client.close()
    return HttpRequest.parse(raw)


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissingError("wrk is not installed (Debian: apt-get install wrk; `make bench` does it)")
    return path


def run_wrk(
    base_url: str, request: HttpRequest, *, honouring: int, immediate: int, duration_s: float
) -> WrkResult:
    """`honouring` connections that wait Retry-After after a 429/503 and `immediate` ones that retry at
    once, side by side for `duration_s`; their counts merged."""
    binary = wrk_binary()
    script = resources.files("deploylab.benchmarks").joinpath("wrk/admission.lua")
    with tempfile.TemporaryDirectory(prefix="deploylab-wrk-") as tmp:
        body = Path(tmp) / "body.bin"
        body.write_bytes(request.body)
        header_length = request.headers.get("Inference-Header-Content-Length", "0")
        runs = [
            subprocess.Popen(
                [
                    binary,
                    f"-t{connections}",
                    f"-c{connections}",
                    f"-d{max(1, round(duration_s))}s",
                    "--timeout",
                    "30s",
                    "-s",
                    str(script),
                    base_url.rstrip("/") + request.path,
                    "--",
                    behaviour,
                    str(body),
                    header_length,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for behaviour, connections in (("honour", honouring), ("immediate", immediate))
            if connections > 0
        ]
        outputs = [run.communicate(timeout=duration_s + 60)[0] for run in runs]
    return _merge([_parse(output) for output in outputs])


def _parse(output: str) -> WrkResult:
    line = next((x for x in output.splitlines() if x.startswith(RESULT_PREFIX)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line:\n{output[-2000:]}")
    data = json.loads(line[len(RESULT_PREFIX) :])
    return WrkResult(
        statuses=Counter({int(k): int(v) for k, v in data["statuses"].items()}),
        accepted_s=[float(x) for x in data["accepted_s"]],
        socket_errors=int(data["socket_errors"]),
        duration_s=float(data["duration_s"]),
    )


def _merge(results: list[WrkResult]) -> WrkResult:
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update(result.statuses)
    return WrkResult(
        statuses=statuses,
        accepted_s=[x for r in results for x in r.accepted_s],
        socket_errors=sum(r.socket_errors for r in results),
        duration_s=max(r.duration_s for r in results),
    )
