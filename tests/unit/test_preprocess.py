"""Preprocessing matches torchvision/timm and handles the images users actually send."""

from __future__ import annotations

import io

import numpy as np
import pytest
from deploylab.services.gateway.errors import ImageTooLargeError, InvalidImageError
from deploylab.services.gateway.preprocess import (
    JPEG_DRAFT_OVERSAMPLE,
    decode_and_preprocess,
    decode_batch,
    draft_jpeg,
    preprocess_image,
    to_rgb,
)
from deploylab.services.modelzoo.catalog import CATALOG, Preprocessing, get_spec
from PIL import Image

from tests.support import images

MAX_PIXELS = 40_000_000


def classic_torchvision(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """torchvision's classic PIL pipeline, which timm's eval transform also is."""
    from torchvision import transforms

    interpolation = transforms.InterpolationMode(spec.interpolation)
    pipeline = transforms.Compose([
        transforms.Resize(spec.resize, interpolation=interpolation),
        transforms.CenterCrop(spec.crop),
        transforms.ToTensor(),
        transforms.Normalize(spec.mean, spec.std),
    ])  # fmt: skip
    return pipeline(image).numpy()  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(CATALOG))
@pytest.mark.parametrize("size", [(320, 240), (240, 320), (500, 500), (640, 201)])
def test_matches_torchvision_pil_pipeline(name: str, size: tuple[int, int]) -> None:
    spec = get_spec(name).preprocessing
    image = images.pattern(*size)
    np.testing.assert_allclose(preprocess_image(image, spec), classic_torchvision(image, spec), atol=1e-5)


@pytest.mark.parametrize("name", ["resnet50", "convnext_tiny", "mobilenet_v3_large"])
def test_close_to_the_weights_transforms_preset(name: str) -> None:
    """The tensor-based preset antialiases differently; the difference stays small."""
    import torchvision

    preset = torchvision.models.get_model_weights(name).IMAGENET1K_V1.transforms()
    image = images.pattern(400, 300)
    ours = preprocess_image(image, get_spec(name).preprocessing)
    theirs = preset(image).numpy()
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert float(np.abs(ours - theirs).mean()) < 0.02  # in normalized units (1/255/std ≈ 0.017)
    assert float(np.abs(ours - theirs).max()) < 0.5


def test_timm_eval_transform_for_repvgg() -> None:
    import timm
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=timm.create_model("repvgg_a0", pretrained=False))
    transform = create_transform(**config)
    image = images.pattern(333, 250)
    np.testing.assert_allclose(
        preprocess_image(image, get_spec("repvgg_a0").preprocessing), transform(image).numpy(), atol=1e-5
    )


SPEC = get_spec("resnet18").preprocessing


def run(data: bytes) -> np.ndarray:
    return decode_and_preprocess(data, SPEC, MAX_PIXELS)[0]


def test_jpeg_png_webp_decode() -> None:
    for data in (images.jpeg(), images.png(), images.webp()):
        assert run(data).shape == (3, 224, 224)
    np.testing.assert_allclose(run(images.png()), run(images.webp()), atol=1e-6)  # both lossless


def test_exif_orientation_is_applied() -> None:
    upright = images.pattern()
    np.testing.assert_allclose(
        run(images.exif_rotated_jpeg(upright)), run(images.encode(upright, "JPEG", quality=95)), atol=0.1
    )


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = images.encode(images.pattern().convert("L"), "PNG")
    array = np.asarray(to_rgb(Image.open(io.BytesIO(gray))))
    assert array.shape[-1] == 3 and (array[..., 0] == array[..., 1]).all()
    assert run(gray).shape == (3, 224, 224)


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    gray8 = images.pattern().convert("L")
    np.testing.assert_allclose(run(images.png_16bit(gray8)), run(images.encode(gray8, "PNG")), atol=1e-5)


def test_transparency_is_composited_over_white() -> None:
    rgba = Image.new("RGBA", (300, 300), (10, 200, 30, 0))  # fully transparent green
    white = Image.new("RGB", (300, 300), (255, 255, 255))
    np.testing.assert_allclose(run(images.encode(rgba, "PNG")), run(images.encode(white, "PNG")), atol=1e-6)
    opaque = images.pattern().convert("RGBA")
    np.testing.assert_allclose(run(images.encode(opaque, "PNG")), run(images.png()), atol=1e-6)


