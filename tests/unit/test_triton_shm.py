"""The gateway's shared-memory slots: sizing, reuse, growth, retirement, cleanup of dead owners."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from deploylab.services.gateway.triton_shm import SHM_DIR, SharedMemoryPool, is_local, remove_orphaned_regions

MB = 1 << 20


@pytest.fixture
def pool() -> SharedMemoryPool:
    created = SharedMemoryPool(max_slots=2)
    yield created
    created.close()


def files(pool: SharedMemoryPool) -> set[str]:
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(pool.prefix)}


def test_slots_are_created_on_demand_reused_and_bounded(pool: SharedMemoryPool) -> None:
    first = pool.checkout(602_112, 4000)
    assert first is not None and first.input.size == MB and first.output.size == MB
    assert (SHM_DIR / first.input.name).stat().st_mode & 0o777 == 0o600
    second = pool.checkout(602_112, 4000)
    assert second is not None and second is not first
    assert pool.checkout(602_112, 4000) is None  # max_slots busy: the caller uses HTTP
    pool.checkin(first)
    assert pool.checkout(10, 10) is first


def test_a_larger_request_grows_a_slot_and_retires_registered_regions(pool: SharedMemoryPool) -> None:
    slot = pool.checkout(MB, 4000)
    assert slot is not None
    slot.registered = True
    old = slot.input.name
    pool.checkin(slot)
    grown = pool.checkout(8 * 602_112, 32_000)
    assert grown is slot and slot.input.size >= 8 * 602_112 and not slot.registered
    assert pool.retired == [old] and old not in files(pool)


def test_discarded_slots_are_never_handed_out_again(pool: SharedMemoryPool) -> None:
    slot = pool.checkout(100, 100)
    assert slot is not None
    slot.registered = True
    pool.discard(slot)
    assert slot not in pool.slots() and len(pool.retired) == 2
    assert files(pool) == set()


def test_data_written_is_what_is_read(pool: SharedMemoryPool) -> None:
    slot = pool.checkout(16, 16)
    assert slot is not None
    slot.output.write(b"0123456789abcdef")
    assert slot.output.read(16) == b"0123456789abcdef"


def test_close_unlinks_everything(pool: SharedMemoryPool) -> None:
    pool.checkout(100, 100)
    assert files(pool)
    pool.close()
    assert not files(pool)


def test_regions_of_dead_gateways_are_removed_and_live_ones_kept() -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = SHM_DIR / f"deploylab_gw_{dead.stdout.strip()}_abc_in1"
    live = SHM_DIR / f"deploylab_gw_{os.getpid()}_abc_in1"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    try:
        removed = remove_orphaned_regions()
        assert stale.name in removed and not stale.exists()
        assert live.exists()
    finally:
        stale.unlink(missing_ok=True)
        live.unlink(missing_ok=True)


def test_only_a_loopback_triton_gets_shared_memory() -> None:
    assert is_local("127.0.0.1:8000") and is_local("localhost:8000")
    assert not is_local("triton:8000") and not is_local("10.0.0.5:8000")


def test_growing_both_regions_of_a_registered_slot_retires_both(pool: SharedMemoryPool) -> None:
    slot = pool.checkout(100, 100)
    assert slot is not None
    slot.registered = True
    old = {slot.input.name, slot.output.name}
    pool.checkin(slot)
    assert pool.checkout(2 * MB, 2 * MB) is slot and not slot.registered
    assert set(pool.retired) == old, "Triton would keep a registration of an unlinked region"


def test_no_room_in_dev_shm_falls_back_to_http_and_leaves_nothing_behind(pool: SharedMemoryPool) -> None:
    slot = pool.checkout(100, 100)
    assert slot is not None
    pool.checkin(slot)
    too_big = 1 << 50  # more than any /dev/shm: the space is reserved up front, so ENOSPC comes here
    assert pool.checkout(100, too_big) is None  # growing fails: the slot stays as it was
    assert pool.checkout(too_big, 100) is None
    assert pool.checkout(100, 100) is slot and slot.input.size == MB
    other = pool.checkout(too_big, 100)  # a new slot that cannot be made
    assert other is None and len(pool.slots()) == 1
    assert files(pool) == {slot.input.name, slot.output.name}
