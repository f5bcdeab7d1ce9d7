"""One complete tune: a Triton to tune against, the search, the trials table on disk, the winner installed.

Every trial starts from the model's exported config (its manifest's `serving`): the search varies the
knobs, and the deployment (engine, instance kind, queue policy, …) stays what was exported. The winner
is written as the model's `config.pbtxt` (and recorded in its manifest), then loaded from that file
through model control, and the served config is read back: the file on disk is proven to
load, not just the override the trials used. The previous config is saved next to the trials table.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from deploylab.services.common.errors import UserError
from deploylab.services.measure.names import served_model
from deploylab.services.modelzoo.manifest import Manifest, read_manifest, write_manifest
from deploylab.services.modelzoo.repository import (
    CONFIG_FILENAME,
    ServingConfig,
    model_dir,
    refresh_python_model,
    write_model_files,
)
from deploylab.services.runtime.settings import RuntimeSettings
from deploylab.services.runtime.triton import TritonServer

from .triton_admin import TritonAdminError, load_model, model_config
from .tune import TrialCallback, TuneOptions, TuneResult, tune


class TuneError(UserError):
    """The tune could not run or its result could not be installed; the message says why."""


@dataclass(frozen=True)
class TuneReport:
    result: TuneResult
    json_path: Path
    markdown_path: Path
    config_path: Path | None  # the installed best config.pbtxt (None: nothing met the limit)
    served_config: dict[str, object] | None


def run_tune(
    settings: RuntimeSettings,
    model: str,
    options: TuneOptions,
    out_dir: Path,
    *,
    triton_url: str | None = None,
    on_trial: TrialCallback | None = None,
) -> TuneReport:
    """Tune `model` (a Triton model name) in `settings.model_repository`; write table and best config.

    The trials vary `options.space`'s knobs over the model's exported config, with the space's `chosen`
    fields (TuneSpace.on_deployment).
    """
    spec = served_model(model).spec
    directory = model_dir(settings.model_repository, model)
    manifest = read_manifest(directory)
    if manifest is None or not (directory / CONFIG_FILENAME).is_file():
        raise TuneError(
            f"{model} is not exported in {settings.model_repository}: run `deploylab export` first"
        )
    try:
        space = options.space.on_deployment(exported_serving(manifest))
    except ValueError as exc:
        raise TuneError(f"{model}: {exc}") from None
    options = replace(options, space=space)
    previous_config = (directory / CONFIG_FILENAME).read_text()
    refresh_python_model(settings.model_repository, model)  # trials run this deploylab's model.py
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)

    with _triton(settings, model, triton_url) as base_url:
        result = tune(base_url, model, spec.input_size, spec.num_classes, options, on_trial=on_trial)
        best = result.best
        config_path: Path | None = None
        served: dict[str, object] | None = None
        if best is not None:
            (out_dir / f"{model}-{stamp}.previous.pbtxt").write_text(previous_config)
            write_model_files(
                settings.model_repository, model, spec.input_size, spec.num_classes, best.serving
            )
            write_manifest(directory, manifest.model_copy(update={"serving": asdict(best.serving)}))
            config_path = directory / CONFIG_FILENAME
            try:
                load_model(base_url, model)  # from the file just written
                served = model_config(base_url, model)
            except TritonAdminError as exc:
                raise TuneError(
                    f"the best config was written to {config_path} but does not load: {exc}"
                ) from None
        else:
            with contextlib.suppress(TritonAdminError):
                load_model(base_url, model)  # back to the unchanged file

    json_path = out_dir / f"{model}-{stamp}.json"
    markdown_path = out_dir / f"{model}-{stamp}.md"
    payload = {
        "model": model,
        "p99_limit_ms": options.p99_ms,
        "options": {
            "concurrencies": list(options.concurrencies),
            "duration_s": options.duration_s,
            "request_batch": options.request_batch,
            "transport": options.transport,
            "strategy": options.strategy,
            "confirm_top": options.confirm_top,
        },
        "created": stamp,
        "trials": [t.as_dict() for t in result.trials],
        "best": result.best.as_dict() if result.best else None,
        "config_path": str(config_path) if config_path else None,
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    markdown_path.write_text(trials_markdown(result))
    return TuneReport(result, json_path, markdown_path, config_path, served)


def exported_serving(manifest: Manifest) -> ServingConfig:
    """The serving config a model was exported (or last tuned) with, as its manifest records it."""
    try:
        return ServingConfig.from_record(manifest.serving)
    except ValueError as exc:
        raise TuneError(
            f"{manifest.model}: the serving config in its manifest does not read back ({exc}); "
            "export it again with `deploylab export --force`"
        ) from None


def trials_markdown(result: TuneResult) -> str:
    """The trials table as Markdown (one row per trial, the winner marked; "config mean" averages the
    config's measurements, re-runs included, and decides the winner)."""
    best = result.best
    lines = [
        f"# tune {result.model}: p99 ≤ {result.p99_limit_ms:g} ms",
        "",
        "| # | config | best img/s | config mean img/s | at concurrency | p50 ms | p99 ms "
        "| mean executed batch | sweep (c: img/s, p99) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for trial in result.trials:
        point = trial.best_point
        sweep = "; ".join(f"{p.concurrency}: {p.throughput_img_s:.0f}, {p.p99_ms:.1f}" for p in trial.points)
        mark = " **best**" if best is not None and trial.index == best.index else ""
        if point is None:
            reason = trial.error or "no concurrency met the limit"
            dashes = " | ".join("–" * 6)
            lines.append(f"| {trial.index} | {trial.title}{mark} | {dashes} | {sweep or reason} |")
            continue
        lines.append(
            f"| {trial.index} | {trial.title}{mark} | {point.throughput_img_s:.1f} | "
            f"{result.mean_score(trial.serving):.1f} | {point.concurrency} | {point.p50_ms:.2f} | "
            f"{point.p99_ms:.2f} | {point.mean_executed_batch:.2f} | {sweep} |"
        )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _triton(settings: RuntimeSettings, model: str, triton_url: str | None) -> Iterator[str]:
    """An explicit-mode Triton: the one at `triton_url`, or an embedded one started for this tune."""
    if triton_url is not None:
        yield triton_url.rstrip("/")
        return
    if settings.triton_model_control != "explicit":
        raise TuneError(
            "tuning needs Triton's explicit model control (DEPLOYLAB_TRITON_MODEL_CONTROL=explicit)"
        )
    server = TritonServer(settings, models=[model])
    server.start()
    try:
        yield settings.triton_http_url
    finally:
        server.stop()
