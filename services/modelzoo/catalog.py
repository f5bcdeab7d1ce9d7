"""The model zoo as data: one frozen `ModelSpec` per servable CNN.

Every fact a caller needs — how to build the network, how to preprocess an image for it, what the
published model card says about its size — lives in the `CATALOG` table below, not in code paths.
The expected numbers are the torchvision model cards (IMAGENET1K_V1 weights) and the RepVGG paper
(Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021, Table 2/3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

from deploylab.services.common.errors import UserError

Interpolation = Literal["bilinear", "bicubic"]
Source = Literal["torchvision", "timm"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The variant name of a model that has only one form.
DEFAULT_VARIANT = "default"


class UnknownModelError(LookupError, UserError):
    """A model name that is not in the catalog; the message lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown model {name!r}; known models: {', '.join(known)}")


class UnknownVariantError(LookupError, UserError):
    """A variant that the model does not have; the message lists the model's variants."""

    def __init__(self, model: str, variant: str, known: tuple[str, ...]) -> None:
        self.model = model
        self.variant = variant
        self.known = known
        super().__init__(f"model {model!r} has no variant {variant!r}; variants: {', '.join(known)}")


@dataclass(frozen=True)
class Preprocessing:
    """The eval transform of the model's reference weights: resize shorter side, center crop, normalize.

    Matches torchvision's `ImageClassification` preset and timm's `transforms_factory` eval path
    (`resize = floor(crop / crop_pct)`).
    """

    resize: int = 256
    crop: int = 224
    interpolation: Interpolation = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


Precision = Literal["fp32", "int8", "fp16"]
#: Where a variant's Triton instances may run: `any` kind, or `gpu` instances only (fp16, which only a
#: GPU runs faster than fp32: ONNX Runtime's CPU provider computes most fp16 nodes by casting to fp32).
Device = Literal["any", "gpu"]
#: What runs the exported ONNX file inside Triton: ONNX Runtime (the Python backend's model.py, Triton's
#: onnxruntime backend or deploylab_ort) or OpenVINO's CPU plugin (the Python backend's model.py).
Engine = Literal["onnxruntime", "openvino"]
ENGINES: tuple[Engine, ...] = ("onnxruntime", "openvino")

#: The int8 deployment of every model: its serving form (RepVGG: deploy), statically quantized.
INT8_VARIANT = "int8"
#: The serving form's fp32 ONNX file, run by OpenVINO instead of ONNX Runtime.
OPENVINO_VARIANT = "openvino"
#: The int8 variant's QDQ file, run by OpenVINO (whose CPU plugin executes the QDQ pairs as int8 kernels).
INT8_OPENVINO_VARIANT = "int8_openvino"
#: The serving form's fp32 ONNX file with float16 weights and activations (float32 inputs and outputs),
#: served on GPU instances only.
FP16_VARIANT = "fp16"


@dataclass(frozen=True)
class Variant:
    """One exportable form of a model (RepVGG: `train` multi-branch, `deploy` re-parameterized; `int8`:
    the serving form quantized; `openvino`, `int8_openvino`: those two run by OpenVINO; `fp16`: the
    serving form in half precision, on GPU instances only). Opt-in variants are exported, swept and
    listed only when named."""

    name: str
    expected_params: int
    reparameterize: bool = False
    precision: Precision = "fp32"
    opt_in: bool = False
    engine: Engine = "onnxruntime"
    #: `gpu`: the exporter refuses CPU instances for this variant, and a CPU comparison leaves it out.
    device: Device = "any"

    @property
    def needs_gpu(self) -> bool:
        """Whether the variant is served on GPU instances only."""
        return self.device == "gpu"


@dataclass(frozen=True)
class ModelSpec:
    """Everything deploylab knows about one catalog model before it is built."""

    name: str
    family: str
    source: Source
    builder: str  # torchvision.models.<builder> or timm.create_model(<builder>)
    variants: tuple[Variant, ...]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    input_size: int = 224
    num_classes: int = 1000
    reference_gmacs: float | None = None  # published GMACs at 224², None where the source gives none
    reference: str = ""
    summary: str = ""

    @property
    def default_variant(self) -> str:
        """RepVGG serves its deploy form by default; everything else has a single variant."""
        names = self.variant_names
        return "deploy" if "deploy" in names else names[0]

    @property
    def variant_names(self) -> tuple[str, ...]:
        """The variants exported, swept and listed by default (the fp32 forms)."""
        return tuple(v.name for v in self.variants if not v.opt_in)

    @property
    def all_variant_names(self) -> tuple[str, ...]:
        """Every variant, opt-in ones (int8, openvino, int8_openvino, fp16) included: what a name may
        resolve to."""
        return tuple(v.name for v in self.variants)

    def variant(self, name: str | None = None) -> Variant:
        """The named variant (default variant when `name` is None)."""
        wanted = name or self.default_variant
        for variant in self.variants:
            if variant.name == wanted:
                return variant
        raise UnknownVariantError(self.name, wanted, self.all_variant_names)

    def triton_name(self, variant: str | None = None) -> str:
        """The Triton model directory for a variant: `resnet50`, `repvgg_a0_deploy`."""
        chosen = self.variant(variant).name
        return self.name if chosen == DEFAULT_VARIANT else f"{self.name}_{chosen}"


@dataclass(frozen=True)
class ServedForm:
    """One served form of a catalog model: its spec and one variant, i.e. one Triton model. The gateway's
    routing targets and the measurement core's model names are both this."""

    spec: ModelSpec
    variant: str

    @property
    def model(self) -> str:
        return self.spec.name

    @property
    def triton_model(self) -> str:
        return self.spec.triton_name(self.variant)


def _deployments(params: int, reparameterize: bool) -> tuple[Variant, ...]:
    """The opt-in deployments of a model's serving form: int8, fp32 and int8 on OpenVINO, and fp16 on
    GPU instances."""
    return (
        Variant(INT8_VARIANT, params, reparameterize, precision="int8", opt_in=True),
        Variant(OPENVINO_VARIANT, params, reparameterize, engine="openvino", opt_in=True),
        Variant(INT8_OPENVINO_VARIANT, params, reparameterize, "int8", opt_in=True, engine="openvino"),
        Variant(FP16_VARIANT, params, reparameterize, precision="fp16", opt_in=True, device="gpu"),
    )


def _single(params: int) -> tuple[Variant, ...]:
    return (Variant(DEFAULT_VARIANT, params), *_deployments(params, reparameterize=False))


def _repvgg(train_params: int, deploy_params: int) -> tuple[Variant, ...]:
    # The deployments derive from the served form, deploy: `repvgg_a0_openvino` is the re-parameterized
    # network (the train form is a baseline to compare against, not something to deploy).
    return (
        Variant("train", train_params),
        Variant("deploy", deploy_params, reparameterize=True),
        *_deployments(deploy_params, reparameterize=True),
    )


_TORCHVISION_CARD = "torchvision model card, IMAGENET1K_V1"
_REPVGG_PAPER = "Ding et al. 2021, RepVGG (arXiv:2101.03697); timm repvgg_*.rvgg_in1k"

CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "resnet18",
            "resnet",
            "torchvision",
            "resnet18",
            _single(11_689_512),
            reference_gmacs=1.81,
            reference=_TORCHVISION_CARD,
            summary="ResNet-18: small residual baseline",
        ),
        ModelSpec(
            "resnet50",
            "resnet",
            "torchvision",
            "resnet50",
            _single(25_557_032),
            reference_gmacs=4.09,
            reference=_TORCHVISION_CARD,
            summary="ResNet-50: the usual reference point",
        ),
        ModelSpec(
            "vgg16",
            "vgg",
            "torchvision",
            "vgg16",
            _single(138_357_544),
            reference_gmacs=15.47,
            reference=_TORCHVISION_CARD,
            summary="VGG-16: plain 3x3 stack, 138M parameters mostly in the classifier",
        ),
        ModelSpec(
            "mobilenet_v3_large",
            "mobilenet",
            "torchvision",
            "mobilenet_v3_large",
            _single(5_483_032),
            reference_gmacs=0.22,
            reference=_TORCHVISION_CARD,
            summary="MobileNetV3-Large: depthwise separable, latency oriented",
        ),
        ModelSpec(
            "mobilenet_v3_small",
            "mobilenet",
            "torchvision",
            "mobilenet_v3_small",
            _single(2_542_856),
            reference_gmacs=0.06,
            reference=_TORCHVISION_CARD,
            summary="MobileNetV3-Small: the smallest model in the zoo",
        ),
        ModelSpec(
            "convnext_tiny",
            "convnext",
            "torchvision",
            "convnext_tiny",
            _single(28_589_128),
            preprocessing=Preprocessing(resize=236),
            reference_gmacs=4.46,
            reference=_TORCHVISION_CARD,
            summary="ConvNeXt-T: modernized ResNet with 7x7 depthwise convs and LayerNorm",
        ),
        ModelSpec(
            "repvgg_a0",
            "repvgg",
            "timm",
            "repvgg_a0",
            _repvgg(9_108_968, 8_309_384),
            reference=_REPVGG_PAPER,
            summary="RepVGG-A0: multi-branch for training, one 3x3 conv per block to deploy",
        ),
        ModelSpec(
            "repvgg_a1",
            "repvgg",
            "timm",
            "repvgg_a1",
            _repvgg(14_092_264, 12_789_864),
            reference=_REPVGG_PAPER,
            summary="RepVGG-A1: wider A0",
        ),
    )
}

#: What `make compare` exports and sweeps: one model per claim the report checks.
MODEL_SETS: dict[str, tuple[str, ...]] = {
    "default": ("resnet50", "vgg16", "mobilenet_v3_large", "convnext_tiny", "repvgg_a0"),
    "small": ("resnet18", "mobilenet_v3_small", "repvgg_a0"),
    "all": tuple(CATALOG),
}


def get_spec(name: str) -> ModelSpec:
    """The catalog entry for `name`, or `UnknownModelError` listing the known names."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownModelError(name, sorted(CATALOG)) from None


def resolve_triton_name(triton_name: str) -> tuple[ModelSpec, str]:
    """Map a Triton model directory name back to (spec, variant)."""
    for spec in CATALOG.values():
        for variant in spec.all_variant_names:
            if spec.triton_name(variant) == triton_name:
                return spec, variant
    known = sorted(s.triton_name(v) for s in CATALOG.values() for v in s.variant_names)
    raise UnknownModelError(triton_name, known)


def resolve_model_set(names: list[str] | tuple[str, ...], model_set: str | None) -> list[ModelSpec]:
    """Specs for explicit names, else for a named set; unknown names raise with the known list."""
    if names:
        return [get_spec(n) for n in dict.fromkeys(names)]
    set_name = model_set or "default"
    if set_name not in MODEL_SETS:
        raise UnknownModelError(set_name, sorted(MODEL_SETS))
    return [CATALOG[n] for n in MODEL_SETS[set_name]]


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, index-aligned with every catalog model's logits."""
    text = resources.files("deploylab.services.modelzoo").joinpath("data/imagenet1k_labels.txt").read_text()
    labels = tuple(line for line in text.splitlines() if line)
    if len(labels) != 1000:
        raise RuntimeError(f"label file holds {len(labels)} labels, expected 1000")
    return labels
