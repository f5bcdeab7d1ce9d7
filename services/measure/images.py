"""The sample images every load sends: real photos shipped with scikit-image, encoded as JPEG.

Photos rather than synthetic pictures, because JPEG decoding and resizing cost what they cost for
natural images, and a classifier's answer to a photo of a cat is something a person can check. Each
photo is center-cropped to its target's aspect and resized to a photo-like size (the first one to
500x375, ImageNet's typical size), then encoded once; the bytes are the same on every run.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

JPEG_QUALITY = 90


@dataclass(frozen=True)
class PhotoSpec:
    """One photo of `skimage.data` and the size it is sent at."""

    name: str  # a function of skimage.data returning an RGB uint8 array
    width: int
    height: int


#: Landscape, landscape, portrait and square: the shapes a client sends.
PHOTOS: tuple[PhotoSpec, ...] = (
    PhotoSpec("chelsea", 500, 375),
    PhotoSpec("coffee", 400, 300),
    PhotoSpec("rocket", 300, 400),
    PhotoSpec("astronaut", 320, 320),
)


@dataclass(frozen=True)
class SampleImage:
    """One encoded image for the classify API."""

    name: str
    jpeg: bytes
    width: int
    height: int


def _photo(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        raise RuntimeError(
            "the sample photos come from scikit-image: install the project (`make install`)"
        ) from None
    loader: Callable[[], np.ndarray] = getattr(data, name)
    return loader()


def fit(pixels: np.ndarray, width: int, height: int) -> Image.Image:
    """The largest centered crop of `pixels` with the target's aspect, resized to width x height."""
    image = Image.fromarray(pixels).convert("RGB")
    scale = min(image.width / width, image.height / height)
    crop_w, crop_h = round(width * scale), round(height * scale)
    left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
    cropped = image.crop((left, top, left + crop_w, top + crop_h))
    return cropped.resize((width, height), Image.Resampling.LANCZOS)


@cache
def sample_images(count: int = len(PHOTOS)) -> tuple[SampleImage, ...]:
    """`count` JPEGs, cycling through PHOTOS (a count above their number repeats them)."""
    if count < 1:
        raise ValueError("count must be >= 1")
    images = []
    for index in range(count):
        spec = PHOTOS[index % len(PHOTOS)]
        buffer = io.BytesIO()
        fit(_photo(spec.name), spec.width, spec.height).save(buffer, "JPEG", quality=JPEG_QUALITY)
        images.append(SampleImage(f"{spec.name}-{index}.jpg", buffer.getvalue(), spec.width, spec.height))
    return tuple(images)


def sample_jpeg() -> bytes:
    """The first sample photo's JPEG (500x375): what a single-image load sends."""
    return sample_images(1)[0].jpeg
