"""Free loopback ports: the measurement core's (`deploylab.services.measure.ports`), under the name
the serving tools already import."""

from __future__ import annotations

from deploylab.services.measure.ports import free_port, free_ports

__all__ = ["free_port", "free_ports"]
