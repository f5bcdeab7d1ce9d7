"""glibc malloc settings for processes that receive large request bodies (the gateway, Triton).

A 224² float32 tensor is 602 KB, and a body arrives as a few 64–256 KB chunks that live for one
request. With glibc's defaults such blocks are `mmap`ed and unmapped, or the top of the heap is
trimmed after every free, so each request touches fresh pages: ≈150 page faults and ≈0.35 ms of CPU
per request in the gateway at saturation on 2 cores (docs/benchmarks.md, "Gateway: measured levers").
Raising the mmap threshold and the trim threshold keeps those blocks in the heap, reused from request
to request; the price is that up to `TRIM_THRESHOLD_BYTES` of freed memory stays with the process.

An operator's own `MALLOC_*_` environment variables win: nothing is changed when any is set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("deploylab.allocator")

#: Blocks below this come from the heap, not a fresh mapping (glibc's maximum on 64-bit: 32 MiB).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Free memory kept at the top of the heap before it is returned to the system.
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_ENV_NAMES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def operator_configured(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return any(name in environ for name in _ENV_NAMES)


def child_environment(environ: dict[str, str]) -> dict[str, str]:
    """`environ` plus the settings, for a child process (glibc reads them when it starts)."""
    if operator_configured(environ):
        return dict(environ)
    return {
        **environ,
        "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES),
        "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES),
    }


def tune_this_process() -> bool:
    """Apply the settings to the running process with mallopt(3); False where that is not possible
    (not glibc, or the operator chose their own)."""
    if operator_configured():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl, macOS: nothing to tune this way
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not ok:
        log.warning("mallopt refused the allocator settings; large bodies will cost page faults")
    return ok
