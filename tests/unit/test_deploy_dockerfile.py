"""The gateway image's Dockerfile, parsed by BuildKit's own parser (no Docker engine here): non-root,
health-checked, pinned base, and every COPY source present in the build context .dockerignore leaves."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import dockerfile

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> tuple[dockerfile.Command, ...]:
    return dockerfile.parse_file(str(ROOT / "Dockerfile"))


def final_stage() -> list[dockerfile.Command]:
    commands = list(instructions())
    last_from = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    return commands[last_from:]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        prefixes = [path] + [str(parent) for parent in Path(path).parents if str(parent) != "."]
        if any(fnmatch.fnmatch(candidate, pattern) for candidate in prefixes) or pattern == "**":
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = [c.value[0] for c in final_stage() if c.cmd == "USER"]
    assert users, "no USER in the final stage: the gateway would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_image_has_a_healthcheck_and_runs_the_gateway() -> None:
    stage = final_stage()
    healthchecks = [c for c in stage if c.cmd == "HEALTHCHECK"]
    assert healthchecks and "/healthz" in healthchecks[-1].value
    cmd = [c for c in stage if c.cmd == "CMD"][-1]
    assert cmd.json and list(cmd.value) == ["python", "-m", "deploylab.services.gateway.main"]
    assert "8080" in [c.value[0] for c in stage if c.cmd == "EXPOSE"]


def test_base_image_is_pinned() -> None:
    args = {c.value[0].split("=")[0]: c.value[0].split("=", 1)[1] for c in instructions() if c.cmd == "ARG"}
    for command in instructions():
        if command.cmd == "FROM":
            image = command.value[0]
            image = args.get(image.strip("${}"), image)
            assert ":" in image and not image.endswith(":latest"), image


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    for command in instructions():
        if command.cmd != "COPY" or any(flag.startswith("--from") for flag in command.flags):
            continue
        for source in command.value[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: missing"
            assert not ignored(source.rstrip("/"), patterns), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = dockerignore_patterns()
    local_state = (".venv/bin/python", ".git/HEAD", "model_repository/resnet18/1/model.onnx", "tests/x.py")
    for path in local_state:
        assert ignored(path, patterns), path
    assert not ignored("services/gateway/main.py", patterns)
