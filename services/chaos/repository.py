"""Model repositories for chaos scenarios: the served models, plus a slow stand-in when asked.

The gateway only routes catalog names, so a slow backend must sit in Triton under a catalog name:
`write_slow_model(repository, "mobilenet_v3_small", …)` puts the sleeping model in that directory of a
scratch repository, and requests for `mobilenet_v3_small` reach it through the normal path.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from deploylab.services.measure.names import served_model
from deploylab.services.modelzoo.export import ExportOptions, export_model
from deploylab.services.modelzoo.manifest import read_repository
from deploylab.services.modelzoo.repository import (
    CONFIG_FILENAME,
    MODEL_VERSION,
    PYTHON_MODEL_FILENAME,
    ServingConfig,
    build_model_config,
    model_dir,
)
from google.protobuf import text_format

#: Queue timeout default of the slow model: requests carry shorter ones (the gateway's deadline).
QUEUE_TIMEOUT_US = 60_000_000


def write_slow_model(repository: Path, name: str, delay_s: float, *, max_batch_size: int = 8) -> Path:
    """A Triton model called `name` (a catalog Triton name) answering zeros after `delay_s`.

    Its queue honours per-request timeouts, so requests the gateway gave up on (it sends its deadline)
    are dropped from Triton's queue instead of piling up behind the sleeping instance.
    """
    spec = served_model(name).spec
    serving = ServingConfig(
        backend="python",
        max_batch_size=max_batch_size,
        instance_count=1,
        warmup=False,
        # Triton applies a request's own timeout only below a non-zero default (a default of 0 means
        # "no timeout" and silently ignores overrides, measured with this Triton): give it a long one.
        default_queue_timeout_us=QUEUE_TIMEOUT_US,
        extra_parameters={"delay_ms": str(round(delay_s * 1000))},
    )
    directory = model_dir(repository, name)
    shutil.rmtree(directory, ignore_errors=True)
    (directory / MODEL_VERSION).mkdir(parents=True)
    config = build_model_config(name, spec.input_size, spec.num_classes, serving)
    (directory / CONFIG_FILENAME).write_text(text_format.MessageToString(config))
    source = resources.files("deploylab.services.chaos").joinpath("slow_model.py").read_text()
    (directory / MODEL_VERSION / PYTHON_MODEL_FILENAME).write_text(source)
    return directory


def ensure_exported(repository: Path, models: list[str]) -> list[str]:
    """Export the models (catalog names: their default variant) that `repository` lacks; Triton names."""
    exported = read_repository(repository)
    names = []
    for model in models:
        served = served_model(model)
        if served.triton_model not in exported:
            export_model(served.spec, served.variant, repository, ExportOptions())
        names.append(served.triton_model)
    return names
