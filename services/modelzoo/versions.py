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
#: Distributions that install a package under another name: the GPU wheel of ONNX Runtime is
#: `onnxruntime-gpu` and replaces the CPU one (`pip install deploylab[gpu]`).
_ALTERNATIVES = {"onnxruntime": ("onnxruntime-gpu",)}


@cache
def library_versions() -> dict[str, str]:
    """Installed versions of the export/serving stack (missing packages are reported as absent)."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        versions[name] = "absent"
        for distribution in (name, *_ALTERNATIVES.get(name, ())):
            try:
                versions[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions
