"""`deploylab serve`: embedded Triton + the gateway (or the gateway alone against --triton-url)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the gateway's commands (filled in with the gateway)."""
