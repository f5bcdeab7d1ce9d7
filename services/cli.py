"""The `deploylab` command: one entry point, each subcommand owned by the package it drives."""

from __future__ import annotations

import typer

from services.modelzoo.cli import export_command, models_command, triton_command
from services.modelzoo.smoke import smoke_command

app = typer.Typer(
    name="deploylab",
    help="Measure which CNN, exported and served how, meets a latency/throughput target.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("models")(models_command)
app.command("export")(export_command)
app.command("triton")(triton_command)
app.command("smoke")(smoke_command)
# Until the load-test sweep lands, `compare` is the end-to-end smoke run.
app.command("compare")(smoke_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
