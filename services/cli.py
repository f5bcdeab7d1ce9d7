"""The `deploylab` command: one entry point, each subcommand owned by the package it drives.

Every package with commands exposes `register(app)` from a module that imports only typer, rich and
plain data; heavy imports (torch, ONNX Runtime, locust, matplotlib) happen inside the commands. Every
invocation imports all of these modules, so `deploylab --help`, `deploylab models` and the
`deploylab serve` supervisor (resident for as long as the stack runs) stay free of torch and
ONNX Runtime; tests/unit/test_cli.py holds that.
"""

from __future__ import annotations

import importlib

import typer
from deploylab.services.modelzoo.cli import export_command, models_command, smoke_command, triton_command

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

#: Packages that add commands: gateway (serve), load tests (loadtest, report, compare),
#: benchmarks (bench, tune), chaos (fault and overload scenarios), accuracy (on the user's images).
COMMAND_MODULES = (
    "deploylab.services.gateway.cli",
    "deploylab.loadtests.cli",
    "deploylab.benchmarks.cli",
    "deploylab.services.chaos.cli",
    "deploylab.services.accuracy.cli",
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
