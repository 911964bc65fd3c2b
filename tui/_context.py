"""What every screen reaches through the app: the daemon link and the run commands.

Screens ask for the link with :func:`link_of` rather than importing the app (which
imports them).
"""

from __future__ import annotations

from typing import Protocol, cast

from textual.dom import DOMNode

from tui._connection import Link

__all__ = ["HasLink", "link_of"]


class HasLink(Protocol):
    """An app that holds a daemon link."""

    @property
    def link(self) -> Link:
        """The daemon link (real, or a fake in tests)."""


def link_of(node: DOMNode) -> Link:
    """The daemon link of the app ``node`` belongs to."""
    return cast(HasLink, node.app).link
