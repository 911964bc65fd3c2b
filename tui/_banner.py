"""The connection banner: shown on every screen while the daemon cannot be reached."""

from __future__ import annotations

from textual.widgets import Static

from tui._connection import ConnectionStatus

__all__ = ["ConnectionBanner", "banner_text"]


def banner_text(status: ConnectionStatus) -> str:
    """What the banner says for ``status`` ("" while connected).

    >>> banner_text(ConnectionStatus("down", "unix:/x", "nothing is listening", 3, 4.0))
    '⚠ nothing is listening — retrying in 4 s (attempt 3; ctrl+r retries now)'
    """
    if status.connected:
        return ""
    if status.state == "connecting":
        if status.message:
            return f"⚠ {status.message} — retrying now (attempt {status.attempt})"
        again = f" (attempt {status.attempt})" if status.attempt > 1 else ""
        return f"connecting to the daemon at {status.address}…{again}"
    why = status.message or f"not connected to {status.address}"
    attempt = f"attempt {status.attempt}; " if status.attempt else ""
    return f"⚠ {why} — retrying in {status.retry_in_s:.0f} s ({attempt}ctrl+r retries now)"


class ConnectionBanner(Static):
    """Follows the app's ``connection_status``; hidden while connected."""

    DEFAULT_CSS = """
    ConnectionBanner {
        height: auto;
        display: none;
    }
    ConnectionBanner.-shown {
        display: block;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "connection_status", self._follow, init=True)

    def _follow(self, status: ConnectionStatus) -> None:
        text = banner_text(status)
        self.set_class(bool(text), "-shown")
        self.set_class(status.state == "down", "-down")
        self.update(text)
