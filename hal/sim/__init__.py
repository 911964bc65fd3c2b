"""The simulated potentiostat: a hidden true cell behind a real wire.

:class:`SimPotentiostat` is the instrument (settings, real-time acquisition,
measurement chain, faults); :class:`ScpiServer` serves it over SCPI on a loopback
socket (``galvana instrument serve``); :mod:`hal.sim.methodscript` serves it as a
PalmSens-style MethodSCRIPT device on a pseudo-terminal. Current models implement
:class:`CurrentModel`.
"""

from hal.sim.models import CurrentModel, RandlesModel, RandlesParameters
from hal.sim.potentiostat import DriftSpec, Faults, NoiseSpec, SimPotentiostat
from hal.sim.server import ScpiServer

__all__ = [
    "CurrentModel",
    "DriftSpec",
    "Faults",
    "NoiseSpec",
    "RandlesModel",
    "RandlesParameters",
    "ScpiServer",
    "SimPotentiostat",
]
