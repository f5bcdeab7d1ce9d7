#!/usr/bin/env bash
# The GPU session: ResNet-50 on a lent GPU host, in-process vs served vs through the gateway, one JSON.
#
#   scripts/gpu-session.sh prepare   here, with the project's venv and the package index: writes .gpu/
#                                    (the nvidia-pytriton wheel's tritonserver, packed in the wheel's
#                                    layout, and the wheels of what the GPU host lacks), under 60 MiB
#   scripts/gpu-session.sh run       on the GPU host, from the repository root with .gpu/ beside it:
#                                    installs offline into /tmp, runs the GPU check through the product's
#                                    launcher and gateway, writes $OUT/gpu_check.json and $OUT/gpu_session.log
#
# The GPU host is assumed to have python3 (3.12) with torch (a CUDA build), torchvision, timm, numpy,
# onnxruntime, protobuf, grpcio, aiohttp, psutil and PyYAML, no network, and no deploylab install. Every
# step is bounded: the run is cut off after RUN_BUDGET_S seconds (default 480), keeping the JSON of the
# steps it finished (the check saves it after each). Nothing here needs root or writes outside the
# repository, $OUT and /tmp.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
bundle=${GPU_BUNDLE:-.gpu}
site=${GPU_SITE:-/tmp/deploylab-site}
work=${GPU_WORK:-/tmp/deploylab-gpu}
budget=${RUN_BUDGET_S:-480}
# What the gateway, the runtime's config parser and the load clients import that the GPU host's image
# lacks (nlohmann-json: the headers deploylab_ort is built with for the native step); versions from
# constraints.txt (the project's own pins).
wheels=(
  fastapi starlette pydantic pydantic_core pydantic-settings python-dotenv annotated-types
  typing-inspection opentelemetry-api importlib_metadata uvicorn httptools python-multipart orjson
  tritonclient python-rapidjson geventhttpclient gevent greenlet zope.event zope.interface brotli
  nlohmann-json
)

log() { printf '[gpu-session %(%H:%M:%S)T] %s\n' -1 "$*"; }

pinned() {  # the constraints.txt pin of a distribution (names compared as pip does: - _ . alike)
  local want
  want=$(printf '%s' "$1" | tr '_.' '--' | tr '[:upper:]' '[:lower:]')
  awk -F'==' -v want="$want" '{n=tolower($1); gsub(/[_.]/, "-", n); if (n == want) {print $1 "==" $2; exit}}' \
    "$here/constraints.txt"
}

prepare() {
  local python=${PYTHON:-.venv/bin/python}
  log "packing the wheel's tritonserver into $bundle/"
  timeout 600 "$python" -m deploylab.benchmarks.gpu_check prepare --out "$bundle" --python-versions 3.11,3.12
  mkdir -p "$bundle/wheels"
  local specs=() name spec
  for name in "${wheels[@]}"; do
    spec=$(pinned "$name")
    [[ -n $spec ]] || { log "error: $name is not pinned in constraints.txt"; exit 1; }
    specs+=("$spec")
  done
  log "downloading ${#specs[@]} wheels for CPython 3.12 into $bundle/wheels/"
  timeout 600 "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$bundle/wheels" "${specs[@]}"
  local size
  size=$(du -sm "$bundle" | cut -f1)
  log "ready: $bundle/ is ${size} MiB (with the working tree it must stay under 64 MiB to travel)"
  ((size < 60)) || { log "error: $bundle/ is too large to travel"; exit 1; }
}

run() {
  : "${OUT:?set OUT to the directory the results go to}"
  mkdir -p "$OUT"
  [[ -f $bundle/triton.tar.xz ]] || { log "error: no $bundle/triton.tar.xz: run '$0 prepare' first"; exit 1; }
  local python=${PYTHON:-python3}
  log "host: $(nvidia-smi -L 2>/dev/null | head -1 || echo 'nvidia-smi: none'); $($python --version 2>&1)"
  log "installing $(find "$bundle/wheels" -name '*.whl' | wc -l) wheels into $site (offline)"
  rm -rf "$site" && mkdir -p "$site/deploylab"
  timeout 180 "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" "$bundle"/wheels/*.whl
  # deploylab without installing it: its namespace over the repository's source folders.
  for folder in services loadtests benchmarks; do ln -s "$here/$folder" "$site/deploylab/$folder"; done
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  log "preflight: what the runtime sees (the check runs whatever it says)"
  timeout 120 "$python" - <<'PY' || log "preflight failed: the steps below will say what is missing"
import deploylab.benchmarks.gpu_check  # noqa: F401
from deploylab.services.runtime import devices
facts = devices.host_gpu()
print(devices.kind_message(*devices.resolve_instance_kind("auto", facts, engine="torch")))
print(f"GPUs: {facts.gpus}, torch CUDA: {facts.torch_cuda}, ONNX Runtime CUDA: {facts.onnxruntime_cuda}")
import deploylab.services.gateway.app  # noqa: F401 - the gateway step's imports
PY
  log "GPU check (at most ${budget} s): in-process, RepVGG, served, gateway, native"
  local status=0
  timeout --kill-after=30 "$budget" "$python" -m deploylab.benchmarks.gpu_check run \
    --bundle "$bundle" --out "$OUT" --work "$work" 2>&1 | tee "$OUT/gpu_session.log" || status=$?
  if ((status == 124 || status == 137)); then
    log "cut off after ${budget} s: $OUT/gpu_check.json holds the steps that finished"
  fi
  log "done (exit $status): $OUT/gpu_check.json"
  return "$status"
}

case ${1:-} in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
