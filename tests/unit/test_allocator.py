"""Allocator settings for large bodies: applied to children and to this process, operator wins."""

from __future__ import annotations

import platform
import resource

import pytest
from deploylab.services.common import allocator


def test_children_get_the_settings_unless_the_operator_chose_their_own() -> None:
    env = allocator.child_environment({"PATH": "/bin"})
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(allocator.MMAP_THRESHOLD_BYTES)
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(allocator.TRIM_THRESHOLD_BYTES)
    assert env["PATH"] == "/bin"
    mine = {"PATH": "/bin", "MALLOC_TOP_PAD_": "0"}
    assert allocator.child_environment(mine) == mine


def test_operator_settings_leave_this_process_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert allocator.tune_this_process() is False


def test_after_tuning_reused_large_blocks_stop_faulting(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test suite runs where deploylab runs: Linux with glibc (tritonserver from the nvidia-pytriton
    # wheel is a manylinux build). Anywhere else this fails rather than skips.
    libc = platform.libc_ver()
    assert libc[0] == "glibc", f"deploylab supports Linux with glibc only, this is {libc}"
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"):
        monkeypatch.delenv(name, raising=False)
    assert allocator.tune_this_process() is True
    chunk = b"x" * 300_000
    for _ in range(20):  # warm the heap
        bytes(bytearray(chunk))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        bytes(bytearray(chunk))  # a 300 KB block allocated and freed, like a body chunk
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 200, f"{faults} page faults for 200 reused 300 KB blocks"
