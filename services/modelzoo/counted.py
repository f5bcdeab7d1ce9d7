"""GMACs at the model's input size, counted once per catalog variant and kept as data.

`deploylab models` lists every variant, exported or not; counting an unexported one means building it
with torch (seconds, hundreds of MB), so the listing reads these numbers instead. They are what
`facts.measure_facts` returns, rounded as a manifest records them; a unit test recounts them.
"""

from __future__ import annotations

#: Triton model name → GMACs (multiply-accumulates, 1 MAC = 2 FLOPs) of one forward pass.
COUNTED_GMACS: dict[str, float] = {
    "resnet18": 1.8141,
    "resnet50": 4.0892,
    "vgg16": 15.4703,
    "mobilenet_v3_large": 0.2166,
    "mobilenet_v3_small": 0.0565,
    "convnext_tiny": 4.4555,
    "repvgg_a0_train": 1.5126,
    "repvgg_a0_deploy": 1.3615,
    "repvgg_a1_train": 2.6265,
    "repvgg_a1_deploy": 2.364,
}
