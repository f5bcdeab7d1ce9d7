"""How a `tritonserver` serves the chosen models on this host's GPU, or the reason it cannot.

The nvidia-pytriton wheel's tritonserver answers every output of a Python-backend model with 0 bytes
whenever it sees a GPU, whatever the instance kind (measured on an H200: KIND_GPU and KIND_CPU
instances, numpy 1 and 2 in the stub; benchmarks/records/gpu-h200-2026-11-26.md). It serves them
when it is GPU-blind, and a Python-backend instance still runs on the GPU when its own process sees
one. So on a host with a visible GPU, a server that loads Python-backend models starts GPU-blind:

- tritonserver: `CUDA_VISIBLE_DEVICES=""`;
- the Python backend's stub processes: the GPUs handed back (`DEPLOYLAB_STUB_CUDA_VISIBLE_DEVICES`,
  which the stub wrapper `triton.prepare_python_backend` installs turns into their
  `CUDA_VISIBLE_DEVICES`), when a model asks for a GPU;
- the configs of the models that ask for a GPU: served from a view of the repository under the state
  directory where their KIND_GPU instances are KIND_CPU instances whose engine is told to use CUDA
  (`execution_provider: cuda` for ONNX Runtime, `torch_device: cuda` for torch). A blind server
  refuses KIND_GPU instances, and a KIND_CPU instance does not choose CUDA by itself.

`deploylab_ort` runs inside tritonserver, so its GPU instances need a server that sees the GPU: they
cannot share a server with Python-backend models on a GPU host, and the plan refuses that mix.
Every refusal says which model asked for what and how to get a servable repository.

Configs are parsed only where the answer can depend on them: on a host without a visible GPU, only
those whose text mentions a GPU, so serving a CPU repository on a CPU host reads no protobuf schema.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deploylab.services.common.errors import TritonError

from .devices import GpuFacts

if TYPE_CHECKING:
    from tritonclient.grpc import model_config_pb2 as mc

CONFIG_FILENAME = "config.pbtxt"
#: Set in a GPU-blind server's environment; the stub wrapper makes it the stubs' CUDA_VISIBLE_DEVICES.
STUB_GPUS_ENV = "DEPLOYLAB_STUB_CUDA_VISIBLE_DEVICES"
#: The value of `STUB_GPUS_ENV` that means "every GPU" (CUDA_VISIBLE_DEVICES was not set).
ALL_GPUS = "all"
#: Engines of deploylab's Python-backend model.py, and the parameter that puts each on CUDA.
_ENGINE_ON_CUDA = {"onnxruntime": ("execution_provider", "cuda"), "torch": ("torch_device", "cuda")}
#: Text that every config asking for a GPU contains (case-insensitive): the cheap pre-scan.
_GPU_HINTS = ("kind_gpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class GpuAsk:
    """A model that asks for a GPU: its name, backend, Python-backend engine, and what in its config asks."""

    model: str
    backend: str
    engine: str
    why: str


@dataclass(frozen=True)
class GpuPlan:
    """How to start the server: GPU-blind or not, the configs to rewrite, the environment to add."""

    blind: bool = False
    #: Model name → the config.pbtxt text a blind server serves instead of the repository's.
    rewritten: dict[str, str] = field(default_factory=dict)
    #: Added to the server's environment (the stubs inherit it).
    env: dict[str, str] = field(default_factory=dict)
    #: What the plan does, in one line (logged at start).
    summary: str = ""

    @property
    def changes_nothing(self) -> bool:
        return not (self.blind or self.rewritten or self.env)


def model_configs(repository: Path, models: list[str] | None) -> dict[str, Path]:
    """config.pbtxt of each chosen model that has one (every model in the repository when None)."""
    found: dict[str, Path] = {}
    for name in models if models is not None else ["*"]:
        for config in sorted(repository.glob(f"{name}/{CONFIG_FILENAME}")):
            found[config.parent.name] = config
    return found


def mentions_gpu(text: str) -> bool:
    """Whether config text could ask for a GPU (cheap; a parse says for sure)."""
    lowered = text.lower()
    return any(hint in lowered for hint in _GPU_HINTS)


def _parameters(config: mc.ModelConfig) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


def gpu_ask(name: str, config: mc.ModelConfig) -> GpuAsk | None:
    """What in a model's config asks for a GPU, or None when nothing does."""
    from tritonclient.grpc import model_config_pb2 as mc

    parameters = _parameters(config)
    engine = parameters.get("engine", "onnxruntime") if config.backend == "python" else ""
    reasons = []
    if any(group.kind == mc.ModelInstanceGroup.KIND_GPU for group in config.instance_group):
        reasons.append("KIND_GPU instances")
    provider = parameters.get("execution_provider", "")
    if provider in {"cuda", "tensorrt"}:
        reasons.append(f"execution_provider {provider}")
    if engine == "torch" and parameters.get("torch_device") == "cuda":
        reasons.append("torch_device cuda")
    if config.optimization.execution_accelerators.gpu_execution_accelerator:
        reasons.append("a GPU execution accelerator")
    if not reasons:
        return None
    return GpuAsk(name, config.backend, engine, " and ".join(reasons))


