"""Export catalog models into the Triton model repository: build → (reparam) → ONNX → parity → install.

Each model is written to a temporary file, checked against torch, and only then moved into place with
its config and (last) its manifest, so an interrupted or failed export never leaves a half-model that
Triton would try to load. Unchanged models are skipped; a changed serving config alone only rewrites
`config.pbtxt`. The variant decides the engine that serves the file (`ServingConfig.engine`): parity is
checked on that engine, and the manifest records the engine as served (`manifest.served_engine`).

A lower-precision variant starts from the checked fp32 file: int8 is quantized (`quantize`), fp16
converted (`half`), and its fidelity against the fp32 file is measured and recorded. Variants whose files
are the same bytes (int8 and int8_openvino) reuse each other's up-to-date export instead of quantizing
again. fp16 is exported for GPU instances only.

With `ServingConfig.input_dtype` "uint8" the exported graph takes the resized and cropped pixels as
uint8 and normalises them itself (`PixelInput`): parity, calibration and fidelity then feed uint8
pixels, and the fingerprint holds the input dtype, so switching it re-exports.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .build import build_model
from .catalog import Engine, ModelSpec, Variant
from .counted import COUNTED_GMACS
from .engines import ENGINE_LABELS, OrtDevice
from .errors import ParityError, WeightsError, ZooError
from .facts import count_gmacs, count_params
from .manifest import Manifest, ParityRecord, WeightsRecord, read_manifest, served_engine, write_manifest
from .parity import Tolerance, check_parity, random_batch, torch_logits
from .reparam import reparameterize
from .repository import (
    INPUT_NAME,
    OUTPUT_NAME,
    InputDtype,
    InstanceKind,
    ServingConfig,
    default_layout,
    ensure_writable,
    model_dir,
    onnx_path,
    refresh_python_model,
    write_model_files,
)
from .versions import library_versions

OPSET = 18
#: Bump when the exporter's output changes for the same inputs, to invalidate old fingerprints.
EXPORTER_REVISION = 1

Status = Literal["exported", "reconfigured", "skipped"]
StepCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class ExportOptions:
    serving: ServingConfig | None = None  # None: the model's default (`default_serving`)
    weights: Path | None = None
    force: bool = False
    opset: int = OPSET
    parity: Tolerance = Tolerance()


class PixelInput(nn.Module):
    """`model` behind its own normalisation: uint8 NCHW pixels (0-255) in, the model's logits out.

    Cast to float, subtract mean·255, multiply by 1/(std·255): the arithmetic of the gateway's
    `preprocess_image`, in the same float32 order, so either side normalising gives the same input.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        shift = np.asarray(mean, dtype=np.float32) * np.float32(255.0)
        scale = np.float32(1.0) / (np.asarray(std, dtype=np.float32) * np.float32(255.0))
        self.register_buffer("shift", torch.from_numpy(shift).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.from_numpy(scale).reshape(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels.to(torch.float32) - self.shift) * self.scale)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ExportOutcome:
    model: str
    status: Status
    manifest: Manifest


def default_serving(model: str | None = None, kind: InstanceKind = "cpu") -> ServingConfig:
    """The serving config Triton model `model` gets unless told otherwise: on CPU instances its compute
    decides the layout (`default_layout`); without a model, the cores split between the instances."""
    layout = default_layout(COUNTED_GMACS.get(model) if model and kind == "cpu" else None)
    return layout.on(ServingConfig(instance_kind=kind))


