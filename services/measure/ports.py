"""Free loopback ports for the servers a benchmark, sweep, tune or chaos run starts.

Ports come from the kernel's ephemeral range, so they never collide with the well-known 8000-8002 a
developer's own Triton may hold.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """One port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago, sorted."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)