def blind_config(config: mc.ModelConfig) -> mc.ModelConfig:
    """The config a GPU-blind server serves for a Python-backend model that asks for a GPU.

    KIND_GPU instance groups become KIND_CPU groups of the same count (a blind server has no GPU to
    place them on, and a `gpus` list on a CPU group is refused), and the engine is told to use CUDA
    itself, unless the config already says how (a TensorRT provider, say).
    """
    from tritonclient.grpc import model_config_pb2 as mc

    served = mc.ModelConfig()
    served.CopyFrom(config)
    for group in served.instance_group:
        if group.kind == mc.ModelInstanceGroup.KIND_GPU:
            group.kind = mc.ModelInstanceGroup.KIND_CPU
            del group.gpus[:]
    engine = _parameters(served).get("engine", "onnxruntime")
    key, value = _ENGINE_ON_CUDA.get(engine, _ENGINE_ON_CUDA["onnxruntime"])
    current = served.parameters[key].string_value if key in served.parameters else ""
    if current in {"", "auto", "cpu"}:
        served.parameters[key].string_value = value
    return served


def _engine_refusal(ask: GpuAsk, facts: GpuFacts) -> str | None:
    """Why the engine of a model cannot use CUDA here, or None when it can (or this cannot tell)."""
    version = f" {facts.onnxruntime_version}" if facts.onnxruntime_version else ""
    if ask.backend == "deploylab_ort":
        if facts.onnxruntime_cuda:
            return None
        return (
            f"model {ask.model} asks for a GPU ({ask.why}), but deploylab_ort links the ONNX Runtime of "
            f"the onnxruntime{version} wheel here, which has no CUDA execution provider: install "
            f"onnxruntime-gpu{version.replace(' ', '==')}, or export it for the CPU "
            f"(`deploylab export {ask.model} --kind cpu --force`)"
        )
    if ask.backend != "python":
        return None  # Triton's own backends say for themselves
    if ask.engine == "torch" and not facts.torch_cuda:
        return (
            f"model {ask.model} asks for a GPU ({ask.why}) with the torch engine, but torch here is not "
            "a CUDA build (it would run on the CPU): install a CUDA build of torch, or export the model "
            "for the CPU"
        )
    if ask.engine != "torch" and not facts.onnxruntime_cuda:
        return (
            f"model {ask.model} asks for a GPU ({ask.why}), but onnxruntime{version} here has no CUDA "
            f"execution provider (it would run on the CPU): install onnxruntime-gpu"
            f"{version.replace(' ', '==')}, or export it for the CPU "
            f"(`deploylab export {ask.model} --kind cpu --force`)"
        )
    return None


def _no_gpu_refusal(ask: GpuAsk, facts: GpuFacts) -> str:
    where = (
        f"CUDA_VISIBLE_DEVICES={facts.hidden_by!r} hides {facts.summary}"
        if facts.hidden_by is not None
        else "this host has no NVIDIA GPU"
    )
    return (
        f"model {ask.model} asks for a GPU ({ask.why}) but {where}: export it for the CPU "
        f"(`deploylab export {ask.model} --kind cpu --force`, or `--kind auto`) or serve it on a GPU host"
    )


