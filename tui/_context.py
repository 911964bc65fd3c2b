"""What every screen reaches through the app: the daemon link and the display units.

Screens ask for the link with :func:`link_of` rather than importing the app (which
imports them).
"""

from __future__ import annotations

from typing import Protocol, cast

from textual.dom import DOMNode

from tui._connection import DaemonLink
from tui._units import Units

__all__ = ["HasLink", "HasUnits", "link_of", "units_of"]


class HasLink(Protocol):
    """An app that holds a daemon link."""

    @property
    def link(self) -> DaemonLink:
        """The daemon link (real, or a fake in tests)."""


def link_of(node: DOMNode) -> DaemonLink:
    """The daemon link of the app ``node`` belongs to."""
    return cast(HasLink, node.app).link


class HasUnits(Protocol):
    """An app that holds the display units."""

    @property
    def units(self) -> Units:
        """The units estimates are shown in (the user's, or SI)."""


def units_of(node: DOMNode) -> Units:
    """The display units of the app ``node`` belongs to."""
    return cast(HasUnits, node.app).units
