"""A sweep's results as a heatmap: one output over two varied keys.

``galvana sweep`` writes its results to a zarr store that any xarray user reads
(``physics.sweep_store``: one dimension per varied key of a grid design, named by its
key path with its values as coordinates; per point the largest anodic and cathodic
peak's current and potential, with ``units`` and ``long_name`` attributes; ``status``
1 where a point is done). The TUI reads it the same way (``galvana tui --sweep
DIR.zarr``): ``o`` picks the output, ``k`` the two keys when more were varied (the
others at their first value); points not done are blank.

Cells are coloured on a perceptual scale (viridis) from the output's lowest to its
highest value; the colour bar gives both, in the output's unit with an SI prefix.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer, Header, Static

from tui._format import format_si
from tui.errors import TuiError

__all__ = ["Heatmap", "SweepData", "SweepScreen", "read_sweep"]

FloatArray = npt.NDArray[np.float64]

# Viridis at nine stops (matplotlib's, rounded): dark violet (low) to yellow (high).
_VIRIDIS: Final = (
    (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (110, 206, 88), (181, 222, 43), (253, 231, 37),
)  # fmt: skip


def viridis(fraction: float) -> tuple[int, int, int]:
    """The colour of ``fraction`` (0..1) of the way up the scale."""
    f = min(max(fraction, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    k = min(int(f), len(_VIRIDIS) - 2)
    w = f - k
    a, b = _VIRIDIS[k], _VIRIDIS[k + 1]
    return (
        round(a[0] + (b[0] - a[0]) * w),
        round(a[1] + (b[1] - a[1]) * w),
        round(a[2] + (b[2] - a[2]) * w),
    )


class SweepData:
    """A sweep store read whole: its grid keys with their values, and each output."""

    def __init__(
        self,
        path: Path,
        keys: dict[str, FloatArray],
        outputs: dict[str, tuple[FloatArray, str, str]],
        done: npt.NDArray[np.bool_],
    ) -> None:
        self.path = path
        self.keys = keys
        """Each varied key's values, in the order of the outputs' dimensions."""
        self.outputs = outputs
        """Each output: its values over the keys, its unit and what it is."""
        self.done = done


def read_sweep(path: str | Path) -> SweepData:
    """Read a sweep store; :class:`TuiError` in one line when it is not one the heatmap
    can show (not a sweep store, or a random or Latin-hypercube design)."""
    import xarray as xr  # noqa: PLC0415 - only the sweep view needs it

    where = Path(path)
    try:
        ds = xr.open_zarr(where)
    except Exception as exc:  # xarray and zarr raise many kinds for a bad store
        raise TuiError(f"--sweep {where}: not a readable sweep store ({exc})") from None
    with ds:
        dims = [str(d) for d in ds["status"].dims] if "status" in ds else []
        if not dims or dims == ["point"]:
            raise TuiError(
                f"--sweep {where}: a heatmap needs a grid design (this sweep has "
                f"{'no status' if not dims else 'scattered points'})"
            )
        keys = {d: np.asarray(ds[d].values, dtype=np.float64) for d in dims}
        outputs = {
            name: (
                np.asarray(var.values, dtype=np.float64),
                str(var.attrs.get("units", "")),
                str(var.attrs.get("long_name", name)),
            )
            for name, var in ds.data_vars.items()
            if tuple(var.dims) == tuple(dims) and name not in ("status", "invocation")
        }
        done = np.asarray(ds["status"].values) == 1
    if len(dims) < 2:
        raise TuiError(f"--sweep {where}: a heatmap needs two varied keys; this one varies one")
    return SweepData(where, keys, outputs, done)


def _value_label(value: float) -> str:
    return f"{value:.3g}"


class Heatmap(Widget):
    """One output over two keys: a block of cells per point, coloured by its value."""

    DEFAULT_CSS = """
    Heatmap {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: FloatArray = np.zeros((0, 0))
        self.x_values: FloatArray = np.zeros(0)
        self.y_values: FloatArray = np.zeros(0)
        self.span = (0.0, 1.0)

    def show(self, values: FloatArray, x_values: FloatArray, y_values: FloatArray) -> None:
        """``values[i, j]`` at ``x_values[i]`` (columns) and ``y_values[j]`` (rows, up)."""
        self.values, self.x_values, self.y_values = values, x_values, y_values
        finite = values[np.isfinite(values)]
        self.span = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """One line of the widget (Textual's line API)."""
        width, height = self.size
        base = self.rich_style
        nx, ny = self.values.shape if self.values.ndim == 2 else (0, 0)
        label_width = 9
        rows = height - 1
        if nx == 0 or ny == 0 or rows < 1 or width <= label_width + nx:
            return Strip.blank(width, base)
        cols = width - label_width
        if y == rows:  # the x axis: each column's value under its block
            line = [" "] * cols
            taken = -2
            for i, value in enumerate(self.x_values.tolist()):
                label = _value_label(value)
                center = int((i + 0.5) * cols / nx)
                start = min(max(center - len(label) // 2, 0), cols - len(label))
                if start > taken + 1:
                    line[start : start + len(label)] = label
                    taken = start + len(label)
            axis = " " * label_width + "".join(line)
            return Strip([Segment(axis, base + Style(dim=True))], width)
        j = ny - 1 - int(y * ny / rows)  # rows run upwards
        first_row = y == 0 or ny - 1 - int((y - 1) * ny / rows) != j
        label = _value_label(float(self.y_values[j])) if first_row else ""
        shown = label[: label_width - 1].rjust(label_width - 1) + "│"
        segments = [Segment(shown, base + Style(dim=True))]
        lo, hi = self.span
        owners = (np.arange(cols) * nx // cols).tolist()
        for i, run in itertools.groupby(owners):
            n = len(list(run))
            value = float(self.values[i, j])
            if not math.isfinite(value):
                segments.append(Segment("·" * n, base + Style(dim=True)))
                continue
            fraction = 0.5 if hi == lo else (value - lo) / (hi - lo)
            r, g, b = viridis(fraction)
            segments.append(Segment(" " * n, base + Style.parse(f"on rgb({r},{g},{b})")))
        return Strip(segments, width)


class SweepScreen(Screen[None]):
    """A sweep store's results as a heatmap (see the module docstring)."""

    HELP_TITLE = "Sweep"
    HELP = (
        "A sweep's results (galvana sweep ... --out DIR.zarr): the chosen output over two "
        "varied keys, one block per point, dark violet (lowest) to yellow (highest); blank "
        "dots where a point is not done (failed, or not run yet). o: the next output; k: "
        "the next pair of keys when more than two were varied."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "output", "Output"),
        Binding("k", "keys", "Keys"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, data: SweepData) -> None:
        super().__init__()
        self.data = data
        self.output = next(iter(data.outputs), "")
        self.pairs = list(itertools.combinations(range(len(data.keys)), 2))
        self.pair = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="sweep-title")
        yield Heatmap(id="sweep-map")
        yield Static(id="sweep-scale")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"sweep {self.data.path.name}"
        self._show()

    def _show(self) -> None:
        data = self.data
        names = list(data.keys)
        a, b = self.pairs[self.pair]
        values, unit, what = data.outputs[self.output]
        values = np.where(data.done, values, np.nan)
        # The keys not shown at their first value.
        index: list[Any] = [0] * values.ndim
        index[a], index[b] = slice(None), slice(None)
        plane = values[tuple(index)]
        self.query_one(Heatmap).show(plane, data.keys[names[a]], data.keys[names[b]])
        fixed = [
            f"{names[k]} = {data.keys[names[k]][0]:.3g}"
            for k in range(len(names))
            if k not in (a, b)
        ]
        title = Text.assemble(
            (self.output, "bold"),
            (f" / {unit}" if unit else "", ""),
            (f"  over {names[a]} (across) and {names[b]} (up)", ""),
            (f"   {', '.join(fixed)}" if fixed else "", "dim"),
            (f"   {what}", "dim"),
        )
        self.query_one("#sweep-title", Static).update(title)
        finite = plane[np.isfinite(plane)]
        scale = Text("scale ")
        if finite.size:
            scale.append(format_si(float(finite.min()), unit) + " ")
            for k in range(24):
                r, g, b = viridis(k / 23)
                scale.append(" ", style=f"on rgb({r},{g},{b})")
            scale.append(" " + format_si(float(finite.max()), unit))
        done = int(np.isfinite(plane).sum())
        scale.append(f"   {done} of {plane.size} points done", style="dim")
        self.query_one("#sweep-scale", Static).update(scale)

    def action_output(self) -> None:
        """Show the next output."""
        names = list(self.data.outputs)
        self.output = names[(names.index(self.output) + 1) % len(names)]
        self._show()

    def action_keys(self) -> None:
        """Show the next pair of varied keys."""
        self.pair = (self.pair + 1) % len(self.pairs)
        self._show()

    def action_back(self) -> None:
        """Back to the screen before."""
        self.dismiss(None)
