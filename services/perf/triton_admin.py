"""Triton's control and statistics endpoints, as the benchmark and the tuner use them (stdlib only).

- Model control (explicit mode): `load_model` with an optional config override applies a trial
  configuration without touching `config.pbtxt` and without a server restart.
- Statistics: `model_statistics` reads executed-batch counts (parsed by the measurement core,
  `deploylab.services.measure.server_stats`). The difference of two snapshots is the proof that
  dynamic batching forms batches: inferences ÷ executions = mean executed batch.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from deploylab.services.measure.server_stats import ModelStats, parse_model_stats, stats_url

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


def model_statistics(base_url: str, model: str) -> ModelStats:
    """Counters summed over the model's loaded versions (parsed by the measurement core)."""
    return parse_model_stats(_request(stats_url(base_url, model)))