def export_model(
    spec: ModelSpec,
    variant: str,
    repository: Path,
    options: ExportOptions,
    on_step: StepCallback | None = None,
) -> ExportOutcome:
    """Export one model variant into `repository`; skip work whose inputs did not change."""
    step = on_step or (lambda _model, _msg: None)
    name = spec.triton_name(variant)
    ensure_writable(repository)
    weights_record = _weights_record(options.weights)
    directory = model_dir(repository, name)
    chosen = _serving_for(options.serving or default_serving(name), spec.variant(variant), name)
    fingerprint = _onnx_fingerprint(spec, variant, weights_record, options.opset, chosen.input_dtype)
    serving = asdict(chosen)
    engine = served_engine(chosen.backend, chosen.engine)

    previous = read_manifest(directory)
    onnx_file = onnx_path(repository, name)
    if (
        previous is not None
        and not options.force
        and previous.onnx_fingerprint == fingerprint
        and onnx_file.is_file()
        and onnx_file.stat().st_size == previous.onnx_bytes
    ):
        if _jsonable(previous.serving) == _jsonable(serving):
            if refresh_python_model(repository, name):
                step(name, "unchanged but for deploylab's model.py: rewrote it, kept the ONNX file")
                return ExportOutcome(name, "reconfigured", previous)
            step(name, "unchanged, skipped (use --force to re-export)")
            return ExportOutcome(name, "skipped", previous)
        write_model_files(repository, name, spec.input_size, spec.num_classes, chosen)
        manifest = previous.model_copy(update={"serving": serving, "engine": engine})
        write_manifest(directory, manifest)
        step(name, "serving config changed: rewrote config.pbtxt, kept the ONNX file")
        return ExportOutcome(name, "reconfigured", manifest)

    started = time.perf_counter()
    step(name, "building torch model" + (f" with weights {options.weights}" if options.weights else ""))
    model, reparam_error = _build_checked(spec, variant, options.weights)
    if reparam_error is not None:
        step(name, f"re-parameterized: deploy vs train max |Δ| {reparam_error:.2e}")
    params = count_params(model)
    expected = spec.variant(variant).expected_params
    if params != expected:
        raise ZooError(f"{name}: built model has {params:,} parameters, catalog expects {expected:,}")
    gmacs = count_gmacs(model, spec.input_size)
    if chosen.input_dtype == "uint8":
        model = PixelInput(model, spec.preprocessing.mean, spec.preprocessing.std)

    directory.mkdir(parents=True, exist_ok=True)
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    tmp_onnx = onnx_file.with_name(f".{onnx_file.name}.tmp")
    step(name, f"exporting ONNX (opset {options.opset}, dynamic batch axis, {chosen.input_dtype} input)")
    export_onnx(model, tmp_onnx, spec.input_size, options.opset, chosen.input_dtype)
    label = ENGINE_LABELS[chosen.engine]
    step(name, f"checking parity torch vs {label} ({tmp_onnx.stat().st_size / 1e6:.0f} MB)")
    try:
        parity = check_parity(
            model,
            tmp_onnx,
            spec.input_size,
            tolerance=options.parity,
            engine=chosen.engine,
            input_dtype=chosen.input_dtype,
        )
    except ParityError:
        tmp_onnx.unlink(missing_ok=True)
        raise
    quantization = None
    if spec.variant(variant).precision != "fp32":
        reuse = (
            None
            if options.force
            else _same_file_export(
                spec, variant, repository, weights_record, options.opset, chosen.input_dtype
            )
        )
        quantization = _lower_in_place(
            tmp_onnx, spec, spec.variant(variant), name, step, chosen.engine, reuse, chosen.input_dtype
        )
    sha256 = _sha256(tmp_onnx)
    size = tmp_onnx.stat().st_size
    tmp_onnx.replace(onnx_file)
    write_model_files(repository, name, spec.input_size, spec.num_classes, chosen)

    manifest = Manifest(
        model=name,
        catalog_name=spec.name,
        variant=variant,
        family=spec.family,
        params=params,
        gmacs=round(gmacs, 4),
        input_size=spec.input_size,
        num_classes=spec.num_classes,
        onnx_bytes=size,
        onnx_sha256=sha256,
        opset=options.opset,
        parity=ParityRecord(
            batch_sizes=list(parity.batch_sizes),
            max_abs_error=parity.max_abs_error,
            max_scaled_error=parity.max_scaled_error,
            max_abs_logit=parity.max_abs_logit,
            rtol=parity.tolerance.rtol,
            atol=parity.tolerance.atol,
            criterion=parity.tolerance.describe(),
            reparam_max_abs_error=reparam_error,
        ),
        weights=weights_record,
        serving=serving,
        versions=library_versions(),
        onnx_fingerprint=fingerprint,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        export_seconds=round(time.perf_counter() - started, 2),
        precision=spec.variant(variant).precision,
        engine=engine,
        quantization=quantization,
    )
    write_manifest(directory, manifest)
    step(name, f"done in {manifest.export_seconds:.1f}s, parity max |Δ| {parity.max_abs_error:.2e}")
    return ExportOutcome(name, "exported", manifest)


