"""Triton's control and statistics endpoints, as used by the benchmark and the tuner (stdlib only).

- Model control (explicit mode): `load_model` with an optional config override applies a trial
  configuration without touching `config.pbtxt` and without a server restart.
- Statistics: `model_statistics` reads executed-batch counts. The difference of two snapshots is
  the proof that dynamic batching forms batches: inferences ÷ executions = mean executed batch.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: the GPU check runs this module where tritonclient is absent
    from tritonclient.grpc import model_config_pb2 as mc


class TritonAdminError(RuntimeError):
    """A control or statistics request failed; the message carries Triton's answer."""


def _request(
    url: str, method: str = "GET", payload: dict[str, Any] | None = None, timeout_s: float = 300.0
) -> Any:
    data = json.dumps(payload).encode() if payload is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - loopback URL
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise TritonAdminError(f"{method} {url}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TritonAdminError(f"{method} {url}: {exc}") from None
    return json.loads(body) if body else None


def load_model(base_url: str, model: str, config: mc.ModelConfig | None = None) -> None:
    """(Re)load `model`; with `config`, Triton uses it instead of the file (explicit mode only).

    Triton swaps the model in place: the old instances serve until the new ones are ready.
    """
    from google.protobuf import json_format

    payload: dict[str, Any] | None = None
    if config is not None:
        payload = {
            "parameters": {"config": json_format.MessageToJson(config, preserving_proto_field_name=True)}
        }
    _request(f"{base_url}/v2/repository/models/{model}/load", "POST", payload)


def unload_model(base_url: str, model: str) -> None:
    _request(f"{base_url}/v2/repository/models/{model}/unload", "POST")


def model_config(base_url: str, model: str) -> dict[str, Any]:
    """The configuration Triton is serving right now (after any override)."""
    result: dict[str, Any] = _request(f"{base_url}/v2/models/{model}/config")
    return result


@dataclass(frozen=True)
class ModelStats:
    """Cumulative counters of one model version since load."""

    inference_count: int = 0  # images (batch elements) inferred
    execution_count: int = 0  # model executions (one per executed batch)
    success_count: int = 0  # requests
    queue_ns: int = 0
    compute_infer_ns: int = 0
    executed_batches: dict[int, int] = field(default_factory=dict)  # executed batch size -> count

    def __sub__(self, earlier: ModelStats) -> ModelStats:
        sizes = set(self.executed_batches) | set(earlier.executed_batches)
        return ModelStats(
            inference_count=self.inference_count - earlier.inference_count,
            execution_count=self.execution_count - earlier.execution_count,
            success_count=self.success_count - earlier.success_count,
            queue_ns=self.queue_ns - earlier.queue_ns,
            compute_infer_ns=self.compute_infer_ns - earlier.compute_infer_ns,
            executed_batches={
                s: n
                for s in sorted(sizes)
                if (n := self.executed_batches.get(s, 0) - earlier.executed_batches.get(s, 0)) > 0
            },
        )

    @property
    def mean_executed_batch(self) -> float:
        """Images per model execution; 1.0 means dynamic batching formed no batches."""
        return self.inference_count / self.execution_count if self.execution_count else 0.0

    @property
    def mean_queue_ms(self) -> float:
        return self.queue_ns / self.success_count / 1e6 if self.success_count else 0.0

    @property
    def mean_compute_ms(self) -> float:
        """Engine time per execution (the Python backend's whole `execute()` for our models)."""
        return self.compute_infer_ns / self.execution_count / 1e6 if self.execution_count else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "request_count": self.success_count,
            "mean_executed_batch": round(self.mean_executed_batch, 3),
            "mean_queue_ms": round(self.mean_queue_ms, 3),
            "mean_compute_ms": round(self.mean_compute_ms, 3),
            "executed_batches": {str(k): v for k, v in self.executed_batches.items()},
        }


def model_statistics(base_url: str, model: str) -> ModelStats:
    """Counters summed over the model's loaded versions."""
    payload = _request(f"{base_url}/v2/models/{model}/stats")
    total = ModelStats()
    for entry in payload.get("model_stats", []):
        stats = entry.get("inference_stats", {})
        batches = {
            int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in entry.get("batch_stats", [])
        }
        merged = dict(total.executed_batches)
        for size, count in batches.items():
            merged[size] = merged.get(size, 0) + count
        total = ModelStats(
            inference_count=total.inference_count + int(entry.get("inference_count", 0)),
            execution_count=total.execution_count + int(entry.get("execution_count", 0)),
            success_count=total.success_count + int(stats.get("success", {}).get("count", 0)),
            queue_ns=total.queue_ns + int(stats.get("queue", {}).get("ns", 0)),
            compute_infer_ns=total.compute_infer_ns + int(stats.get("compute_infer", {}).get("ns", 0)),
            executed_batches=merged,
        )
    return total
