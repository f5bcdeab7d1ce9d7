"""`deploylab bench` and `deploylab tune` (owned by the performance work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the benchmark commands."""
