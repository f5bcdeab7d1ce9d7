"""Free loopback ports for real servers started by tests: the measurement core's."""

from __future__ import annotations

from deploylab.services.measure.ports import free_port, free_ports, runtime_on_free_ports

__all__ = ["free_port", "free_ports", "runtime_on_free_ports"]
