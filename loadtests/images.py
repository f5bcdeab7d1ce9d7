"""The load test's image set: a few small JPEGs generated on the fly, and their v2 input tensors.

Generated rather than shipped, so the repository stays free of binary assets and every run sends the
same bytes: each image is a deterministic mix of gradients, stripes and blobs (natural-image-like
enough that JPEG decoding and resizing cost what they cost for a photo of the same size).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from deploylab.services.modelzoo.catalog import Preprocessing
from PIL import Image

#: Photo-like sizes: landscape, portrait, square and a small thumbnail.
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((400, 300), (300, 400), (320, 320), (256, 256))
JPEG_QUALITY = 85


@dataclass(frozen=True)
class SampleImage:
    """One encoded image the load test sends to the classify API."""

    name: str
    jpeg: bytes
    width: int
    height: int


def render_pixels(width: int, height: int, seed: int) -> np.ndarray:
    """An HxWx3 uint8 picture: smooth gradients plus stripes and a soft blob, different per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(0.005, 0.05, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.15, 0.4) * min(width, height)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
        stripes = 0.5 + 0.5 * np.sin(fx * x + fy * y + phase)
        channels.append(0.5 * stripes + 0.5 * blob)
    pixels = np.stack(channels, axis=-1)
    pixels += rng.normal(0, 0.03, size=pixels.shape).astype(np.float32)  # sensor-like noise
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


@cache
def sample_images(count: int = len(IMAGE_SIZES), seed: int = 0) -> tuple[SampleImage, ...]:
    """`count` deterministic JPEGs, cycling through IMAGE_SIZES."""
    if count < 1:
        raise ValueError("count must be >= 1")
    images = []
    for index in range(count):
        width, height = IMAGE_SIZES[index % len(IMAGE_SIZES)]
        buffer = io.BytesIO()
        Image.fromarray(render_pixels(width, height, seed + index)).save(buffer, "JPEG", quality=JPEG_QUALITY)
        images.append(SampleImage(f"sample-{index}.jpg", buffer.getvalue(), width, height))
    return tuple(images)


def preprocess(jpeg: bytes, spec: Preprocessing) -> np.ndarray:
    """The model's eval transform on the client: 1x3xHxW float32, what the gateway would send Triton.

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
    array = np.asarray(cropped, dtype=np.float32) / 255.0
    normalized = (array - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[None], dtype=np.float32)