def plan_gpu_serving(
    configs: dict[str, Path],
    facts: GpuFacts,
    *,
    python_blind_on_gpu: bool,
    environ: dict[str, str] | None = None,
) -> GpuPlan:
    """The plan for serving `configs` (model name → config.pbtxt) here; TritonError when it cannot be.

    `python_blind_on_gpu`: whether this server's Python backend needs a GPU-blind server on a GPU
    host (the nvidia-pytriton wheel's does).
    """
    env = os.environ if environ is None else environ
    parsed = _parse(configs, everything=facts.visible)
    asks = [ask for name, config in parsed.items() if (ask := gpu_ask(name, config)) is not None]
    if asks and not facts.visible:
        raise TritonError(_no_gpu_refusal(asks[0], facts))
    for ask in asks:
        refusal = _engine_refusal(ask, facts)
        if refusal:
            raise TritonError(refusal)
    python_models = sorted(name for name, config in parsed.items() if config.backend == "python")
    if not (facts.visible and python_blind_on_gpu and python_models):
        return GpuPlan(summary=_summary(asks, blind=False))
    in_process = [ask for ask in asks if ask.backend != "python"]
    if in_process:
        ask = in_process[0]
        raise TritonError(
            f"model {ask.model} (backend {ask.backend}) asks for a GPU ({ask.why}), which it gets only from "
            f"a tritonserver that sees the GPU, while the Python-backend models "
            f"({', '.join(python_models[:3])}{', …' if len(python_models) > 3 else ''}) need a GPU-blind one "
            f"(this Triton's Python backend answers empty outputs when it sees a GPU): serve them from "
            f"two servers, or export {ask.model} with --backend python"
        )
    from google.protobuf import text_format

    python_asks = [ask for ask in asks if ask.backend == "python"]
    rewritten = {
        ask.model: text_format.MessageToString(blind_config(parsed[ask.model])) for ask in python_asks
    }
    added = {"CUDA_VISIBLE_DEVICES": ""}
    if python_asks:
        visible = env.get("CUDA_VISIBLE_DEVICES")
        added[STUB_GPUS_ENV] = ALL_GPUS if visible is None else visible
    return GpuPlan(blind=True, rewritten=rewritten, env=added, summary=_summary(asks, blind=True))


def _parse(configs: dict[str, Path], *, everything: bool) -> dict[str, mc.ModelConfig]:
    """The configs that matter, parsed: all of them, or (not `everything`) those mentioning a GPU."""
    texts = {name: path.read_text(errors="replace") for name, path in configs.items()}
    texts = {name: text for name, text in texts.items() if everything or mentions_gpu(text)}
    if not texts:
        return {}  # and no protobuf schema imported
    from deploylab.services.modelzoo.repository import parse_triton_config
    from google.protobuf.text_format import ParseError

    parsed = {}
    for name, text in texts.items():
        try:
            parsed[name] = parse_triton_config(text)
        except ParseError:
            continue  # Triton names what is wrong with it when it loads the model
    return parsed


def _summary(asks: Iterable[GpuAsk], *, blind: bool) -> str:
    names = [ask.model for ask in asks]
    if not blind:
        return f"GPU models: {', '.join(names)}" if names else ""
    if not names:
        return "GPU-blind tritonserver (its Python backend answers empty outputs when it sees a GPU)"
    return (
        f"GPU-blind tritonserver; {', '.join(names)} on the GPU through KIND_CPU instances whose "
        f"stub processes see it"
    )


def write_repository_view(repository: Path, view: Path, rewritten: dict[str, str]) -> Path:
    """`view`: the repository's models as links, with the rewritten models' config.pbtxt replaced.

    A rewritten model is a directory of links to its files (its version directories, manifest) beside
    its own config.pbtxt; every other entry is one link. Made afresh at each start, so it shows the
    repository as it is; removing it removes only links and the rewritten configs.
    """
    if view.is_symlink() or view.is_file():
        view.unlink()
    elif view.exists():
        shutil.rmtree(view)
    view.mkdir(parents=True)
    for entry in sorted(repository.iterdir()):
        target = view / entry.name
        if entry.name not in rewritten or not entry.is_dir():
            target.symlink_to(entry.resolve())
            continue
        target.mkdir()
        for child in sorted(entry.iterdir()):
            if child.name != CONFIG_FILENAME:
                (target / child.name).symlink_to(child.resolve())
        (target / CONFIG_FILENAME).write_text(rewritten[entry.name])
    return view
