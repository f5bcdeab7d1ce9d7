#!/usr/bin/env bash
# Install the Debian packages the tests need, only when missing: prometheus (+ promtool), g++ for the
# native deploylab_ort Triton backend (services/runtime/native_backend.py builds it on first use), and
# chromium + chromium-driver (the HTML report is opened in a real headless browser).
# Extra commands named as arguments are installed from the package of the same name: wrk, the independent
# C load generator the bench runs beside its own client (`make test` checks that machinery, `make bench`
# measures with it).
set -euo pipefail
missing=()
for command in "$@"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("$command")
done
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
packages="${packages% }"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${packages}. Install them (Debian: sudo apt-get install ${packages}) and rerun." >&2
  exit 1
fi
echo "installing Debian packages: ${packages}…"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends ${packages} >/dev/null
# The prometheus package starts a system service where an init system runs; the tests start their own.
(command -v systemctl >/dev/null 2>&1 && systemctl stop prometheus 2>/dev/null) || true
pkill -x prometheus 2>/dev/null || true
command -v promtool >/dev/null
