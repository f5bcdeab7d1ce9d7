"""int8 deployments: ONNX Runtime static QDQ quantization, calibrated on real photos, fidelity measured.

Static QDQ with per-channel int8 weights and uint8 activations is what ONNX Runtime runs fastest on x86
CPUs; `reduce_range` keeps weights to 7 bits because AVX2 without VNNI multiplies u8×s8 pairs into
int16 and saturates at full range. Calibration reads activation ranges from freely licensed photos that
scikit-image ships offline, each also flipped and cropped, through torchvision's own eval transform
(the reference the gateway's preprocessing is tested against). Fidelity is the int8 model against the
fp32 one it came from, on the calibration photos and on photos calibration never saw, both run by the
engine that serves the int8 file (ONNX Runtime for `int8`, OpenVINO for `int8_openvino`), so the
number measures the quantization as served. The fp16 deployments (`half`) are measured by the same code
on the same photos.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .catalog import Engine, Preprocessing
from .engines import OrtDevice, open_onnx
from .repository import InputDtype

#: Calibration photos (RGB and grayscale scenes, objects, textures) and held-out ones for fidelity.
CALIBRATION_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
    "camera", "coins", "clock",
)  # fmt: skip
HELD_OUT_PHOTOS = ("retina", "colorwheel", "brick", "grass", "gravel", "moon", "cell")
BATCH = 8


@dataclass(frozen=True)
class QuantizationSettings:
    """How `quantize_int8` quantizes, as data: the manifest records it, and the export fingerprint
    holds it, so an int8 file is reused only where these settings made it."""

    quant_format: str = "QDQ"
    per_channel: bool = True
    reduce_range: bool = True
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    calibrate_method: str = "MinMax"
    calibration_photos: tuple[str, ...] = CALIBRATION_PHOTOS

    def describe(self) -> str:
        return (
            f"onnxruntime static {self.quant_format}: per-channel int8 weights"
            f"{' (reduce_range)' if self.reduce_range else ''}, uint8 activations, "
            f"{self.calibrate_method} calibration"
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "calibration_photos": list(self.calibration_photos)}


QUANTIZATION = QuantizationSettings()


@dataclass(frozen=True)
class Fidelity:
    """A lower-precision model (int8, fp16) against its fp32 source on one image set."""

    images: int
    top1_agreement: float  # share of images with the same top-1 class
    top5_overlap: float  # mean share of the fp32 top-5 found in the candidate's top-5
    max_logit_error: float  # max |Δ logit| / max |fp32 logit|, per image, the worst image

    def as_dict(self) -> dict[str, float | int]:
        return {
            "images": self.images,
            "top1_agreement": round(self.top1_agreement, 4),
            "top5_overlap": round(self.top5_overlap, 4),
            "max_logit_error": round(self.max_logit_error, 4),
        }


def photo(name: str) -> Image.Image:
    """A scikit-image photo as RGB (grayscale and boolean images replicated to three channels)."""
    from skimage import data

    pixels = np.asarray(getattr(data, name)())
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    return Image.fromarray(pixels).convert("RGB")


def augmented(image: Image.Image) -> Iterator[Image.Image]:
    """The photo, mirrored, and two off-centre crops: the framings a client sends."""
    width, height = image.size
    yield image
    yield ImageOps.mirror(image)
    yield image.crop((0, 0, int(width * 0.75), int(height * 0.75)))
    yield image.crop((int(width * 0.25), int(height * 0.25), width, height))


def pixel_batch(
    images: list[Image.Image], steps: Preprocessing, input_dtype: InputDtype = "fp32"
) -> np.ndarray:
    """torchvision's classic eval transform of each image, stacked (N, 3, crop, crop) float32; for a
    uint8-input graph, which normalises itself, the resized and cropped pixels as uint8."""
    from torchvision import transforms

    if input_dtype == "uint8":
        framing = transforms.Compose([
            transforms.Resize(steps.resize, interpolation=transforms.InterpolationMode(steps.interpolation)),
            transforms.CenterCrop(steps.crop),
        ])  # fmt: skip
        return np.stack([np.asarray(framing(image), dtype=np.uint8).transpose(2, 0, 1) for image in images])
    pipeline = transforms.Compose([
        transforms.Resize(steps.resize, interpolation=transforms.InterpolationMode(steps.interpolation)),
        transforms.CenterCrop(steps.crop),
        transforms.ToTensor(),
        transforms.Normalize(steps.mean, steps.std),
    ])  # fmt: skip
    return np.stack([pipeline(image).numpy() for image in images]).astype(np.float32)


def calibration_batches(
    steps: Preprocessing, photos: tuple[str, ...] = CALIBRATION_PHOTOS, input_dtype: InputDtype = "fp32"
) -> list[np.ndarray]:
    images = [view for name in photos for view in augmented(photo(name))]
    pixels = pixel_batch(images, steps, input_dtype)
    return [pixels[i : i + BATCH] for i in range(0, len(pixels), BATCH)]


def quantize_int8(
    fp32_onnx: Path,
    int8_onnx: Path,
    steps: Preprocessing,
    settings: QuantizationSettings = QUANTIZATION,
    input_dtype: InputDtype = "fp32",
) -> None:
    """Write the static-QDQ int8 form of `fp32_onnx`, calibrated on the settings' photos (augmented).

    Calibration feeds what the graph takes (`input_dtype`); a uint8 input is not a float tensor, so
    the quantizer leaves it and the in-graph normalisation's Cast alone and quantizes from there on.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self, input_name: str) -> None:
            batches = calibration_batches(steps, settings.calibration_photos, input_dtype)
            self.feeds = iter([{input_name: batch} for batch in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    prepared = int8_onnx.with_name(f".{int8_onnx.name}.pre.onnx")
    try:
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8_onnx),
            Reader(_input_name(fp32_onnx)),
            quant_format=QuantFormat[settings.quant_format],
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            activation_type=QuantType[settings.activation_type],
            weight_type=QuantType[settings.weight_type],
            calibrate_method=CalibrationMethod[settings.calibrate_method],
        )
    finally:
        prepared.unlink(missing_ok=True)


