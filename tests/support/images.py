"""Images fabricated by the tests: every odd format the gateway promises to handle, in memory."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def pattern(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """A structured RGB picture (gradients + blocks), so resizing and cropping matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    blocks = rng.integers(0, 255, size=(height // 16 + 1, width // 16 + 1, 3))
    noise = np.kron(blocks, np.ones((16, 16, 1)))[:height, :width]
    return Image.fromarray(((base + noise) / 2).astype(np.uint8), "RGB")


def photo(name: str, size: tuple[int, int]) -> Image.Image:
    """A freely licensed photo from scikit-image's data module (astronaut, coffee, chelsea, rocket…),
    resized to `size` (width, height) to stand in for what cameras and phones send."""
    from deploylab.services.modelzoo.quantize import photo as load_photo

    return load_photo(name).resize(size, Image.Resampling.BICUBIC)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg(seed: int = 0, **options: object) -> bytes:
    return encode(pattern(seed=seed), "JPEG", quality=95, **options)


def png(seed: int = 0) -> bytes:
    return encode(pattern(seed=seed), "PNG")


def webp(seed: int = 0) -> bytes:
    return encode(pattern(seed=seed), "WEBP", lossless=True)


def png_16bit(image: Image.Image) -> bytes:
    """The 8-bit gray image as 16-bit (value * 257), which must classify like the 8-bit one."""
    gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    sixteen = Image.frombytes("I;16", image.size, gray.astype("<u2").tobytes())
    return encode(sixteen, "PNG")


def exif_rotated_jpeg(image: Image.Image) -> bytes:
    """Pixels stored rotated by 90°, with the EXIF orientation (6) that tells viewers to undo it."""
    stored = image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares width x height pixels (decoding would need ~30 GB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
