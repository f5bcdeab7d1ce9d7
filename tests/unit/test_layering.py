"""The distribution installs one namespace, `deploylab`, and the source imports only through it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("services", "loadtests", "benchmarks")


def _python_files() -> list[Path]:
    return [p for folder in (*SOURCE_FOLDERS, "tests") for p in (ROOT / folder).rglob("*.py")]


def test_every_source_package_is_installed_under_the_deploylab_namespace() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        "deploylab." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in SOURCE_FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == on_disk
    assert all(name.startswith("deploylab.") for name in setuptools["package-dir"])


def test_no_module_imports_a_generic_top_level_name() -> None:
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] in SOURCE_FOLDERS
            ]
    assert offenders == []
