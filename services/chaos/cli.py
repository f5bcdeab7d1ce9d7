"""`deploylab chaos` (owned by the reliability work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the chaos command."""
