"""`deploylab loadtest`, `deploylab report`, `deploylab compare` (owned by the load-test work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the load-test commands. Until the sweep lands, `compare` is the end-to-end smoke run."""
    from services.modelzoo.smoke import smoke_command

    app.command("compare")(smoke_command)
