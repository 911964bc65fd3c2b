"""The actors screen: the supervision tree, live, and the supervision events as they happen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, RichLog

from runtime import topics
from runtime.client import Event
from runtime.errors import ApiError
from runtime.messages import (
    ActorExited,
    ActorRestarting,
    ActorStarted,
    SupervisorGaveUp,
    SystemNote,
)
from tui._banner import ConnectionBanner
from tui._connection import StandingSubscription
from tui._context import link_of

__all__ = ["ActorsScreen", "tree_rows"]

_STATE_STYLES = {
    "running": "green",
    "restarting": "bold yellow",
    "stopping": "yellow",
    "stopped": "dim",
}
_COLUMNS = ("actor", "state", "restarts", "mailbox", "last failure")


def tree_rows(
    nodes: list[dict[str, Any]], prefix: str = ""
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(path, label, node)`` for each actor, depth first; labels drawn as a tree.

    >>> [label for _, label, _ in tree_rows([{"id": "a", "path": "a", "children": [
    ...     {"id": "b", "path": "a/b"}]}, {"id": "c", "path": "c"}])]
    ['├─ a', '│  └─ b', '└─ c']
    """
    for k, node in enumerate(nodes):
        last = k == len(nodes) - 1
        label = f"{prefix}{'└─ ' if last else '├─ '}{node.get('id')}"
        yield str(node.get("path", node.get("id"))), label, node
        yield from tree_rows(node.get("children") or [], prefix + ("   " if last else "│  "))


def _describe(msg: object) -> tuple[str, str, datetime] | None:
    """A supervision event in words, its style and when it happened; None for other
    messages."""
    match msg:
        case ActorStarted():
            again = f" (incarnation {msg.incarnation})" if msg.incarnation > 1 else ""
            return f"{msg.path} started{again}", "green", msg.at
        case ActorExited():
            style = "bold red" if msg.reason in ("error", "killed") else "dim"
            detail = f": {msg.detail}" if msg.detail else ""
            return f"{msg.path} exited ({msg.reason}){detail}", style, msg.at
        case ActorRestarting():
            return (
                f"{msg.path} restarts in {msg.delay_s:.2f} s (restart {msg.restarts})",
                "yellow",
                msg.at,
            )
        case SupervisorGaveUp():
            return (
                f"{msg.path} GAVE UP: {msg.restarts} restarts within {msg.window_s:g} s",
                "bold red",
                msg.at,
            )
        case SystemNote():
            style = {"error": "bold red", "warning": "yellow"}.get(msg.level, "")
            return f"{msg.source}: {msg.text}", style, msg.at
        case _:
            return None


class ActorsScreen(Screen[None]):
    """The supervision tree with each actor's state, restarts, mailbox and last failure."""

    HELP_TITLE = "Actors"
    HELP = (
        "The daemon's supervision tree, refreshed every second and at once when an actor "
        "starts, exits or restarts: each actor's state, how often it was restarted, how many "
        "messages wait in its mailbox, and why it last failed. Below, the supervision events "
        "as they happen."
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]
    REFRESH_S = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._shown: list[str] = []
        self._cells: dict[str, tuple[str, ...]] = {}
        self._subs: list[StandingSubscription] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        table: DataTable[str | Text] = DataTable(id="actors", cursor_type="row")
        yield table
        yield RichLog(id="actors-log", max_lines=500, wrap=True, markup=False, min_width=20)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "actors"
        table = self.query_one("#actors", DataTable)
        for label in _COLUMNS:
            table.add_column(label, key=label)
        table.focus()
        self.query_one("#actors-log", RichLog).border_title = "supervision events"
        self._subs = [link_of(self).subscribe(topics.EVERY_SYSTEM, self._on_event)]
        self.watch(self.app, "connection_status", lambda _: self.refresh_tree(), init=False)
        self.set_interval(self.REFRESH_S, self.refresh_tree)
        self.refresh_tree()

    def on_unmount(self) -> None:
        for sub in self._subs:
            link_of(self).unsubscribe(sub)

    def _on_event(self, event: Event) -> None:
        if event.lagged:
            return
        described = _describe(event.message)
        if described is None:
            return
        text, style, at = described
        stamp = at.astimezone()
        self.query_one("#actors-log", RichLog).write(
            Text.assemble((stamp.strftime("%H:%M:%S "), "dim"), (text, style))
        )
        self.refresh_tree()

    def refresh_tree(self) -> None:
        """Ask for the tree (again); the table follows when the answer comes."""
        if link_of(self).status.connected and self.is_attached:
            self._fetch()

    @work(group="tree", exclusive=True)
    async def _fetch(self) -> None:
        try:
            tree = await link_of(self).call("", "tree")
        except (ApiError, TimeoutError):
            return
        self.show_tree(tree)

    def show_tree(self, tree: list[dict[str, Any]]) -> None:
        """Show the tree (as the root's ``tree()`` gives it)."""
        table = self.query_one("#actors", DataTable)
        rows: dict[str, tuple[str, ...]] = {"": ("root", "running", "", "", "")}
        for path, label, node in tree_rows(tree):
            rows[path] = (
                label,
                str(node.get("state", "?")),
                str(node.get("restarts", 0)),
                str(node.get("mailbox", 0)),
                str(node.get("last_failure") or ""),
            )
        paths = list(rows)
        if paths != self._shown:
            cursor = table.cursor_row
            table.clear()
            for path in paths:
                table.add_row(*self._cells_of(rows[path]), key=path or "/")
            table.move_cursor(row=min(cursor, len(paths) - 1), animate=False)
            self._shown = paths
        else:
            for path in paths:
                if self._cells.get(path) != rows[path]:
                    for column, cell in zip(_COLUMNS, self._cells_of(rows[path]), strict=True):
                        table.update_cell(path or "/", column, cell)
        self._cells = rows
        total = len(paths) - 1
        restarts = sum(int(r[2] or 0) for r in rows.values())
        self.sub_title = f"actors: {total}, {restarts} restarts"

    @staticmethod
    def _cells_of(row: tuple[str, ...]) -> tuple[str | Text, ...]:
        label, state, restarts, mailbox, failure = row
        return (
            label,
            Text(state, style=_STATE_STYLES.get(state, "")),
            Text(restarts, style="bold yellow" if restarts not in ("", "0") else ""),
            Text(mailbox, style="yellow" if mailbox.isdigit() and int(mailbox) > 100 else ""),
            Text(failure, style="red"),
        )

    def action_back(self) -> None:
        """Back to the runs."""
        self.app.switch_mode("runs")