def export_onnx(
    model: nn.Module, path: Path, input_size: int, opset: int = OPSET, input_dtype: InputDtype = "fp32"
) -> None:
    """Export with the torch.export-based exporter, batch axis dynamic, weights inside one file."""
    # A batch of 2: torch.export specializes sizes 0 and 1, so tracing at 1 would pin the batch axis.
    dtype = torch.uint8 if input_dtype == "uint8" else torch.float32
    sample = torch.zeros(2, 3, input_size, input_size, dtype=dtype)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter narrates every pass on stdout and warns about its own internals; we report
    # progress ourselves, and a failure still raises with its message.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def _serving_for(serving: ServingConfig, variant: Variant, name: str) -> ServingConfig:
    """`serving` with the variant's engine; a backend that cannot run that engine, or CPU instances for a
    variant served on GPUs only, is a ZooError."""
    if variant.needs_gpu and serving.instance_kind != "gpu":
        raise ZooError(
            f"{name}: {variant.precision} is served on GPU instances only (export it with --kind gpu on a "
            f"host with an NVIDIA GPU): ONNX Runtime's CPU provider runs {variant.precision} slower than "
            "fp32, so the comparison means something on a GPU alone"
        )
    try:
        return replace(serving, engine=variant.engine)
    except ValueError as exc:
        raise ZooError(f"{name}: {exc}; export it with --backend python --kind cpu") from None


def _build_checked(spec: ModelSpec, variant: str, weights: Path | None) -> tuple[nn.Module, float | None]:
    """The model to export and, for a re-parameterized variant, max |deploy − train| logits.

    The deploy form is fused from the very training model it is compared with, so the number measures
    the fusion alone (float noise when exact).
    """
    chosen = spec.variant(variant)
    if not chosen.reparameterize:
        return build_model(spec, variant, weights), None
    train_variant = next(v.name for v in spec.variants if not v.reparameterize)
    train = build_model(spec, train_variant, weights)
    deployed = reparameterize(train)
    batch = random_batch(2, spec.input_size, seed=123)
    error = float(np.max(np.abs(torch_logits(train, batch) - torch_logits(deployed, batch))))
    return deployed, error


def _weights_record(weights: Path | None) -> WeightsRecord | None:
    if weights is None:
        return None
    if not weights.is_file():
        raise WeightsError(f"weights file not found: {weights}")
    return WeightsRecord(path=str(weights), sha256=_sha256(weights))


def _onnx_fingerprint(
    spec: ModelSpec,
    variant: str,
    weights: WeightsRecord | None,
    opset: int,
    input_dtype: InputDtype = "fp32",
) -> str:
    """Everything that changes the ONNX bytes' meaning; random-init models are fixed by the seed.

    A lower precision adds how the fp32 file was turned into it (settings and ONNX Runtime's version);
    a uint8 input adds that (absent for fp32, so fp32 exports keep the fingerprints they had).
    """
    versions = library_versions()
    payload: dict[str, object] = {
        "revision": EXPORTER_REVISION,
        "spec": spec.name,
        "builder": spec.builder,
        "variant": variant,
        "weights": weights.sha256 if weights else None,
        "opset": opset,
        "torch": versions["torch"],
        "torchvision": versions["torchvision"],
        "timm": versions["timm"],
    }
    if input_dtype != "fp32":
        payload["input_dtype"] = input_dtype
    precision = spec.variant(variant).precision
    if precision != "fp32":
        payload["lowering"] = _lowering_settings(precision)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value: object) -> object:
    return json.loads(json.dumps(value, default=list))


