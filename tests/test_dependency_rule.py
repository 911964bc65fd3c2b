"""The dependency rule (ARCHITECTURE.md), read from the source: every import of every
module of every package, at any depth (function bodies and ``TYPE_CHECKING`` blocks
included), and every ``importlib.import_module("...")`` with a literal name.

    galvana  the composition root: may import anything; nothing imports it
    tui      -> runtime
    actors   -> twins, physics, hal, runtime
    twins    -> physics, runtime
    physics  -> runtime's shared vocabulary only
    hal      -> runtime's shared vocabulary only
    bench    -> what it measures (never galvana or tui)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("galvana", "runtime", "actors", "physics", "hal", "twins", "tui", "bench")

# What physics and hal may use of runtime: the words every package shares.
VOCABULARY = (
    "runtime.messages",
    "runtime.codec",  # the messages' encoding, which runtime.messages stands on
    "runtime.waveforms",
    "runtime.sample_flags",
    "runtime.topics",
    "runtime.constants",
    "runtime.errors",
    "runtime.documents",
    "runtime.schema",  # the schema library of every YAML document
    "runtime.units",  # quantities with units, which runtime.schema reads
    "runtime.executor",  # the one seam every ensemble runs on (a sweep, NUTS chains, ...)
    "runtime.ray_executor",  # its Ray side
)

# package -> the modules (or packages) of ours it may import, besides its own.
ALLOWED: dict[str, tuple[str, ...]] = {
    "galvana": ("runtime", "actors", "physics", "hal", "twins", "tui", "bench"),
    "runtime": (),
    "actors": ("twins", "physics", "hal", "runtime"),
    "twins": ("physics", "runtime"),
    "physics": VOCABULARY,
    "hal": VOCABULARY,
    "tui": ("runtime",),
    "bench": ("actors", "twins", "physics", "hal", "runtime"),
}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything ``path`` (a module under ``root``) imports.
    ``from a import b`` yields ``a.b`` (b may be a module); relative imports are
    resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (
                    isinstance(node.func, ast.Name)
                    and node.func.id in ("import_module", "__import__")
                )
            )
        ):
            yield node.lineno, node.args[0].value


def violations(package: str, root: Path = ROOT) -> list[str]:
    """``file:line: name`` of each import in ``package`` the rule does not allow."""
    allowed = (package, *ALLOWED[package])
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for line, name in imported(path, root):
            if name.split(".")[0] not in PACKAGES:
                continue  # the standard library, or a dependency
            if not any(name == a or name.startswith(a + ".") for a in allowed):
                found.append(f"{path.relative_to(root)}:{line}: {name}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_the_rule_allows(package: str) -> None:
    assert violations(package) == []


def test_the_vocabulary_stands_on_itself() -> None:
    """What physics and hal import of runtime imports nothing else of runtime, so the
    rule holds through it too."""
    found = []
    for module in VOCABULARY:
        path = ROOT / (module.replace(".", "/") + ".py")
        for line, name in imported(path):
            if name.split(".")[0] in PACKAGES and not any(
                name == v or name.startswith(v + ".") for v in VOCABULARY
            ):
                found.append(f"{module}:{line}: {name}")
    assert found == []


def test_architecture_md_states_the_rule_this_test_holds() -> None:
    """The rule as ARCHITECTURE.md tells it is the rule as held here."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = text.split("## The dependency rule")[1].split("```")[1]
    said = {}
    for line in block.strip().splitlines():
        package, _, allowed = (part.strip() for part in line.partition("->"))
        said[package] = allowed.split(";")[0]
    words = {
        "anything": ALLOWED["galvana"],
        "runtime's shared vocabulary only": VOCABULARY,
        "nothing of ours": (),
    }
    assert said.keys() == ALLOWED.keys()
    for package, allowed in said.items():
        expected = words.get(allowed, tuple(a.split(" (")[0] for a in allowed.split(", ")))
        assert expected == ALLOWED[package], package


def test_the_composition_root_is_the_console_script() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'galvana = "galvana.cli:main"' in pyproject
    assert '"galvana*"' in pyproject  # packaged
    assert 'files = ["galvana", ' in pyproject  # type-checked


def test_the_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The walker itself, on a package that breaks the rule in each way it can be
    broken: a rule that reads nothing would pass anything."""
    (tmp_path / "hal").mkdir()
    (tmp_path / "hal" / "probe.py").write_text(
        "import actors.run\n"
        "from runtime import topics\n"
        "from runtime.client import Client\n"
        "from . import sibling\n"
        "def f():\n"
        "    from tui._app import run_app\n"
        "    importlib.import_module('galvana.cli')\n"
    )
    names = sorted(name for _, name in imported(tmp_path / "hal" / "probe.py", tmp_path))
    assert names == [
        "actors.run",
        "galvana.cli",
        "hal.sibling",
        "runtime.client.Client",
        "runtime.topics",
        "tui._app.run_app",
    ]
    assert violations("hal", tmp_path) == [
        "hal/probe.py:1: actors.run",
        "hal/probe.py:3: runtime.client.Client",
        "hal/probe.py:6: tui._app.run_app",
        "hal/probe.py:7: galvana.cli",
    ]


def test_the_engines_never_import_the_simulation_api() -> None:
    """``physics.simulation`` dispatches to the engines; they return what it returns
    (``physics.result``) without importing it, or ``physics`` itself (whose
    ``__init__`` imports it): the import graph has no circle there."""
    physics = ROOT / "physics"
    submodules = {p.stem for p in physics.glob("*.py")} | {
        p.name for p in physics.iterdir() if p.is_dir()
    }
    found = []
    for path in sorted((physics / "engines").rglob("*.py")):
        for line, name in imported(path):
            parts = name.split(".")
            if parts[0] != "physics":
                continue
            if len(parts) == 1 or parts[1] not in submodules or parts[1] == "simulation":
                found.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert found == []
