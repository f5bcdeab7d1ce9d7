"""fp16 deployments: the fp32 ONNX file with float16 weights and activations, float32 at its edges.

The conversion is ONNX Runtime's own (`onnxruntime.transformers.float16.convert_float_to_float16`,
shipped in the onnxruntime wheel): every float initializer and activation becomes float16, ops that
float16 would break (its block list) stay float32 between Cast nodes, and with `keep_io_types` the
graph's input and output stay float32 behind a Cast each. So `config.pbtxt`, the gateway and every
client see the same float32 tensors as for the fp32 model; only what runs between them changes.

fp16 is a GPU precision: tensor cores multiply float16 at several times the float32 rate, and the
weights and activations move half the bytes. ONNX Runtime's CPU provider has float16 kernels for few
ops and runs the rest by casting to float32 and back, so on a CPU the fp16 file is slower than the fp32
one; the exporter serves this variant on GPU instances only (`Variant.device`).

Fidelity against the fp32 file is measured by `quantize.measure_fidelity`, on the photos int8 is judged
on, with the fp16 file on ONNX Runtime's CUDA provider when the installed ONNX Runtime has one (where it
is served) and on its CPU provider otherwise (which computes in float32 between float16 tensors, so it
bounds the rounding of weights and activations but not a GPU kernel's own).
"""

from __future__ import annotations

from pathlib import Path

from .engines import OrtDevice, onnxruntime_has_cuda

#: How `convert_fp16` converts, as data: the manifest records it and the export fingerprint holds it.
CONVERSION: dict[str, object] = {
    "converter": "onnxruntime.transformers.float16.convert_float_to_float16",
    "keep_io_types": True,
}


def convert_fp16(fp32_onnx: Path, fp16_onnx: Path) -> None:
    """Write `fp32_onnx` with float16 weights and activations, its input and output kept float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_onnx))
    # Weights outside float16's range are clamped into it (|w| < 6e-8 to ±6e-8, |w| > 65504 to ±65504);
    # the fidelity measured after the conversion says what that and the rounding cost.
    half = convert_float_to_float16(model, keep_io_types=bool(CONVERSION["keep_io_types"]))
    onnx.save(half, str(fp16_onnx))


def fidelity_device() -> OrtDevice:
    """Where the fp16 file's fidelity is measured: CUDA where ONNX Runtime has it, else the CPU."""
    return "cuda" if onnxruntime_has_cuda() else "cpu"
