"""The Textual terminal UI, a client of the actor message API.

``galvana tui`` (or :func:`run_app`) opens it on a terminal. It depends on the
runtime only through the client side: ``runtime.client`` (the async client, on
anyio), ``runtime.api.protocol``, ``runtime.messages``, and the runtime's one backoff.
"""

from tui._actors_screen import ActorsScreen
from tui._app import GalvanaApp, run_app
from tui._banner import ConnectionBanner
from tui._connection import Address, Connection, ConnectionStatus, DaemonLink, StandingSubscription
from tui._parameters import ParameterPanel
from tui._plot import Band, Line, Plot
from tui._replay_screen import ReplayScreen
from tui._run_model import RunModel
from tui._run_screen import RunScreen
from tui._runs_screen import RunsScreen
from tui._status_line import StatusLine

__all__ = [
    "ActorsScreen",
    "Address",
    "Band",
    "Connection",
    "ConnectionBanner",
    "ConnectionStatus",
    "DaemonLink",
    "GalvanaApp",
    "Line",
    "ParameterPanel",
    "Plot",
    "ReplayScreen",
    "RunModel",
    "RunScreen",
    "RunsScreen",
    "StandingSubscription",
    "StatusLine",
    "run_app",
]
