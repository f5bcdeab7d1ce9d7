"""Versions of the libraries that shape an export or a measurement, recorded beside the results."""

from __future__ import annotations

import platform
from functools import cache
from importlib import metadata

_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "onnx",
    "onnxruntime",
    "openvino",
    "onnxscript",
    "numpy",
    "nvidia-pytriton",
    "tritonclient",
)


@cache
def library_versions() -> dict[str, str]:
    """Installed versions of the export/serving stack (missing packages are reported as absent)."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions
