"""`deploylab serve`: embedded Triton + the gateway (or the gateway alone against --triton-url).

The process that runs this command only supervises: the gateway (FastAPI, tritonclient) and Triton
run as child processes. Settings, manifests and the stack are imported when the command runs, so
registering it costs `deploylab --help` nothing; nothing on its path imports torch or ONNX Runtime.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from deploylab.services.common.cli_errors import cli_errors
from deploylab.services.common.signals import stop_on_sigterm
from deploylab.services.measure.names import served_models
from deploylab.services.modelzoo.catalog import CATALOG
from rich.console import Console

console = Console(stderr=True)


def served_model_names(requested: list[str], repository: Path) -> list[str]:
    """Triton model names to load: catalog names expand to their exported variants."""
    from deploylab.services.modelzoo.manifest import read_repository

    exported = read_repository(repository)
    if not exported:
        raise ValueError(f"no exported models in {repository}: run `deploylab export` first")
    if not requested:
        return sorted(exported)
    names: list[str] = []
    for name in requested:
        if name in exported:
            names.append(name)
        elif name in CATALOG:
            variants = [served.triton_model for served in served_models(name)]
            found = [v for v in variants if v in exported]
            if not found:
                raise ValueError(f"{name} is not exported: run `deploylab export {name}`")
            names += found
        else:
            raise ValueError(
                f"unknown or not exported model {name!r}; exported: {', '.join(sorted(exported))}"
            )
    return list(dict.fromkeys(names))


@cli_errors
def serve_command(
    models: Annotated[
        list[str] | None, typer.Argument(help="models to serve (default: every exported model)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="gateway port (default 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="gateway bind address")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="gateway worker processes")] = None,
    triton_url: Annotated[
        str | None, typer.Option(help="use a running Triton (host:port) instead of starting one")
    ] = None,
    routing: Annotated[Path | None, typer.Option(help="routing table YAML")] = None,
    repository: Annotated[Path | None, typer.Option("--repository", "-r")] = None,
) -> None:
    """Serve models: start embedded Triton and the gateway, print the URLs, drain on Ctrl-C/SIGTERM."""
    from deploylab.services.runtime.settings import RuntimeSettings

    from .settings import GatewaySettings
    from .stack import GatewayStartError, ServingStack

    runtime = RuntimeSettings()
    if repository is not None:
        runtime = runtime.model_copy(update={"model_repository": repository})
    updates: dict[str, object] = {"model_repository": runtime.model_repository}
    for key, value in (("port", port), ("host", host), ("workers", workers), ("routing_file", routing)):
        if value is not None:
            updates[key] = value
    if triton_url is not None:
        updates["triton_url"] = triton_url
    gateway = GatewaySettings.model_validate({**GatewaySettings().model_dump(), **updates})
    names = None if triton_url else served_model_names(models or [], runtime.model_repository)
    stack = ServingStack(runtime, gateway, names, start_triton=triton_url is None)
    stop_on_sigterm()
    what = f"{len(names)} models" if names else f"Triton at {gateway.triton_url}"
    console.print(f"starting {'Triton + ' if names else ''}gateway for {what} (logs: {stack.log_dir}) …")
    try:
        stack.start()
        url = stack.gateway_url
        console.print(f"[green]ready[/green]  gateway {url}   docs {url}/docs   metrics {url}/metrics")
        if stack.triton is not None:
            console.print(
                f"       Triton HTTP {runtime.triton_http_url}  gRPC {runtime.triton_grpc_url}  "
                f"metrics {runtime.triton_metrics_url}"
            )
            console.print(f"       models: {', '.join(names or [])}")
            if stack.triton.plan.summary:  # how this host's GPU serves them (runtime/gpu_plan.py)
                console.print(f"       {stack.triton.plan.summary}")
        console.print("Ctrl-C or SIGTERM drains in-flight requests and stops everything.")
        while stack.gateway.alive():
            time.sleep(0.5)
        raise GatewayStartError(f"gateway exited unexpectedly; {stack.gateway.log_tail()}")
    except KeyboardInterrupt:
        console.print("draining and stopping …")
    except GatewayStartError as exc:
        raise ValueError(str(exc)) from None
    finally:
        stack.stop()
        console.print("stopped")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
