"""One tritonserver launcher: `TritonOptions` stands in for `RuntimeSettings`, and a GPU-blind start
needs nothing beyond the standard library (the GPU check's bare host has no settings library)."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import (
    TritonInstall,
    TritonOptions,
    TritonServer,
    prepare_python_backend,
)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _install(tmp_path: Path) -> TritonInstall:
    return TritonInstall(tmp_path / "bin" / "tritonserver", tmp_path / "backends", {"PATH": "/usr/bin"})


def test_triton_options_mirror_the_runtime_settings_field_for_field() -> None:
    mirrored = {f.name: f.default for f in dataclasses.fields(TritonOptions)}
    settings = {name: field.default for name, field in RuntimeSettings.model_fields.items()}
    assert set(mirrored) == set(settings)
    # The settings' repository has a default; the options name it at every use.
    assert {**mirrored, "model_repository": None} == {**settings, "model_repository": None}
    options = TritonOptions(model_repository=Path("repo"), triton_host="10.0.0.1")
    twin = RuntimeSettings(model_repository=Path("repo"), triton_host="10.0.0.1")
    urls = ("triton_http_url", "triton_grpc_url", "triton_metrics_url")
    assert [getattr(options, url) for url in urls] == [getattr(twin, url) for url in urls]


def test_a_server_from_options_gets_the_same_command_as_one_from_settings(tmp_path: Path) -> None:
    settings = RuntimeSettings(model_repository=tmp_path, triton_http_port=9100, triton_grpc_port=9101)
    options = TritonOptions(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(TritonOptions)})
    install = _install(tmp_path)
    from_settings = TritonServer(settings, models=["resnet50"]).command(install)
    assert TritonServer(options, models=["resnet50"]).command(install) == from_settings
    assert "--load-model=resnet50" in from_settings and "--http-port=9100" in from_settings


def test_a_gpu_blind_server_turns_gpu_metrics_off(tmp_path: Path) -> None:
    options = TritonOptions(model_repository=tmp_path)
    install = _install(tmp_path)
    assert "--allow-gpu-metrics=false" in TritonServer(options, gpu_visible=False).command(install)
    assert "--allow-gpu-metrics=true" in TritonServer(options, gpu_metrics=True).command(install)


def test_prepare_python_backend_gathers_the_backend_behind_an_executable_stub_wrapper(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    files = [source / "libtriton_python.so", source / "triton_python_backend_utils.py"]
    stub = source / "triton_python_backend_stub"
    for path in [*files, stub]:
        path.write_text(path.name)
    backend = prepare_python_backend(tmp_path / "backends", files, stub)
    names = sorted(p.name for p in backend.iterdir())
    assert names == sorted([*(f.name for f in files), stub.name, f"{stub.name}.bin"])
    assert (backend / f"{stub.name}.bin").read_text() == stub.name
    assert (backend / stub.name).read_text().startswith("#!/bin/sh")
    assert (backend / stub.name).stat().st_mode & 0o111
    assert (backend / f"{stub.name}.bin").stat().st_mode & 0o111


def test_starting_a_server_from_options_imports_no_settings_or_protobuf_library(tmp_path: Path) -> None:
    # A fake tritonserver that exits at once: start() must get as far as launching it and reading why
    # it stopped, with pydantic, protobuf and tritonclient unimportable.
    (tmp_path / "repo").mkdir()
    binary = tmp_path / "tritonserver"
    binary.write_text("#!/bin/sh\necho 'E fake tritonserver: no GPU here'\nexit 3\n")
    binary.chmod(0o755)
    http, grpc, metrics = _free_ports(3)
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("pydantic", "pydantic_settings", "google.protobuf", "tritonclient", "torch"):
            sys.modules[name] = None
        from pathlib import Path
        from deploylab.services.common.errors import TritonError
        from deploylab.services.runtime.triton import TritonInstall, TritonOptions, TritonServer

        tmp = Path({str(tmp_path)!r})
        options = TritonOptions(
            model_repository=tmp / "repo", state_dir=tmp / "state", triton_http_port={http},
            triton_grpc_port={grpc}, triton_metrics_port={metrics}, triton_startup_timeout_s=20,
        )
        install = TritonInstall(tmp / "tritonserver", tmp / "backends", {{"PATH": "/usr/bin:/bin"}})
        server = TritonServer(options, models=["m"], install=install, gpu_visible=False)
        try:
            server.start()
        except TritonError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "exited with code 3 during start-up" in done.stdout
    assert "fake tritonserver: no GPU here" in done.stdout


def test_the_gpu_checks_run_step_imports_nothing_a_bare_gpu_host_lacks() -> None:
    # The GPU check's run step executes on a lent host with Python, numpy and torch only.
    script = textwrap.dedent(
        """
        import sys
        for name in ("pydantic", "pydantic_settings", "google.protobuf", "tritonclient", "typer",
                     "fastapi", "locust", "onnxruntime", "PIL", "skimage"):
            sys.modules[name] = None
        import deploylab.benchmarks.gpu_check as gpu_check
        import deploylab.services.perf.load, deploylab.services.perf.triton_admin
        import deploylab.services.measure.ports, deploylab.services.runtime.triton
        assert gpu_check.main is not None
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
