"""The errors of the terminal UI.

The TUI shows what went wrong in words and keeps going; these exceptions carry
those words. Connection and API failures arrive as :class:`runtime.errors.ApiError`
(and its :class:`~runtime.errors.ConnectionLost`), the client's own errors, and are
not wrapped again.
"""

from __future__ import annotations

from runtime.errors import GalvanaError

__all__ = ["ConfigError", "TuiError"]


class TuiError(GalvanaError):
    """Base class of every error the TUI raises on purpose."""


class ConfigError(TuiError):
    """The TUI's config file cannot be used (the message names the file and the key)."""
