"""`deploylab smoke`: export, serve with the embedded Triton, and check each model's served logits."""

from __future__ import annotations

import shutil
from pathlib import Path

from deploylab.services.cli import app
from typer.testing import CliRunner

from tests.support.ports import free_ports

MODEL = "mobilenet_v3_small"


def test_smoke_serves_the_model_and_finds_its_logits_equal_to_the_files(
    model_repository: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(model_repository / MODEL, repository / MODEL)  # exported already: smoke keeps it
    http, grpc, metrics = free_ports(3)
    env = {
        "DEPLOYLAB_MODEL_REPOSITORY": str(repository),
        "DEPLOYLAB_STATE_DIR": str(tmp_path / "state"),
        "DEPLOYLAB_TRITON_HTTP_PORT": str(http),
        "DEPLOYLAB_TRITON_GRPC_PORT": str(grpc),
        "DEPLOYLAB_TRITON_METRICS_PORT": str(metrics),
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, ["smoke", MODEL], env=env)
    assert result.exit_code == 0, result.output
    assert f"{MODEL}: unchanged, skipped" in result.output
    assert "batch 2" in result.output and "ok" in result.output and "MISMATCH" not in result.output
    assert "all models answered correctly" in result.output
