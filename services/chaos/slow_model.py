"""Triton Python-backend model that is alive but slow: it sleeps `delay_ms`, then answers zeros.

A fault, not a model: it stands in for a backend that accepts work and does not finish in time
(an overloaded GPU, a stuck instance), so timeouts, queue policies and admission bounds can be
exercised against a real Triton. Copied to `<repo>/<name>/1/model.py` by `write_slow_model()`; it runs
in Triton's stub process and imports nothing from deploylab.
"""

from __future__ import annotations

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.delay_s = float(parameters.get("delay_ms", "1000")) / 1000.0
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.classes = int(config["output"][0]["dims"][-1])

    def execute(self, requests: list) -> list:
        time.sleep(self.delay_s)  # the whole batch waits, like a stalled engine would
        responses = []
        for request in requests:
            rows = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy().shape[0]
            logits = np.zeros((rows, self.classes), dtype=np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, logits)]))
        return responses
