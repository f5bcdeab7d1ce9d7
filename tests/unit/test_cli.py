"""The CLI's user-facing contract: tables and JSON, one-line errors with non-zero exits."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from deploylab.benchmarks.cli_cost import HEAVY_MODULES, heavy_modules_after
from deploylab.services.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_models_json_lists_every_variant_with_facts(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "--json", "--repository", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert {"resnet50", "vgg16", "repvgg_a0_train", "repvgg_a0_deploy"} <= set(rows)
    assert rows["vgg16"]["params"] == 138_357_544
    assert abs(rows["vgg16"]["gmacs"] - 15.47) < 0.155
    assert rows["repvgg_a0_deploy"]["params"] == 8_309_384
    assert rows["resnet50"]["exported"] is False and rows["resnet50"]["onnx_bytes"] is None


def test_models_table_shows_exported_state_from_the_repository(model_repository: Path) -> None:
    result = runner.invoke(app, ["models", "--repository", str(model_repository)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "repvgg_a0_deploy" in line)
    assert "8,309,384" in line and "yes" in line
    vgg = next(line for line in result.stdout.splitlines() if "vgg16" in line)
    assert "138,357,544" in vgg and " no " in vgg


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a subprocess, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "deploylab.services.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert lines and lines[-1].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[-1]


def test_unknown_model_is_one_line_listing_the_known_ones() -> None:
    assert_one_line_error(run_cli("export", "resnet51"), "resnet51", "resnet50", "vgg16")


def test_unwritable_repository_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(app, ["export", "mobilenet_v3_small", "--repository", str(blocker / "repo")])
    assert result.exit_code == 1
    assert "cannot create model repository" in result.output


def test_weights_for_several_models_is_refused() -> None:
    result = runner.invoke(app, ["export", "--set", "small", "--weights", "x.pt"])
    assert result.exit_code == 1
    assert "--weights applies to one model" in result.output


def test_port_in_use_is_one_line(model_repository: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli(
            "triton",
            "--repository",
            str(model_repository),
            "--http-port",
            str(port),
            env={"DEPLOYLAB_STATE_DIR": str(tmp_path)},
        )
    assert_one_line_error(result, f"port {port}", "already in use")


def test_missing_tritonserver_is_one_line(model_repository: Path, tmp_path: Path) -> None:
    result = run_cli(
        "triton",
        "--repository",
        str(model_repository),
        env={
            "DEPLOYLAB_TRITON_BINARY": str(tmp_path / "nope" / "tritonserver"),
            "DEPLOYLAB_STATE_DIR": str(tmp_path),
            "DEPLOYLAB_TRITON_HTTP_PORT": "18931",
            "DEPLOYLAB_TRITON_GRPC_PORT": "18932",
            "DEPLOYLAB_TRITON_METRICS_PORT": "18933",
        },
    )
    assert_one_line_error(result, "tritonserver not found")


def test_triton_on_an_empty_repository_says_to_export_first(tmp_path: Path) -> None:
    result = runner.invoke(app, ["triton", "--repository", str(tmp_path)])
    assert result.exit_code == 1
    assert "deploylab export" in result.output


@pytest.mark.parametrize("value", ["0", "abc"])
def test_invalid_settings_from_the_environment_are_one_line(value: str) -> None:
    result = run_cli("triton", env={"DEPLOYLAB_TRITON_HTTP_PORT": value})
    assert_one_line_error(result, "triton_http_port")


def test_export_serves_two_instances_unless_told_on_either_kind(
    model_repository: Path, tmp_path: Path
) -> None:
    import shutil

    from deploylab.services.modelzoo.repository import parse_triton_config
    from tritonclient.grpc import model_config_pb2 as mc

    shutil.copytree(model_repository / "mobilenet_v3_small", tmp_path / "mobilenet_v3_small")
    config_file = tmp_path / "mobilenet_v3_small" / "config.pbtxt"
    cpu, gpu = mc.ModelInstanceGroup.KIND_CPU, mc.ModelInstanceGroup.KIND_GPU
    for extra, expected in ((["--kind", "gpu"], (2, gpu)), ([], (2, cpu)), (["--instances", "3"], (3, cpu))):
        args = ["export", "mobilenet_v3_small", "--repository", str(tmp_path), *extra]
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "kept the ONNX file" in result.output  # a serving change only rewrites the config
        group = parse_triton_config(config_file.read_text()).instance_group[0]
        assert (group.count, group.kind) == expected


def test_export_lays_out_a_heavy_model_by_its_compute_unless_told(
    model_repository: Path, tmp_path: Path
) -> None:
    import shutil

    from deploylab.services.modelzoo.counted import COUNTED_GMACS
    from deploylab.services.modelzoo.repository import default_layout, parse_triton_config

    shutil.copytree(model_repository / "resnet18", tmp_path / "resnet18")
    config_file = tmp_path / "resnet18" / "config.pbtxt"
    wide = default_layout(COUNTED_GMACS["resnet18"])  # on 2 cores: 1 pipelined instance, 2 threads
    for extra, expected in (
        (["--instances", "2"], (2, "0")),  # any layout option given: nothing else is chosen for it
        ([], (wide.instances, "1" if wide.pipeline else "0")),
        (["--backend", "deploylab_ort"], (2, "0")),  # the layouts were measured on the Python backend
    ):
        result = runner.invoke(app, ["export", "resnet18", "--repository", str(tmp_path), *extra])
        assert result.exit_code == 0, result.output
        config = parse_triton_config(config_file.read_text())
        pipeline = config.parameters["pipeline"].string_value if "pipeline" in config.parameters else "0"
        assert (config.instance_group[0].count, pipeline) == expected


def test_export_pipeline_flag_reaches_the_config_and_is_refused_off_the_python_backend(
    model_repository: Path, tmp_path: Path
) -> None:
    import shutil

    from deploylab.services.modelzoo.repository import parse_triton_config

    shutil.copytree(model_repository / "mobilenet_v3_small", tmp_path / "mobilenet_v3_small")
    args = ["export", "mobilenet_v3_small", "--repository", str(tmp_path), "--instances", "2", "--pipeline"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    config = parse_triton_config((tmp_path / "mobilenet_v3_small" / "config.pbtxt").read_text())
    assert config.parameters["pipeline"].string_value == "1"
    assert_one_line_error(run_cli(*args, "--backend", "onnxruntime"), "pipeline", "python")


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--kind", "gpu"], ("mobilenet_v3_small_openvino", "CPU plugin only", "--kind gpu")),
        (["--backend", "deploylab_ort"], ("mobilenet_v3_small_openvino", "--backend deploylab_ort")),
        (["--backend", "onnxruntime"], ("mobilenet_v3_small_openvino", "--backend onnxruntime")),
        (["--variant", "fp16", "--kind", "cpu"], ("mobilenet_v3_small_fp16", "GPU instances only")),
    ],
)
def test_export_refuses_a_variant_its_options_cannot_serve_before_exporting_anything(
    tmp_path: Path, extra: list[str], fragments: tuple[str, ...]
) -> None:
    args = ["export", "mobilenet_v3_small", "--variant", "default", "--variant", "openvino", *extra]
    assert_one_line_error(run_cli(*args, "--repository", str(tmp_path)), *fragments)
    assert not any(tmp_path.iterdir())


def test_export_refuses_a_variant_no_named_model_has_instead_of_dropping_it(tmp_path: Path) -> None:
    args = ["export", "mobilenet_v3_small", "--variant", "int8", "--variant", "fp32"]
    assert_one_line_error(run_cli(*args, "--repository", str(tmp_path)), "no variant 'fp32'", "default, int8")
    assert not any(tmp_path.iterdir())


def test_export_gives_openvino_variants_cpu_instances_when_auto_resolves_to_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from deploylab.services.modelzoo import export
    from deploylab.services.runtime import devices

    served = {}

    def record(spec, variant, repository, options, on_step=None):  # type: ignore[no-untyped-def]
        served[spec.triton_name(variant)] = (options.serving.instance_kind, options.serving.engine)
        return SimpleNamespace(status="skipped")

    monkeypatch.setattr(devices, "resolve_instance_kind", lambda kind: ("gpu", "auto: a GPU, faked"))
    monkeypatch.setattr(export, "export_model", record)
    args = ["export", "mobilenet_v3_small", "--variant", "default", "--variant", "openvino"]
    result = runner.invoke(app, [*args, "--variant", "int8_openvino", "--repository", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert served == {
        "mobilenet_v3_small": ("gpu", "onnxruntime"),
        "mobilenet_v3_small_openvino": ("cpu", "openvino"),
        "mobilenet_v3_small_int8_openvino": ("cpu", "openvino"),
    }
    assert "mobilenet_v3_small_openvino, mobilenet_v3_small_int8_openvino: instance kind cpu" in " ".join(
        result.output.split()
    )


def test_export_help_names_every_opt_in_variant() -> None:
    result = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "300"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "int8, openvino, int8_openvino, fp16" in text


def test_export_warns_about_a_single_batching_instance(model_repository: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(model_repository / "mobilenet_v3_small", tmp_path / "mobilenet_v3_small")
    base = ["export", "mobilenet_v3_small", "--repository", str(tmp_path)]
    timeout = ["--queue-timeout-ms", "5000"]
    cases = (
        (["--instances", "1", *timeout], True),
        (["--instances", "1"], False),  # without a queue policy the batcher forms batches ahead
        (["--instances", "1", "--max-batch", "0", *timeout], False),
        (timeout, False),
    )
    for extra, warned in cases:
        result = runner.invoke(app, [*base, *extra], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert ("stalls ~500 ms" in result.output) is warned, result.output


def test_help_of_every_command_imports_neither_torch_nor_onnxruntime() -> None:
    assert "torch" in HEAVY_MODULES and "onnxruntime" in HEAVY_MODULES
    commands = [str(info.name) for info in app.registered_commands]
    assert {"models", "export", "serve", "smoke", "bench"} <= set(commands)
    imported = {command: heavy_modules_after([command, "--help"]) for command in commands}
    assert heavy_modules_after(["--help"]) == []
    assert imported == {command: [] for command in commands}


def test_models_on_an_empty_repository_imports_neither_torch_nor_onnxruntime(tmp_path: Path) -> None:
    # Nothing exported: every row's facts come from the catalog and the counted GMACs.
    assert heavy_modules_after(["models", "--json", "--repository", str(tmp_path)]) == []


def test_models_reads_exported_facts_without_torch(model_repository: Path) -> None:
    assert heavy_modules_after(["models", "--json", "--repository", str(model_repository)]) == []


def test_serve_supervisor_path_imports_neither_torch_nor_onnxruntime(model_repository: Path) -> None:
    # Through settings, the model list and the stack up to the gateway's start, which a held port
    # refuses: every module the supervising process imports, without starting a server.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        args = ["serve", "--repository", str(model_repository), "--triton-url", "127.0.0.1:9"]
        assert heavy_modules_after([*args, "--port", str(port)]) == []
        assert_one_line_error(run_cli(*args, "--port", str(port)), f"port {port}", "already in use")
    # The model list reads every manifest before it refuses the unknown name.
    assert heavy_modules_after(["serve", "nosuchmodel", "--repository", str(model_repository)]) == []