def test_cmyk_jpeg_is_converted() -> None:
    cmyk = images.encode(images.pattern().convert("CMYK"), "JPEG", quality=95)
    assert abs(float(run(cmyk).mean()) - float(run(images.jpeg()).mean())) < 0.1


def test_palette_png_is_converted() -> None:
    palette = images.encode(images.pattern().convert("P"), "PNG")
    assert run(palette).shape == (3, 224, 224)


def test_bomb_is_refused_from_the_header_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="100000x100000"):
        run(images.png_bomb())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty image"),
        (b"definitely not an image", "not a decodable image"),
        (images.jpeg()[:2000], "corrupt or truncated"),
        (images.encode(images.pattern(), "GIF"), "not a decodable image"),
        (images.encode(images.pattern(), "BMP"), "not a decodable image"),
    ],
    ids=["empty", "garbage", "truncated-jpeg", "gif", "bmp"],
)
def test_bad_images_are_client_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        run(data)


def test_batch_error_names_the_failing_image() -> None:
    with pytest.raises(InvalidImageError, match="image 1: "):
        decode_batch([images.jpeg(), b"junk", images.png()], SPEC, MAX_PIXELS)


def test_batch_preserves_order() -> None:
    batch, infos = decode_batch([images.jpeg(seed=1), images.jpeg(seed=2)], SPEC, MAX_PIXELS)
    np.testing.assert_allclose(batch[1], run(images.jpeg(seed=2)))
    assert [i.format for i in infos] == ["JPEG", "JPEG"]


#: How far a DCT-scaled decode may move a normalised pixel from a full decode (the documented bound).
DRAFT_MAX_ABS, DRAFT_MAX_MEAN = 0.25, 0.015


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea", "rocket"])
@pytest.mark.parametrize("size", [(4000, 3000), (1200, 1600)])
def test_large_jpeg_is_decoded_scaled_within_the_fidelity_bound(photo: str, size: tuple[int, int]) -> None:
    data = images.encode(images.photo(photo, size), "JPEG", quality=90)
    spec = get_spec("resnet50").preprocessing
    drafted = Image.open(io.BytesIO(data))
    draft_jpeg(drafted, spec.resize)
    drafted.load()
    assert min(drafted.size) <= min(size) / 2  # the decoder really skipped work
    assert min(drafted.size) >= JPEG_DRAFT_OVERSAMPLE * spec.resize
    served, _ = decode_and_preprocess(data, spec, MAX_PIXELS)
    reference = classic_torchvision(to_rgb(Image.open(io.BytesIO(data))), spec)  # full-resolution decode
    error = np.abs(served - reference)
    assert error.max() <= DRAFT_MAX_ABS and error.mean() <= DRAFT_MAX_MEAN, (error.max(), error.mean())


def test_jpeg_near_the_model_size_is_decoded_in_full() -> None:
    data = images.encode(images.photo("coffee", (700, 525)), "JPEG", quality=90)
    image = Image.open(io.BytesIO(data))
    draft_jpeg(image, get_spec("resnet50").preprocessing.resize)
    image.load()
    assert image.size == (700, 525)


def test_uint8_pixels_are_the_same_framing_the_float_path_normalizes() -> None:
    spec = get_spec("resnet50").preprocessing
    data = images.jpeg(seed=3)
    pixels, _ = decode_batch([data], spec, MAX_PIXELS, "UINT8")
    floats, _ = decode_batch([data], spec, MAX_PIXELS)
    assert pixels.dtype == np.uint8 and pixels.shape == floats.shape == (1, 3, spec.crop, spec.crop)
    mean = np.asarray(spec.mean, np.float32)[:, None, None] * np.float32(255)
    inv_std = np.float32(1) / (np.asarray(spec.std, np.float32)[:, None, None] * np.float32(255))
    # The graph of a uint8-input export computes exactly this from the pixels.
    np.testing.assert_array_equal((pixels[0].astype(np.float32) - mean) * inv_std, floats[0])
