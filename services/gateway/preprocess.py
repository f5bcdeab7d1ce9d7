"""Image bytes → normalized float32 CHW arrays, per model spec, with Pillow and numpy only.

A model exported with a uint8 input normalises in its graph; for it the batch is the resized and
cropped pixels as uint8 CHW (`datatype` "UINT8"), a quarter of the bytes, the same framing.

Matches torchvision's classic eval pipeline (`Resize(shorter side) → CenterCrop → ToTensor → Normalize`
on PIL images, which timm's eval transform also is) and stays within a tested tolerance of the
tensor-based `weights.transforms()` preset. Runs in a worker thread: Pillow releases the GIL while
decoding and resizing, so several images decode in parallel while the event loop keeps serving.

What users expect from odd images, and what they get:
- EXIF orientation is applied (phone photos come out upright).
- Transparency (RGBA, LA, palette with transparency) is composited over white, as viewers show it.
- Grayscale is replicated to three channels; CMYK is converted to RGB.
- 16-bit images are scaled to 8 bits (not clipped), 32-bit int/float likewise by their range.
- Animated images (GIF/WebP) use the first frame only.
- JPEGs far larger than the model's input (phone photos) are decoded DCT-scaled, see `draft_jpeg`.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from deploylab.services.modelzoo.catalog import Preprocessing
from deploylab.services.modelzoo.repository import NUMPY_DTYPES
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLargeError, InvalidImageError

#: Formats the gateway decodes; anything else is refused even if Pillow could read it.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
MEDIA_TYPES = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

# NOTE: Pillow's own bomb check (warn at MAX_IMAGE_PIXELS, raise at twice that) is replaced by ours:
# `open_image` compares the declared size with the configured limit before any pixel is decoded,
# and its error names the size and the limit.
Image.MAX_IMAGE_PIXELS = None
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


#: A JPEG is decoded by libjpeg-turbo at 1/2, 1/4 or 1/8 scale (in the DCT domain, almost free) as long as
#: its shorter side stays at least this many times the resize target; the usual resize then runs on the
#: smaller image. The error against a full decode grows as the decoded side nears the target (normalised
#: pixels, photos at quality 90: max ~0.07 at 2.9x, ~0.23 at 1.46x, ~0.37 at 1.17x, ~0.54 at 1x; means
#: 0.004, 0.011, 0.018, 0.021). At 1.4 a 4000x3000 phone photo decodes at 1/8 (500x375, 1.46x a 256
#: resize) for about a quarter of a full decode's CPU; tests/unit/test_preprocess.py holds max 0.25,
#: mean 0.015, and the bench measures the served model's top-1/top-5 agreement with a full decode.
JPEG_DRAFT_OVERSAMPLE = 1.4


@dataclass(frozen=True)
class DecodedImage:
    """Original size and decoded format, for responses and metrics."""

    width: int
    height: int
    format: str


def open_image(data: bytes, max_pixels: int) -> tuple[Image.Image, DecodedImage]:
    """Open (header only) and validate; raises before any pixel is decoded if the image is too large."""
    if not data:
        raise InvalidImageError("empty image: the body holds no bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"not a decodable image; allowed formats: {', '.join(ALLOWED_FORMATS)}"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"corrupt image header: {exc}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image declares {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; refused before decoding",
            details={"width": width, "height": height, "max_pixels": max_pixels},
        )
    return image, DecodedImage(width, height, str(image.format))


def draft_jpeg(image: Image.Image, resize: int) -> None:
    """Ask the JPEG decoder for the smallest DCT scale that keeps the shorter side ≥ oversample × resize.

    A 12-megapixel photo's full decode is most of a request's CPU and nearly all of it is thrown away by
    the resize to 256 pixels; decoding at 1/8 scale skips all but the entropy decoding. Must run before
    the pixels load.
    """
    if image.format != "JPEG":
        return
    width, height = image.size
    scale = JPEG_DRAFT_OVERSAMPLE * resize / min(width, height)
    if scale <= 0.5:  # libjpeg's smallest step is 1/2
        image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright RGB: EXIF orientation applied, alpha composited over white, 16-bit scaled to 8."""
    try:
        image.load()  # decode now, so truncation surfaces here as a client error
        image = ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"image data is corrupt or truncated: {exc}") from None
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        if mode == "F":
            low, high = float(array.min()), float(array.max())
            array = (array - low) / (high - low or 1.0) * 255.0
        else:
            array = array / top * 255.0
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return image


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """torchvision's `Resize(int)`: shorter side to `shorter`, longer side truncated proportionally."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def center_crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """torchvision's `CenterCrop` box (left, top, right, bottom), rounding like torchvision."""
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return left, top, left + crop, top + crop


def frame_image(image: Image.Image, spec: Preprocessing) -> Image.Image:
    """RGB PIL image → the spec's resized and center-cropped (crop x crop) RGB image."""
    width, height = resized_size(image.width, image.height, spec.resize)
    resized = image.resize((width, height), _RESAMPLE[spec.interpolation])
    if width < spec.crop or height < spec.crop:
        # Only when resize < crop (not in the catalog): pad like torchvision, with zeros.
        canvas = Image.new("RGB", (max(width, spec.crop), max(height, spec.crop)))
        canvas.paste(resized, ((canvas.width - width) // 2, (canvas.height - height) // 2))
        resized, width, height = canvas, canvas.width, canvas.height
    return resized.crop(center_crop_box(width, height, spec.crop))


def image_pixels(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """RGB PIL image → uint8 array (3, crop, crop): framed, not normalized (the graph does that)."""
    return np.ascontiguousarray(np.asarray(frame_image(image, spec), dtype=np.uint8).transpose(2, 0, 1))


def preprocess_image(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """RGB PIL image → float32 array (3, crop, crop), normalized with the spec's mean/std."""
    array = np.asarray(frame_image(image, spec), dtype=np.float32)  # HWC, 0..255
    mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, dtype=np.float32) * 255.0)
    normalized = (array - mean) * inv_std
    return np.ascontiguousarray(normalized.transpose(2, 0, 1))


def decode_and_preprocess(
    data: bytes, spec: Preprocessing, max_pixels: int, datatype: str = "FP32"
) -> tuple[np.ndarray, DecodedImage]:
    """The whole path for one image, as the model's input `datatype` (FP32: normalized; UINT8: pixels);
    every failure is an InvalidImageError/ImageTooLargeError (4xx)."""
    image, info = open_image(data, max_pixels)
    draft_jpeg(image, spec.resize)
    convert = image_pixels if datatype == "UINT8" else preprocess_image
    return convert(to_rgb(image), spec), info


def decode_batch(
    images: list[bytes], spec: Preprocessing, max_pixels: int, datatype: str = "FP32"
) -> tuple[np.ndarray, list[DecodedImage]]:
    """Several images → one (N, 3, crop, crop) batch of the model's input `datatype` (FP32 or UINT8);
    the error names the failing image's position."""
    batch = np.empty((len(images), 3, spec.crop, spec.crop), dtype=NUMPY_DTYPES[datatype])
    infos = []
    for position, data in enumerate(images):
        try:
            batch[position], info = decode_and_preprocess(data, spec, max_pixels, datatype)
        except (InvalidImageError, ImageTooLargeError) as exc:
            if len(images) > 1:
                exc.message = f"image {position}: {exc.message}"
                exc.details = {**exc.details, "image_index": position}
            raise
        infos.append(info)
    return batch, infos
