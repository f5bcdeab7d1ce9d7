"""`deploylab accuracy`: top-1 / top-5 of exported variants on a labelled set the test builds from photos."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from deploylab.services.cli import app
from deploylab.services.modelzoo import engines
from deploylab.services.modelzoo.catalog import Engine, get_spec, imagenet_labels
from deploylab.services.modelzoo.engines import OrtDevice
from deploylab.services.modelzoo.export import ExportOptions, export_model
from deploylab.services.modelzoo.quantize import pixel_batch
from deploylab.services.modelzoo.repository import ServingConfig, onnx_path
from PIL import Image
from typer.testing import CliRunner

from tests.support import images

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _reference_logits(repository: Path, triton_name: str, jpeg: bytes) -> np.ndarray:
    """The exported model on torchvision's own transform (an implementation independent of the gateway's)."""
    steps = get_spec("repvgg_a0").preprocessing
    pixels = pixel_batch([Image.open(io.BytesIO(jpeg)).convert("RGB")], steps)
    model = str(onnx_path(repository, triton_name))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: pixels})[0][0]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def labelled_photos(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two photos labelled with the model's own top-1 (by name), two with its least likely class (by index):
    top-1 and top-5 must both come out at exactly 50 %."""
    root = tmp_path_factory.mktemp("photos")
    rows = []
    for position, photo in enumerate(PHOTOS):
        jpeg = images.encode(images.photo(photo, (400, 300)), "JPEG", quality=90)
        (root / f"{photo}.jpg").write_bytes(jpeg)
        logits = _reference_logits(model_repository, "repvgg_a0_deploy", jpeg)
        names, best = imagenet_labels(), int(logits.argmax())
        by_name = position % 2 == 0 and names.count(names[best]) == 1
        label = names[best] if by_name else str(best if position % 2 == 0 else int(logits.argmin()))
        rows.append(f"{photo}.jpg,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_accuracy_reports_every_exported_variant(
    model_repository: Path, labelled_photos: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["accuracy", "repvgg_a0", "--images", str(labelled_photos), "-r", str(model_repository),
         "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "repvgg_a0.json").read_text())
    by_variant = {r["variant"]: r for r in record["results"]}
    assert set(by_variant) == {"train", "deploy"}
    for row in by_variant.values():
        assert row["images"] == 4 and row["engine"] == "onnxruntime" and row["precision"] == "fp32"
        assert row["top1"] == 0.5 and row["top5"] == 0.5, row


def test_an_openvino_variant_runs_on_openvino_and_reports_its_engine(
    model_repository: Path, labelled_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(model_repository / "repvgg_a0_deploy", repository / "repvgg_a0_deploy")
    assert export_model(get_spec("repvgg_a0"), "openvino", repository, ExportOptions()).status == "exported"
    opened: dict[str, str] = {}
    open_onnx = engines.open_onnx

    def recording(path: Path, engine: Engine, threads: int = 0, device: OrtDevice = "cpu") -> engines.Runner:
        opened[path.parents[1].name] = engine
        return open_onnx(path, engine, threads, device)

    monkeypatch.setattr(engines, "open_onnx", recording)
    result = CliRunner().invoke(
        app,
        ["accuracy", "repvgg_a0", "--images", str(labelled_photos), "-r", str(repository),
         "--out", str(tmp_path / "json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert opened == {"repvgg_a0_deploy": "onnxruntime", "repvgg_a0_openvino": "openvino"}
    record = json.loads((tmp_path / "json" / "repvgg_a0.json").read_text())
    by_variant = {r["variant"]: r for r in record["results"]}
    assert {v: (r["precision"], r["engine"], r["device"]) for v, r in by_variant.items()} == {
        "deploy": ("fp32", "onnxruntime", "cpu"),
        "openvino": ("fp32", "openvino", "cpu"),
    }
    # The same file on another engine judges the photos alike.
    assert (by_variant["openvino"]["top1"], by_variant["openvino"]["top5"]) == (0.5, 0.5)


def test_class_folders_and_unknown_labels(model_repository: Path, tmp_path: Path) -> None:
    folder = tmp_path / "set" / "not_a_class"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(images.encode(images.photo("coffee", (320, 240)), "JPEG"))
    result = CliRunner().invoke(
        app, ["accuracy", "repvgg_a0", "--images", str(tmp_path / "set"), "-r", str(model_repository)]
    )
    assert result.exit_code != 0
    assert "'not_a_class' is neither a class index" in result.output


def test_accuracy_joins_a_comparison_report(
    model_repository: Path, labelled_photos: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "results_fixture", run_dir)
    arguments = ["accuracy", "repvgg_a0", "--images", str(labelled_photos), "-r", str(model_repository)]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "json"), "--run", str(run_dir)])
    assert result.exit_code == 0, result.output
    html = (run_dir / "report.html").read_text()
    section = html.split('id="table-accuracy"')[1].split("</section>")[0]
    assert section.count("<tr><td>repvgg_a0_") == 2 and "50.0%" in section


def test_a_uint8_input_export_is_fed_pixels_and_judges_the_photos_as_fp32_does(
    labelled_photos: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repo"
    options = ExportOptions(serving=ServingConfig(input_dtype="uint8"))
    assert export_model(get_spec("repvgg_a0"), "deploy", repository, options).status == "exported"
    result = CliRunner().invoke(
        app,
        ["accuracy", "repvgg_a0", "--images", str(labelled_photos), "-r", str(repository),
         "--out", str(tmp_path / "json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "json" / "repvgg_a0.json").read_text())["results"]
    assert (row["variant"], row["top1"], row["top5"]) == ("deploy", 0.5, 0.5)