def measure_fidelity(
    fp32_onnx: Path,
    candidate_onnx: Path,
    steps: Preprocessing,
    engine: Engine = "onnxruntime",
    device: OrtDevice = "cpu",
    input_dtype: InputDtype = "fp32",
) -> dict[str, dict[str, float | int]]:
    """Fidelity on the calibration photos and on held-out ones (each image as a client frames it),
    both models run by `engine`, the candidate on `device` (see `compare_models`), fed `input_dtype`."""
    sets = {
        "calibration": [photo(name) for name in CALIBRATION_PHOTOS],
        "held_out": [view for name in HELD_OUT_PHOTOS for view in augmented(photo(name))],
    }
    return {
        name: compare_models(
            fp32_onnx, candidate_onnx, pixel_batch(images, steps, input_dtype), engine, device
        ).as_dict()
        for name, images in sets.items()
    }


def compare_models(
    reference_onnx: Path,
    candidate_onnx: Path,
    pixels: np.ndarray,
    engine: Engine = "onnxruntime",
    device: OrtDevice = "cpu",
) -> Fidelity:
    """The candidate's logits on `device` against the reference's on the CPU, both run by `engine`.

    The fp32 reference stays on the CPU even when the candidate is measured where it is served (fp16 on
    CUDA): a GPU may run fp32 convolutions in TF32, and the error would then be partly the reference's.
    """
    reference = _logits(reference_onnx, pixels, engine, "cpu")
    candidate = _logits(candidate_onnx, pixels, engine, device)
    top5_ref = np.argsort(-reference, axis=1)[:, :5]
    top5_got = np.argsort(-candidate, axis=1)[:, :5]
    scale = np.maximum(np.abs(reference).max(axis=1), np.finfo(np.float32).tiny)
    return Fidelity(
        images=len(pixels),
        top1_agreement=float(np.mean(reference.argmax(1) == candidate.argmax(1))),
        top5_overlap=float(
            np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5_ref, top5_got, strict=True)])
        ),
        max_logit_error=float((np.abs(reference - candidate).max(axis=1) / scale).max()),
    )


def _logits(model: Path, pixels: np.ndarray, engine: Engine, device: OrtDevice) -> np.ndarray:
    run = open_onnx(model, engine, device=device)
    return np.concatenate([run(pixels[i : i + BATCH]) for i in range(0, len(pixels), BATCH)])


def _input_name(model: Path) -> str:
    import onnx

    return onnx.load(str(model), load_external_data=False).graph.input[0].name
