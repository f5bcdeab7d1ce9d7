"""One namespace, `deploylab`, imported only through itself; and imports that go one way, down the layers."""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
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


# -- layers one way ------------------------------------------------------------------------------
# docs/architecture.md explains the layers; this table is the rule it describes, checked on every import
# (module level, inside functions, under TYPE_CHECKING alike: a type-only import still couples a module
# to what it names). Names omit the `deploylab.` prefix. `pkg.*` holds the package and every module
# under it; a plain name holds that module alone; a module belongs to its most specific entry.

FRONT_ENDS = "front-ends"


@dataclass(frozen=True)
class Layer:
    name: str
    members: tuple[str, ...]
    may_import: tuple[str, ...]


LAYERS = (
    Layer("common", ("services", "services.common.*"), ()),
    # Copied into the model repository as model.py and run by Triton's backend stub, where deploylab
    # need not be installed (the official container, a bare GPU host).
    Layer("in-triton", ("services.modelzoo.triton_python_model", "services.chaos.slow_model"), ()),
    Layer(
        "formats",
        (
            "services.modelzoo",
            "services.modelzoo.catalog",
            "services.modelzoo.counted",
            "services.modelzoo.errors",
            "services.modelzoo.manifest",
            "services.modelzoo.parity_limits",
            "services.modelzoo.repository",
            "services.modelzoo.versions",
        ),
        ("common",),
    ),
    Layer("exporter", ("services.modelzoo.*",), ("common", "formats")),
    # The serving path builds no torch model: the exporter is not below it.
    Layer("runtime", ("services.runtime.*",), ("common", "formats")),
    Layer("gateway", ("services.gateway.*",), ("common", "formats", "runtime")),
    Layer("dashboards", ("services.dashboards.*",), ("common", "gateway")),
    # Top-1/top-5 of exported models through the gateway's own preprocessing (what a served request gets)
    # on the engine that serves each one, opened as the Triton model opens it (the exporter's engines).
    Layer("accuracy", ("services.accuracy.*",), ("common", "formats", "exporter", "gateway")),
    Layer("measure", ("services.measure.*",), ("common", "formats", "exporter", "runtime")),
    Layer("perf", ("services.perf.*",), ("common", "formats", "exporter", "runtime", "gateway", "measure")),
    Layer(
        "loadtests",
        ("loadtests.*",),
        ("common", "formats", "exporter", "runtime", "gateway", "measure", "perf"),
    ),
    # The report reads what the load tests wrote through the schema the measurement core owns; the
    # producer never imports its consumer.
    Layer("report", ("services.report.*",), ("common", "formats", "measure")),
    Layer(
        FRONT_ENDS,
        (
            "services.modelzoo.cli",
            "services.modelzoo.smoke",
            "services.gateway.cli",
            "services.accuracy.cli",
            "services.chaos.*",
            "loadtests.cli",
            "loadtests.runs",
            "benchmarks.*",
        ),
        ("common", "in-triton", "formats", "exporter", "runtime", "gateway", "dashboards", "accuracy")
        + ("measure", "perf", "loadtests", "report"),
    ),
    Layer("entry", ("services.cli",), (FRONT_ENDS, "common")),
)

#: Imports that break the layering today, each with its owner's reason; (importer, imported module).
#: Fix the import, then delete its line: an entry that no longer matches a violation fails the test.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _source_modules() -> dict[str, Path]:
    return {_module_name(p): p for folder in SOURCE_FOLDERS for p in (ROOT / folder).rglob("*.py")}


def layer_of(module: str) -> Layer | None:
    """The layer whose most specific member names `module` (an exact name beats a `pkg.*`)."""
    best: tuple[int, Layer] | None = None
    for layer in LAYERS:
        for member in layer.members:
            if member.endswith(".*"):
                package = member[:-2]
                matches = module == package or module.startswith(package + ".")
                rank = 2 * package.count(".") + 1
            else:
                matches = module == member
                rank = 2 * member.count(".") + 2
            if matches and (best is None or rank > best[0]):
                best = (rank, layer)
    return best[1] if best else None


def _imported_modules(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, project module) for every import in `module`, resolved to the most specific known module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = (node.module or "").removeprefix("deploylab.")
                if not (node.module or "").startswith("deploylab."):
                    continue
            # `from pkg import module` imports the module, not just the package.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        for target in targets:
            target = target.removeprefix("deploylab.")
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                found.add((node.lineno, target))
    return sorted(found)


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "services" and len(parts) > 1 else parts[0]


def broken_rule(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when the layering allows it."""
    source, target = layer_of(importer), layer_of(imported)
    if source is None or target is None:
        unplaced = importer if source is None else imported
        return f"{unplaced} belongs to no layer: place it in LAYERS and docs/architecture.md"
    if source is target:
        if source.name == FRONT_ENDS and _package(importer) != _package(imported):
            return "a front-end imports another front-end only within its own package"
        return None
    if target.name not in source.may_import:
        allowed = ", ".join(source.may_import) or "nothing from the project"
        return f"{source.name} may not import {target.name} (it may import: {allowed})"
    return None


def test_layers_form_a_one_way_order() -> None:
    seen: set[str] = set()
    for layer in LAYERS:
        assert set(layer.may_import) <= seen, f"{layer.name} may import a layer above it"
        seen.add(layer.name)


def test_every_module_belongs_to_a_layer() -> None:
    assert [m for m in sorted(_source_modules()) if layer_of(m) is None] == []


def test_every_import_follows_the_layering() -> None:
    modules = _source_modules()
    known = set(modules)
    broken, excused = [], set()
    for module, path in sorted(modules.items()):
        for line, imported in _imported_modules(module, path, known):
            rule = broken_rule(module, imported)
            if rule is None:
                continue
            if (module, imported) in KNOWN_EXCEPTIONS:
                excused.add((module, imported))
                continue
            broken.append(f"{path.relative_to(ROOT)}:{line} imports {imported}: {rule}")
    stale = [
        f"KNOWN_EXCEPTIONS entry {importer} -> {imported} is no longer needed: delete it"
        for importer, imported in KNOWN_EXCEPTIONS
        if (importer, imported) not in excused
    ]
    problems = broken + stale
    assert not problems, "\n".join(["imports against the layering (docs/architecture.md):", *problems])


def test_the_layering_check_catches_an_upward_import() -> None:
    assert broken_rule("services.runtime.triton", "services.gateway.stack") is not None
    assert broken_rule("services.common.cli_errors", "services.modelzoo.catalog") is not None
    assert broken_rule("services.gateway.app", "services.modelzoo.export") is not None
    assert broken_rule("services.modelzoo.triton_python_model", "services.common.errors") is not None
    assert broken_rule("services.chaos.runner", "benchmarks.bench") is not None
    assert broken_rule("services.perf.load", "loadtests.session") is not None
    assert broken_rule("services.gateway.stack", "services.runtime.triton") is None
    assert broken_rule("services.cli", "services.modelzoo.cli") is None


def test_no_module_imports_itself_through_others() -> None:
    # Layers already rule out cycles between layers; inside one, a cycle would make two modules one
    # unit that can only be read, loaded and tested together.
    modules = _source_modules()
    known = set(modules)
    graph = {m: sorted({t for _, t in _imported_modules(m, p, known)} - {m}) for m, p in modules.items()}
    state: dict[str, str] = {}
    cycles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in graph[module]:
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
