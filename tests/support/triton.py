"""Talking to a real tritonserver in tests: in-process reference logits, parity, a server of one's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.http as httpclient
from deploylab.services.modelzoo.parity import ATOL, RTOL, Tolerance, compare_logits
from deploylab.services.modelzoo.repository import INPUT_NAME, OUTPUT_NAME, onnx_path
from deploylab.services.runtime.triton import TritonServer

from tests.support.ports import runtime_on_free_ports


def in_process_logits(repository: Path, model: str, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_path(repository, model)), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: batch})[0]  # type: ignore[no-any-return]


def assert_parity(served: np.ndarray, expected: np.ndarray) -> None:
    """Served logits agree with in-process ones by the export's parity criterion (scale-aware bound,
    same top-1 and top-5 up to ties)."""
    failure = compare_logits(served, expected, Tolerance(RTOL, ATOL), engine="Triton").failure
    assert failure is None, failure


def http_infer(url: str, model: str, batch: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url)
    tensor = httpclient.InferInput(INPUT_NAME, list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=True)
    result = client.infer(model, [tensor], outputs=[httpclient.InferRequestedOutput(OUTPUT_NAME)])
    return result.as_numpy(OUTPUT_NAME)  # type: ignore[no-any-return]


def own_server(model_repository: Path, state_dir: Path) -> TritonServer:
    """A Triton of the test's own (not the session's), serving mobilenet_v3_small on free ports."""
    return TritonServer(runtime_on_free_ports(model_repository, state_dir), models=["mobilenet_v3_small"])
