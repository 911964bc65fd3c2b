"""Each module's ``__all__`` is its public surface, read from the source: it names only
what the module defines, and everything another module takes from it (a name used
across modules is public, so it is listed); every message is listed in
``runtime.messages``; and no two packages' classes share a name, so a class name says
one thing wherever it is read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.test_dependency_rule import PACKAGES, ROOT, module_name

SOURCES = (*PACKAGES, "tests")


def _modules(root: Path) -> dict[str, Path]:
    return {
        module_name(path, root): path
        for package in SOURCES
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
    }


def _all_of(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
            assert isinstance(names, list), "__all__ is a literal list"
            return names
    return None


def _bound(tree: ast.Module) -> set[str]:
    """The names a module binds at its top level (``if``/``try`` blocks included)."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return names


def _taken(path: Path, name: str) -> Iterator[tuple[int, str, str]]:
    """(line, module, name) of each ``from module import name`` in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, base, alias.name


def surface_defects(root: Path = ROOT) -> list[str]:
    modules = _modules(root)
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in modules.items()}
    alls = {name: a for name, tree in trees.items() if (a := _all_of(tree)) is not None}
    found = []
    for module, names in sorted(alls.items()):
        bound = _bound(trees[module])
        found += [f"{module}.__all__: {n} is not defined there" for n in names if n not in bound]
    for module, path in sorted(modules.items()):
        for line, source, name in _taken(path, module):
            if (
                source in alls
                and source != module
                and not name.startswith("_")
                and f"{source}.{name}" not in modules  # a submodule
                and name not in alls[source]
            ):
                found.append(
                    f"{path.relative_to(root)}:{line}: {source}.{name} is not in its __all__"
                )
    return found


def shared_class_names(root: Path = ROOT) -> dict[str, list[str]]:
    """Public top-level class names defined in more than one module of the packages."""
    where: dict[str, list[str]] = {}
    for module, path in sorted(_modules(root).items()):
        if module.split(".")[0] not in PACKAGES:
            continue
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(module)
    return {name: modules for name, modules in where.items() if len(modules) > 1}


def test_no_two_classes_share_a_name() -> None:
    assert shared_class_names() == {}


def test_every_all_is_complete_and_true() -> None:
    assert surface_defects() == []


def test_every_message_is_public() -> None:
    tree = ast.parse((ROOT / "runtime" / "messages.py").read_text())
    messages = [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(
            isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "message"
            for d in node.decorator_list
        )
    ]
    listed = _all_of(tree) or []
    assert len(messages) >= 29
    assert [m for m in messages if m not in listed] == []


def test_the_check_sees_a_missing_name_and_a_false_one(tmp_path: Path) -> None:
    """The check itself, on a package that gets its surface wrong both ways."""
    (tmp_path / "hal").mkdir()
    (tmp_path / "hal" / "a.py").write_text(
        '__all__ = ["listed", "ghost"]\ndef listed(): ...\ndef unlisted(): ...\n'
    )
    (tmp_path / "hal" / "b.py").write_text(
        "from hal.a import listed, unlisted\nfrom .a import _private\n"
    )
    assert surface_defects(tmp_path) == [
        "hal.a.__all__: ghost is not defined there",
        "hal/b.py:1: hal.a.unlisted is not in its __all__",
    ]


def test_the_name_check_sees_a_shared_class_name(tmp_path: Path) -> None:
    for package in ("hal", "tui"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "m.py").write_text("class Link: ...\nclass _Own: ...\n")
    (tmp_path / "tui" / "n.py").write_text("class _Own: ...\n")
    assert shared_class_names(tmp_path) == {"Link": ["hal.m", "tui.m"]}