def _lowering_settings(precision: str) -> dict[str, object]:
    """How the fp32 file becomes `precision` (int8: quantization settings; fp16: the conversion)."""
    import onnxruntime

    if precision == "int8":
        from .quantize import QUANTIZATION

        settings = QUANTIZATION.as_dict()
    elif precision == "fp16":
        from .half import CONVERSION

        settings = dict(CONVERSION)
    else:
        raise ValueError(f"no lowering from fp32 to {precision!r}")
    return {"precision": precision, **settings, "onnxruntime": onnxruntime.__version__}


def _same_file_export(
    spec: ModelSpec,
    variant: str,
    repository: Path,
    weights: WeightsRecord | None,
    opset: int,
    input_dtype: InputDtype = "fp32",
) -> tuple[str, Path] | None:
    """An up-to-date export of another variant whose ONNX file this variant's would be, byte for byte
    (int8 for int8_openvino and back: one file, two engines), as (Triton name, ONNX file).

    Up to date: its manifest's fingerprint is the one that variant would get now (same source model,
    weights, opset, lowering settings and libraries), and the file is the one its manifest describes.
    """
    chosen = spec.variant(variant)
    for other in spec.variants:
        same_file = (other.precision, other.reparameterize) == (chosen.precision, chosen.reparameterize)
        if other.name == variant or not same_file:
            continue
        name = spec.triton_name(other.name)
        manifest = read_manifest(model_dir(repository, name))
        onnx_file = onnx_path(repository, name)
        if (
            manifest is not None
            and manifest.onnx_fingerprint == _onnx_fingerprint(spec, other.name, weights, opset, input_dtype)
            and onnx_file.is_file()
            and onnx_file.stat().st_size == manifest.onnx_bytes
            and _sha256(onnx_file) == manifest.onnx_sha256
        ):
            return name, onnx_file
    return None


def _lower_in_place(
    onnx_file: Path,
    spec: ModelSpec,
    variant: Variant,
    name: str,
    step: StepCallback,
    engine: Engine,
    reuse: tuple[str, Path] | None,
    input_dtype: InputDtype = "fp32",
) -> dict[str, object]:
    """Replace the checked fp32 ONNX file by the variant's lower-precision form (a copy of `reuse`'s
    file when given); return how it was made and its fidelity against the fp32 file as served."""
    from .half import CONVERSION, convert_fp16, fidelity_device
    from .quantize import QUANTIZATION, measure_fidelity, quantize_int8

    precision = variant.precision
    lowered = onnx_file.with_name(f".{onnx_file.name}.{precision}.tmp")
    device: OrtDevice = fidelity_device() if variant.needs_gpu else "cpu"
    if precision == "int8":
        how: dict[str, object] = {
            "method": QUANTIZATION.describe(),
            "calibration_photos": list(QUANTIZATION.calibration_photos),
        }
    else:
        how = {"method": "float16 weights and activations, input and output types kept", **CONVERSION}
    try:
        if reuse is not None:
            step(name, f"reusing {reuse[0]}'s {precision} file (same source model and settings)")
            shutil.copyfile(reuse[1], lowered)
            how["reused_from"] = reuse[0]
        elif precision == "int8":
            photos = len(QUANTIZATION.calibration_photos)
            step(name, f"quantizing to int8 (static QDQ, calibrated on {photos} photos, 4 views each)")
            quantize_int8(onnx_file, lowered, spec.preprocessing, QUANTIZATION, input_dtype)
        else:
            step(name, "converting to fp16 (float16 weights and activations, input and output types kept)")
            convert_fp16(onnx_file, lowered)
        fidelity = measure_fidelity(onnx_file, lowered, spec.preprocessing, engine, device, input_dtype)
    except Exception:
        lowered.unlink(missing_ok=True)
        onnx_file.unlink(missing_ok=True)
        raise
    held_out = fidelity["held_out"]
    where = ENGINE_LABELS[engine] + (" (CUDA)" if device == "cuda" else "")
    step(
        name,
        f"{precision} vs fp32 on {where}, held-out photos: "
        f"top-1 agreement {held_out['top1_agreement']:.0%}, "
        f"top-5 overlap {held_out['top5_overlap']:.0%}, max logit error {held_out['max_logit_error']:.3f}",
    )
    lowered.replace(onnx_file)
    return {**how, "fidelity_engine": engine, "fidelity_device": device, "fidelity_vs_fp32": fidelity}
