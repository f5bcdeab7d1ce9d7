"""System shared memory between the gateway and a Triton on the same host.

A 224² image is 602 KB of float32 (150 KB as the pixels of a uint8-input model). Over HTTP it is
written into a socket by the gateway and parsed out of it by Triton; through a shared-memory region
it is one memcpy, and the HTTP request carries only a few hundred bytes of JSON naming the region
(Triton's system shared memory extension). Measured at
batch 1 on 2 cores this is the largest single part of the gateway's added latency (docs/benchmarks.md).

Each in-flight request checks out one slot: an input and an output region, created under /dev/shm
(mode 0600), registered with Triton once, grown when a larger batch needs it, and returned after the
answer is read. When no slot is free (more in flight than `max_slots`) the caller falls back to plain
HTTP — shared memory is an optimisation, never a reason to refuse a request. Only for a Triton on a
loopback address: a remote Triton cannot see this host's /dev/shm.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import uuid
from dataclasses import dataclass, field

from deploylab.services.common.shm_regions import SHM_DIR, remove_orphans

#: Regions grow in steps of this many bytes, so a batch of 1 and one of 2 don't both reallocate.
_GRANULE = 1 << 20

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
PREFIX = "deploylab_gw"

log = logging.getLogger("deploylab.gateway.shm")


def is_local(triton_url: str) -> bool:
    """True when `host:port` names this host, so both processes see the same /dev/shm."""
    host = triton_url.rsplit(":", 1)[0]
    return host in LOOPBACK_HOSTS and SHM_DIR.is_dir()


@dataclass
class Region:
    """One POSIX shared-memory object (`/dev/shm/<name>`), mapped here."""

    name: str
    size: int
    _map: mmap.mmap = field(repr=False)

    @classmethod
    def create(cls, name: str, size: int) -> Region:
        path = SHM_DIR / name
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            # Reserve the pages now: a sparse file on a full /dev/shm would kill the process with
            # SIGBUS at the first write; this raises ENOSPC here instead (the caller falls back to HTTP).
            os.posix_fallocate(fd, 0, size)
            mapping = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)
        return cls(name, size, mapping)

    @property
    def key(self) -> str:
        """The key Triton opens (`shm_open` name)."""
        return f"/{self.name}"

    def write(self, data: memoryview | bytes) -> None:
        self._map[: len(data)] = data

    def read(self, nbytes: int) -> bytes:
        return self._map[:nbytes]

    def view(self) -> memoryview:
        return memoryview(self._map)

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()
        (SHM_DIR / self.name).unlink(missing_ok=True)


@dataclass
class Slot:
    """An input and an output region for one request at a time."""

    input: Region
    output: Region
    registered: bool = False


class SharedMemoryPool:
    """Slots for the requests in flight, created on demand up to `max_slots`."""

    def __init__(self, max_slots: int, prefix: str | None = None) -> None:
        self.max_slots = max_slots
        self.prefix = prefix or f"{PREFIX}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        remove_orphaned_regions()
        self._free: list[Slot] = []
        self._all: list[Slot] = []
        self._counter = 0
        #: Names of regions replaced or abandoned, still registered with Triton: unregister them.
        self.retired: list[str] = []

    def _region(self, kind: str, size: int) -> Region:
        self._counter += 1
        return Region.create(f"{self.prefix}_{kind}{self._counter}", _round_up(size))

    def checkout(self, input_bytes: int, output_bytes: int) -> Slot | None:
        """A slot at least this large (maybe still to be registered), or None when all are busy or
        /dev/shm has no room (the request then goes over HTTP)."""
        try:
            return self._checkout(input_bytes, output_bytes)
        except OSError as exc:
            log.warning("no shared memory for a request (%s): sending it over HTTP", exc.strerror or exc)
            return None

    def _checkout(self, input_bytes: int, output_bytes: int) -> Slot | None:
        slot = next((s for s in self._free if s.input.size >= input_bytes and s.output.size >= output_bytes),
                    None)  # fmt: skip
        if slot is None and self._free:
            slot = self._free[-1]  # grow the most recently used one
        if slot is not None:
            self._free.remove(slot)
            try:
                self._grow(slot, input_bytes, output_bytes)
            except OSError:
                self._free.append(slot)  # unchanged or grown in part, consistent either way
                raise
            return slot
        if len(self._all) >= self.max_slots:
            return None
        region_in = self._region("in", input_bytes)
        try:
            region_out = self._region("out", output_bytes)
        except OSError:
            region_in.close()
            raise
        slot = Slot(region_in, region_out)
        self._all.append(slot)
        return slot

    def _grow(self, slot: Slot, input_bytes: int, output_bytes: int) -> None:
        """Replace a region that is too small (the slot must then be registered again).

        The new region exists before the old one is retired, so a failure leaves the slot usable.
        """
        was_registered = slot.registered
        if slot.input.size < input_bytes:
            region = self._region("in", input_bytes)
            self._retire_region(slot.input, was_registered)
            slot.input, slot.registered = region, False
        if slot.output.size < output_bytes:
            region = self._region("out", output_bytes)
            self._retire_region(slot.output, was_registered)
            slot.output, slot.registered = region, False

    def _retire_region(self, region: Region, registered: bool) -> None:
        region.close()  # unlinked; Triton's own mapping stays valid until it unregisters
        if registered:
            self.retired.append(region.name)

    def checkin(self, slot: Slot) -> None:
        self._free.append(slot)

    def discard(self, slot: Slot) -> None:
        """A slot whose request ended without an answer (timeout, lost connection): Triton may still
        read its input or write its output later, so it is never handed out again."""
        self._all.remove(slot)
        self._retire_region(slot.input, slot.registered)
        self._retire_region(slot.output, slot.registered)

    def forget_registrations(self) -> None:
        """Triton restarted (or lost our regions): every slot must be registered again."""
        for slot in self._all:
            slot.registered = False

    def slots(self) -> list[Slot]:
        return list(self._all)

    def close(self) -> None:
        for slot in self._all:
            slot.input.close()
            slot.output.close()
        self._all.clear()
        self._free.clear()


def remove_orphaned_regions() -> list[str]:
    """Unlink regions left by gateway processes that died without cleaning up (kill -9, OOM)."""
    return remove_orphans(PREFIX)


def _round_up(size: int) -> int:
    return max(_GRANULE, -(-size // _GRANULE) * _GRANULE)
