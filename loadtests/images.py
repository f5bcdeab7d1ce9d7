"""The v2 input tensors of the sample images: the model's eval transform, applied on the client.

The images themselves are the measurement core's sample photos (`deploylab.services.measure.images`);
the v2 scenarios send what the gateway would send Triton for them.
"""

from __future__ import annotations

import io

import numpy as np
from deploylab.services.modelzoo.catalog import Preprocessing
from PIL import Image


def preprocess(jpeg: bytes, spec: Preprocessing, datatype: str = "FP32") -> np.ndarray:
    """The model's eval transform on the client: 1x3xHxW float32, what the gateway would send Triton;
    for a model whose input is UINT8 (it normalises in its graph), the framed pixels as uint8.

    Resize the shorter side to `spec.resize`, center-crop `spec.crop`, scale to [0, 1], normalize.
    """
    resample = Image.Resampling.BICUBIC if spec.interpolation == "bicubic" else Image.Resampling.BILINEAR
    with Image.open(io.BytesIO(jpeg)) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    scale = spec.resize / min(width, height)
    resized = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), resample)
    left = (resized.width - spec.crop) // 2
    top = (resized.height - spec.crop) // 2
    cropped = resized.crop((left, top, left + spec.crop, top + spec.crop))
    if datatype == "UINT8":
        return np.ascontiguousarray(np.asarray(cropped, dtype=np.uint8).transpose(2, 0, 1)[None])
    array = np.asarray(cropped, dtype=np.float32) / 255.0
    normalized = (array - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[None], dtype=np.float32)
