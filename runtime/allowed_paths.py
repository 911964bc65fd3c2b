"""The directories a daemon reads files from when a client names a path.

A client may name files in what it sends (a spec's ``model:``, a log directory to
replay); the daemon reads them with its own rights, so it must never read one outside
the directories it was given: its data directory, its configuration file's directory
and the configuration's ``allowed_paths:``. :meth:`AllowedPaths.resolve` resolves a
name (relative to :attr:`AllowedPaths.base`, symlinks followed) *before* checking it,
so neither ``..`` nor a symlink leads out, and refuses anything else with a
:class:`~runtime.errors.CallError` ``forbidden`` that names the path and the roots.

>>> from pathlib import Path
>>> allowed = AllowedPaths.of(Path("/srv/lab"))
>>> allowed.resolve("models/cell.yaml", "model")
PosixPath('/srv/lab/models/cell.yaml')
>>> try:
...     allowed.resolve("../../etc/passwd", "model")
... except CallError as exc:
...     print(exc.code, str(exc)[:60])
forbidden model '../../etc/passwd' (/etc/passwd) is outside the direct
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import CallError

__all__ = ["AllowedPaths"]


@dataclass(frozen=True, slots=True)
class AllowedPaths:
    """``roots``: the directories (resolved) under which files may be read; ``base``:
    the directory relative paths are taken from (the first root)."""

    roots: tuple[Path, ...]
    base: Path

    @classmethod
    def of(cls, base: Path, others: Iterable[Path] = ()) -> AllowedPaths:
        """``base`` and ``others``, resolved; relative paths will be taken from ``base``."""
        resolved = [Path(base).resolve()]
        for root in others:
            path = Path(root).resolve()
            if path not in resolved:
                resolved.append(path)
        return cls(tuple(resolved), resolved[0])

    def resolve(self, name: str | os.PathLike[str], what: str) -> Path:
        """The real path of ``name`` (``what`` says what it is, for the error), if it
        lies under a root; a :class:`CallError` ``forbidden`` otherwise."""
        if not isinstance(name, str | os.PathLike) or not str(name) or "\0" in str(name):
            raise CallError("bad_request", f"{what} must be a non-empty path, got {name!r}")
        path = Path(name)
        real = (path if path.is_absolute() else self.base / path).resolve()
        if any(real.is_relative_to(root) for root in self.roots):
            return real
        shown = f"{str(name)!r}" + (f" ({real})" if str(real) != str(name) else "")
        raise CallError(
            "forbidden",
            f"{what} {shown} is outside the directories this daemon reads from "
            f"({', '.join(str(r) for r in self.roots)}); accepted: a path under one of them "
            "(a directory can be added to allowed_paths: in the daemon's configuration)",
        )
