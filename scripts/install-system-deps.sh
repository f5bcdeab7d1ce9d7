#!/usr/bin/env bash
# Install the Debian packages the tests need, only when missing: prometheus (+ promtool).
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: prometheus/promtool. Install them (Debian: sudo apt-get install prometheus) and rerun." >&2
  exit 1
fi
echo "installing Debian package prometheus (prometheus + promtool) …"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a system service where an init system runs; the tests start their own.
(command -v systemctl >/dev/null 2>&1 && systemctl stop prometheus 2>/dev/null) || true
pkill -x prometheus 2>/dev/null || true
command -v promtool >/dev/null
